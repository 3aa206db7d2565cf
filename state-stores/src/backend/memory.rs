use std::collections::BTreeMap;
use std::ops::Bound;

use super::{Backend, BackendIter, WriteSet};
use crate::StoreError;

/// Committed state in an ordered map.
#[derive(Debug, Default)]
pub(crate) struct MemoryBackend {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    checkpoint: Option<u64>,
}

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.get(key).cloned())
    }

    fn scan(&self, from: &[u8], to: Option<&[u8]>) -> Result<BackendIter<'_>, StoreError> {
        let upper = to.map_or(Bound::Unbounded, |t| Bound::Excluded(t.to_vec()));
        if let Some(t) = to {
            if t <= from {
                return Ok(Box::new(std::iter::empty()));
            }
        }
        Ok(Box::new(self.map.range((Bound::Included(from.to_vec()), upper)).map(|(k, v)| Ok((k.clone(), v.clone())))))
    }

    fn commit(&mut self, writes: &mut WriteSet, checkpoint: Option<u64>) -> Result<(), StoreError> {
        for (start, end) in &writes.range_deletes {
            if start < end {
                let doomed: Vec<Vec<u8>> = self.map.range(start.clone()..end.clone()).map(|(k, _)| k.clone()).collect();
                for k in doomed {
                    self.map.remove(&k);
                }
            }
        }
        // The batch is spent after a commit: move its entries, do not copy them.
        for (k, v) in std::mem::take(&mut writes.ops) {
            match v {
                Some(v) => {
                    self.map.insert(k, v);
                }
                None => {
                    self.map.remove(&k);
                }
            }
        }
        if checkpoint.is_some() {
            self.checkpoint = checkpoint;
        }
        Ok(())
    }

    fn restore(
        &mut self,
        records: &mut dyn Iterator<Item = crate::tx::ChangelogRecord>,
        checkpoint: u64,
    ) -> Result<(), StoreError> {
        for (k, v) in records {
            match v {
                Some(v) => {
                    self.map.insert(k, v);
                }
                None => {
                    self.map.remove(&k);
                }
            }
        }
        self.checkpoint = Some(checkpoint);
        Ok(())
    }

    fn checkpoint(&self) -> Option<u64> {
        self.checkpoint
    }

    fn estimate_num_entries(&self) -> Result<u64, StoreError> {
        Ok(self.map.len() as u64)
    }

    fn persistent(&self) -> bool {
        false
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
