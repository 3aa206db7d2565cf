use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options, ReadOptions,
    WriteBatch, WriteOptions, DB,
};

use super::read_cache::{ReadCache, ReadCacheBudget};
use super::{Backend, BackendIter, WriteSet};
use crate::StoreError;

const DATA_CF: &str = "default";
const META_CF: &str = "rivulet-meta";
const CHECKPOINT_KEY: &[u8] = b"changelog-offset";
/// Memtable arena blocks under a memory budget.
const ARENA_BLOCK: usize = 256 * 1024;
/// The share of a write buffer given to its memtable's bloom filter.
const MEMTABLE_BLOOM_RATIO: f64 = 0.02;

/// Compression of RocksDB data blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4: fast, the default (as in Kafka Streams).
    #[default]
    Lz4,
    /// Zstandard: smaller, slower.
    Zstd,
}

/// A user hook to adjust each store's RocksDB options (Kafka Streams'
/// `RocksDBConfigSetter`): called with the store name before opening.
pub type RocksDbConfigSetter = Arc<dyn Fn(&str, &mut Options) + Send + Sync>;

/// RocksDB settings shared by the stores of an application.
#[derive(Clone)]
pub struct RocksDbConfig {
    block_cache: Option<rocksdb::Cache>,
    /// With a memory budget: memtables charged to `block_cache`.
    write_buffers: Option<rocksdb::WriteBufferManager>,
    /// The budget, when one is set.
    budget: Option<usize>,
    /// Committed entries kept in memory for point reads, when set.
    read_cache: Option<Arc<ReadCacheBudget>>,
    write_buffer_size: usize,
    compression: Compression,
    setter: Option<RocksDbConfigSetter>,
}

impl fmt::Debug for RocksDbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbConfig")
            .field("shared_block_cache", &self.block_cache.is_some())
            .field("memory_budget", &self.budget)
            .field("read_cache_bytes", &self.read_cache.as_ref().map(|b| b.limit()))
            .field("write_buffer_size", &self.write_buffer_size)
            .field("compression", &self.compression)
            .field("config_setter", &self.setter.is_some())
            .finish()
    }
}

impl Default for RocksDbConfig {
    fn default() -> Self {
        Self {
            block_cache: None,
            write_buffers: None,
            budget: None,
            read_cache: None,
            write_buffer_size: 16 * 1024 * 1024,
            compression: Compression::Lz4,
            setter: None,
        }
    }
}

impl RocksDbConfig {
    /// Defaults: 16 MiB write buffers, LZ4, each store with RocksDB's own block cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// One LRU block cache of `bytes`, shared by every store opened with this
    /// config (clones of it included), bounding their read-cache memory together.
    pub fn with_shared_block_cache(mut self, bytes: usize) -> Self {
        self.block_cache = Some(rocksdb::Cache::new_lru_cache(bytes));
        self
    }

    /// One memory budget for every store opened with this config (clones of
    /// it included): a shared LRU cache of `total_bytes` holds their data
    /// blocks, their index and filter blocks (at high priority, so reads
    /// stay cheap) and, through a write buffer manager, their memtables,
    /// which are flushed once they take more than `memtable_bytes` together.
    /// RocksDB's memory then stays near `total_bytes` however many stores
    /// (partitions) the instance opens, instead of growing with each store's
    /// own caches and write buffers (Kafka Streams' bounded-memory recipe).
    pub fn with_memory_budget(mut self, total_bytes: usize, memtable_bytes: usize) -> Self {
        let cache = rocksdb::Cache::new_lru_cache(total_bytes);
        self.write_buffers = Some(rocksdb::WriteBufferManager::new_write_buffer_manager_with_cache(
            memtable_bytes.min(total_bytes),
            false,
            cache.clone(),
        ));
        self.block_cache = Some(cache);
        self.budget = Some(total_bytes);
        self
    }

    /// Keeps the committed entries of every store opened with this config
    /// (clones of it included) in memory, up to `bytes` together, and serves
    /// point reads from there: entries written by a commit or read from
    /// RocksDB stay until newer ones push them out. A get then costs a hash
    /// lookup instead of a search of RocksDB's memtable (a skip list of every
    /// version since its last flush) or of its files. Counted in
    /// [`memory_budget`](Self::memory_budget) and
    /// [`memory_usage`](Self::memory_usage); 0 turns it off. It serves what
    /// was written: a [config setter](Self::with_config_setter) that makes
    /// RocksDB return something else (a compaction filter, a merge operator)
    /// needs it off.
    pub fn with_read_cache(mut self, bytes: usize) -> Self {
        self.read_cache = (bytes > 0).then(|| Arc::new(ReadCacheBudget::new(bytes)));
        self
    }

    /// The memory budget, if one is set: the shared cache's and the read
    /// cache's together.
    pub fn memory_budget(&self) -> Option<usize> {
        let read_cache = self.read_cache.as_ref().map_or(0, |b| b.limit());
        self.budget.map(|b| b + read_cache)
    }

    /// Bytes in the shared cache now (blocks, and memtables under a memory
    /// budget) and in the read cache; `None` without either.
    pub fn memory_usage(&self) -> Option<usize> {
        let blocks = self.block_cache.as_ref().map(rocksdb::Cache::get_usage);
        let entries = self.read_cache.as_ref().map(|b| b.used());
        match (blocks, entries) {
            (None, None) => None,
            (b, e) => Some(b.unwrap_or(0) + e.unwrap_or(0)),
        }
    }

    /// The size of each store's memtable.
    pub fn with_write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Data block compression.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// A hook called with each store's name and options before it opens.
    pub fn with_config_setter(mut self, setter: impl Fn(&str, &mut Options) + Send + Sync + 'static) -> Self {
        self.setter = Some(Arc::new(setter));
        self
    }

    fn options(&self, store: &str) -> Options {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_write_buffer_size(self.write_buffer_size);
        // A whole-key bloom filter on each memtable (2% of the write buffer:
        // about 10 bits per entry for word count's). Gets that miss the read
        // cache mostly look for keys not written since the last flush; the
        // filter answers them without a walk of the memtable's skip list
        // (8% of word count's CPU over a million distinct words).
        opts.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
        opts.set_memtable_whole_key_filtering(true);
        opts.set_compression_type(match self.compression {
            Compression::None => DBCompressionType::None,
            Compression::Lz4 => DBCompressionType::Lz4,
            Compression::Zstd => DBCompressionType::Zstd,
        });
        let mut table = BlockBasedOptions::default();
        if let Some(cache) = &self.block_cache {
            table.set_block_cache(cache);
        }
        if let Some(manager) = &self.write_buffers {
            opts.set_write_buffer_manager(manager);
            // Memtables grow by arena blocks (by default an eighth of the
            // write buffer), each charged whole to the budget: small blocks
            // keep the many stores' partly filled memtables from taking the
            // budget before any of them is full.
            opts.set_arena_block_size(ARENA_BLOCK);
            // Index and filter blocks count against the budget too; kept
            // in the cache's high-priority pool, and pinned for the
            // newest files, so that they are not evicted by data blocks.
            table.set_cache_index_and_filter_blocks(true);
            table.set_cache_index_and_filter_blocks_with_high_priority(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        }
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        if let Some(setter) = &self.setter {
            setter(store, &mut opts);
        }
        opts
    }
}

/// Committed state in one RocksDB instance: data in the default column
/// family, the changelog checkpoint in a second one, both written by one
/// atomic `WriteBatch`.
pub(crate) struct RocksBackend {
    store: String,
    path: PathBuf,
    db: DB,
    checkpoint: Option<u64>,
    write_opts: WriteOptions,
    /// Under the store's lock, as the backend is: one user at a time.
    read_cache: Option<RefCell<ReadCache>>,
}

impl fmt::Debug for RocksBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksBackend").field("store", &self.store).field("path", &self.path).finish()
    }
}

impl RocksBackend {
    pub(crate) fn open(store: &str, path: &Path, config: &RocksDbConfig) -> Result<Self, StoreError> {
        let io = |message: String| StoreError::Io { store: store.to_owned(), path: path.to_owned(), message };
        std::fs::create_dir_all(path).map_err(|e| io(format!("cannot create the directory: {e}")))?;
        let opts = config.options(store);
        let cfs = vec![
            ColumnFamilyDescriptor::new(DATA_CF, opts.clone()),
            ColumnFamilyDescriptor::new(META_CF, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| io(format!("cannot open RocksDB: {e}")))?;
        let mut backend = Self {
            store: store.to_owned(),
            path: path.to_owned(),
            db,
            checkpoint: None,
            write_opts: WriteOptions::default(),
            read_cache: config.read_cache.as_ref().map(|b| RefCell::new(ReadCache::new(Arc::clone(b)))),
        };
        backend.checkpoint = backend.read_checkpoint()?;
        Ok(backend)
    }

    fn io(&self, what: &str, e: impl fmt::Display) -> StoreError {
        StoreError::Io { store: self.store.clone(), path: self.path.clone(), message: format!("{what}: {e}") }
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or_else(|| self.io("missing column family", name))
    }

    fn read_checkpoint(&self) -> Result<Option<u64>, StoreError> {
        let raw =
            self.db.get_cf(self.cf(META_CF)?, CHECKPOINT_KEY).map_err(|e| self.io("cannot read the checkpoint", e))?;
        match raw {
            None => Ok(None),
            Some(bytes) => {
                let arr: [u8; 8] =
                    bytes.as_slice().try_into().map_err(|_| self.io("corrupt checkpoint", "not 8 bytes"))?;
                Ok(Some(u64::from_be_bytes(arr)))
            }
        }
    }
}

/// The indices of `records` in key order, one per key: the last write of a
/// key wins, as in the changelog.
///
/// Sorting indices by a cached 8-byte key prefix touches each record's heap
/// bytes only on prefix ties, and leaves the records where they were
/// allocated, so they are also freed in that order: both were the bulk of a
/// restore's time when records themselves were sorted.
fn key_order(records: &[crate::tx::ChangelogRecord]) -> Vec<usize> {
    let prefix = |k: &[u8]| {
        let mut p = [0u8; 8];
        let n = k.len().min(8);
        p[..n].copy_from_slice(&k[..n]);
        u64::from_be_bytes(p)
    };
    let mut order: Vec<(u64, usize)> = records.iter().enumerate().map(|(i, (k, _))| (prefix(k), i)).collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| records[a.1].0.cmp(&records[b.1].0)).then(a.1.cmp(&b.1)));
    let mut keep = Vec::with_capacity(order.len());
    for (n, &(_, i)) in order.iter().enumerate() {
        let superseded = order.get(n + 1).is_some_and(|&(p, j)| p == order[n].0 && records[j].0 == records[i].0);
        if !superseded {
            keep.push(i);
        }
    }
    keep
}

impl Backend for RocksBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(cache) = &self.read_cache {
            if let Some(v) = cache.borrow_mut().get(key) {
                return Ok(Some(v));
            }
        }
        let value = self.db.get_cf(self.cf(DATA_CF)?, key).map_err(|e| self.io("read failed", e))?;
        if let (Some(cache), Some(v)) = (&self.read_cache, &value) {
            cache.borrow_mut().insert(key, v);
        }
        Ok(value)
    }

    fn scan(&self, from: &[u8], to: Option<&[u8]>) -> Result<BackendIter<'_>, StoreError> {
        if let Some(t) = to {
            if t <= from {
                return Ok(Box::new(std::iter::empty()));
            }
        }
        let mut read = ReadOptions::default();
        if let Some(t) = to {
            read.set_iterate_upper_bound(t.to_vec());
        }
        let iter = self.db.iterator_cf_opt(self.cf(DATA_CF)?, read, IteratorMode::From(from, Direction::Forward));
        let store = self.store.clone();
        let path = self.path.clone();
        Ok(Box::new(iter.map(move |item| {
            item.map(|(k, v)| (k.into_vec(), v.into_vec())).map_err(|e| StoreError::Io {
                store: store.clone(),
                path: path.clone(),
                message: format!("scan failed: {e}"),
            })
        })))
    }

    fn commit(&mut self, writes: &mut WriteSet, checkpoint: Option<u64>) -> Result<(), StoreError> {
        let data = self.cf(DATA_CF)?;
        let mut batch = WriteBatch::default();
        for (start, end) in &writes.range_deletes {
            batch.delete_range_cf(data, start, end);
        }
        for (k, v) in &writes.ops {
            match v {
                Some(v) => batch.put_cf(data, k, v),
                None => batch.delete_cf(data, k),
            }
        }
        if let Some(offset) = checkpoint {
            batch.put_cf(self.cf(META_CF)?, CHECKPOINT_KEY, offset.to_be_bytes());
        }
        self.db.write_opt(batch, &self.write_opts).map_err(|e| self.io("commit failed", e))?;
        if checkpoint.is_some() {
            self.checkpoint = checkpoint;
        }
        if let Some(cache) = &mut self.read_cache {
            let cache = cache.get_mut();
            if !writes.range_deletes.is_empty() {
                cache.clear();
            }
            // Committed: the written entries are copied into the cache.
            for (k, v) in &writes.ops {
                match v {
                    Some(v) => cache.insert(k, v),
                    None => cache.remove(k),
                }
            }
        }
        Ok(())
    }

    fn restore(
        &mut self,
        records: &mut dyn Iterator<Item = crate::tx::ChangelogRecord>,
        checkpoint: u64,
    ) -> Result<(), StoreError> {
        if let Some(cache) = &mut self.read_cache {
            cache.get_mut().clear();
        }
        let records: Vec<_> = records.collect();
        // Key order lets the memtable insert each record next to the last
        // (measured: faster here than writing and ingesting an SST file for
        // any batch the runtime hands over).
        let data = self.cf(DATA_CF)?;
        let mut batch = WriteBatch::default();
        for i in key_order(&records) {
            let (k, v) = &records[i];
            match v {
                Some(v) => batch.put_cf(data, k, v),
                None => batch.delete_cf(data, k),
            }
        }
        // The checkpoint is written with its data, atomically.
        batch.put_cf(self.cf(META_CF)?, CHECKPOINT_KEY, checkpoint.to_be_bytes());
        self.db.write_opt(batch, &self.write_opts).map_err(|e| self.io("restore failed", e))?;
        self.checkpoint = Some(checkpoint);
        Ok(())
    }

    fn checkpoint(&self) -> Option<u64> {
        self.checkpoint
    }

    fn estimate_num_entries(&self) -> Result<u64, StoreError> {
        let n = self
            .db
            .property_int_value_cf(self.cf(DATA_CF)?, "rocksdb.estimate-num-keys")
            .map_err(|e| self.io("cannot read the key estimate", e))?;
        Ok(n.unwrap_or(0))
    }

    fn persistent(&self) -> bool {
        true
    }

    fn rocksdb_figures(&self) -> Option<crate::tx::RocksDbFigures> {
        // Per column family: the data is in DATA_CF, the checkpoint in
        // META_CF. Properties a DB does not report count as 0.
        let int = |cf: &str, name: &str| {
            self.cf(cf).ok().and_then(|cf| self.db.property_int_value_cf(cf, name).ok().flatten()).unwrap_or(0)
        };
        let both = |name: &str| int(DATA_CF, name).saturating_add(int(META_CF, name));
        Some(crate::tx::RocksDbFigures {
            memtable_bytes: both("rocksdb.cur-size-all-mem-tables"),
            block_cache_usage_bytes: int(DATA_CF, "rocksdb.block-cache-usage"),
            table_readers_bytes: both("rocksdb.estimate-table-readers-mem"),
            estimated_keys: self.estimate_num_entries().unwrap_or(0),
        })
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.db.flush_cf(self.cf(DATA_CF)?).map_err(|e| self.io("flush failed", e))?;
        self.db.flush_cf(self.cf(META_CF)?).map_err(|e| self.io("flush failed", e))
    }
}

#[cfg(test)]
mod tests {
    use super::key_order;

    #[test]
    fn key_order_is_byte_order_with_the_last_write_of_each_key() {
        let keys: [&[u8]; 9] = [
            b"key-00000002",
            b"ab",
            b"ab\0",
            b"key-00000001",
            b"",
            b"ab",
            b"key-0000000",
            b"ab\0\x01",
            b"key-00000002",
        ];
        let records: Vec<_> = keys.iter().enumerate().map(|(i, k)| (k.to_vec(), Some(vec![i as u8]))).collect();
        let order = key_order(&records);
        let got: Vec<(&[u8], usize)> = order.iter().map(|&i| (records[i].0.as_slice(), i)).collect();
        let want: Vec<(&[u8], usize)> = vec![
            (b"", 4),
            (b"ab", 5),
            (b"ab\0", 2),
            (b"ab\0\x01", 7),
            (b"key-0000000", 6),
            (b"key-00000001", 3),
            (b"key-00000002", 8),
        ];
        assert_eq!(got, want);
    }
}
