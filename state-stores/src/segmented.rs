//! Time-segmented storage shared by window and session stores.
//!
//! Internal keys are `segment(8) ++ changelog key`, where the changelog key is
//! `escaped(key) ++ 00 00 ++ time(8) ++ extra` and `time` is what retention
//! counts from (window start, session end). A segment covers
//! `[id * interval, (id + 1) * interval)`; when stream time moves on, whole
//! segments older than the retention period are removed with one range delete.

use std::collections::BTreeSet;

use crate::backend::WriteSet;
use crate::encoding::{prefix_end, push_escaped, read_ts, split_escaped, ts_bytes};
use crate::tx::{Change, ChangelogRecord, TxCore};
use crate::StoreError;

/// An entry decoded from an internal key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) key: Vec<u8>,
    pub(crate) time: i64,
    pub(crate) extra: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct Segmented {
    pub(crate) core: TxCore,
    interval: i64,
    retention: i64,
    segments: BTreeSet<i64>,
    observed: i64,
    expired: u64,
}

pub(crate) fn changelog_key(key: &[u8], time: i64, extra: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 12 + extra.len());
    push_escaped(&mut out, key);
    out.extend_from_slice(&ts_bytes(time));
    out.extend_from_slice(extra);
    out
}

fn seg_prefix(segment: i64) -> [u8; 8] {
    ts_bytes(segment)
}

fn decode_changelog_key(bytes: &[u8]) -> Option<(Vec<u8>, i64, Vec<u8>)> {
    let (key, rest) = split_escaped(bytes)?;
    let time = read_ts(rest)?;
    Some((key, time, rest[8..].to_vec()))
}

impl Segmented {
    /// A segmented view of `core`; call [`reload`](Self::reload) when the
    /// backend may hold data already.
    pub(crate) fn new(core: TxCore, retention: i64, interval: i64) -> Self {
        Self {
            core,
            interval: interval.max(1),
            retention: retention.max(1),
            segments: BTreeSet::new(),
            observed: i64::MIN,
            expired: 0,
        }
    }

    /// Rebuilds the segment set and observed stream time from what is stored:
    /// one seek per segment, and one scan of the newest segment.
    pub(crate) fn reload(&mut self) -> Result<(), StoreError> {
        self.segments.clear();
        self.observed = i64::MIN;
        let mut from: Vec<u8> = Vec::new();
        loop {
            let next = self.core.scan(&from, None)?.next().transpose()?;
            let Some((k, _)) = next else { break };
            let Some(seg) = read_ts(&k) else { break };
            self.segments.insert(seg);
            match prefix_end(&seg_prefix(seg)) {
                Some(end) => from = end,
                None => break,
            }
        }
        if let Some(&last) = self.segments.last() {
            let prefix = seg_prefix(last);
            let end = prefix_end(&prefix);
            for entry in self.core.scan(&prefix, end.as_deref())? {
                let (k, _) = entry?;
                if let Some((_, time, _)) = decode_changelog_key(&k[8..]) {
                    self.observed = self.observed.max(time);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn segment_of(&self, time: i64) -> i64 {
        time.div_euclid(self.interval)
    }

    /// The oldest time still retained.
    pub(crate) fn min_live(&self) -> i64 {
        if self.observed == i64::MIN {
            i64::MIN
        } else {
            self.observed.saturating_sub(self.retention).saturating_add(1)
        }
    }

    pub(crate) fn observed_stream_time(&self) -> i64 {
        self.observed
    }

    pub(crate) fn expired_writes(&self) -> u64 {
        self.expired
    }

    /// Forgets the segments entirely older than the retention period and
    /// returns their key ranges, to be range-deleted whole.
    fn take_expired_segments(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let min_live = self.min_live();
        let interval = self.interval;
        let doomed: Vec<i64> = self
            .segments
            .iter()
            .copied()
            .take_while(|&s| s.saturating_add(1).saturating_mul(interval) <= min_live)
            .collect();
        doomed
            .into_iter()
            .map(|seg| {
                self.segments.remove(&seg);
                let prefix = seg_prefix(seg);
                let end = prefix_end(&prefix).unwrap_or_else(|| vec![0xff; 9]);
                (prefix.to_vec(), end)
            })
            .collect()
    }

    /// Drops whole segments entirely older than the retention period.
    fn expire(&mut self) -> Result<(), StoreError> {
        for (start, end) in self.take_expired_segments() {
            self.core.delete_range(&start, &end)?;
        }
        Ok(())
    }

    /// Writes one record; returns `false` (and counts it) when its time is
    /// already past retention, as Kafka Streams drops such writes.
    pub(crate) fn write(
        &mut self,
        key: &[u8],
        time: i64,
        extra: &[u8],
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        self.core.check_open()?;
        self.observed = self.observed.max(time);
        if time < self.min_live() {
            self.expired += 1;
            tracing::debug!(store = %self.core.name, time, "write to an expired segment skipped");
            return Ok(false);
        }
        let seg = self.segment_of(time);
        let log_key = changelog_key(key, time, extra);
        let mut internal = Vec::with_capacity(8 + log_key.len());
        internal.extend_from_slice(&seg_prefix(seg));
        internal.extend_from_slice(&log_key);
        self.core.write(&internal, value, Some(Change { key: &log_key, value }))?;
        self.segments.insert(seg);
        self.expire()?;
        Ok(true)
    }

    pub(crate) fn get(&self, key: &[u8], time: i64, extra: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if time < self.min_live() {
            return Ok(None);
        }
        let mut internal = seg_prefix(self.segment_of(time)).to_vec();
        internal.extend_from_slice(&changelog_key(key, time, extra));
        self.core.get(&internal)
    }

    /// Entries with keys in `[key_from, key_to]` (open when `None`) and times in
    /// `[time_from, time_to]`, segment by segment, in stored order within each.
    pub(crate) fn scan(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        time_from: i64,
        time_to: i64,
    ) -> Result<Vec<Decoded>, StoreError> {
        self.core.check_open()?;
        let time_from = time_from.max(self.min_live());
        let mut out = Vec::new();
        if time_from > time_to {
            return Ok(out);
        }
        let (first, last) = (self.segment_of(time_from), self.segment_of(time_to));
        let single_key = key_from.is_some() && key_from == key_to;
        for &seg in self.segments.range(first..=last) {
            let prefix = seg_prefix(seg);
            let mut from = prefix.to_vec();
            if let Some(k) = key_from {
                push_escaped(&mut from, k);
                if single_key {
                    from.extend_from_slice(&ts_bytes(time_from));
                }
            }
            let to = match key_to {
                Some(k) => {
                    let mut t = prefix.to_vec();
                    push_escaped(&mut t, k);
                    if single_key {
                        t.extend_from_slice(&ts_bytes(time_to));
                    }
                    prefix_end(&t)
                }
                None => prefix_end(&prefix),
            };
            for entry in self.core.scan(&from, to.as_deref())? {
                let (k, value) = entry?;
                let Some((key, time, extra)) = decode_changelog_key(&k[8..]) else {
                    return Err(StoreError::Io {
                        store: self.core.name.clone(),
                        path: std::path::PathBuf::new(),
                        message: "undecodable key in a segmented store".to_owned(),
                    });
                };
                if time >= time_from && time <= time_to {
                    out.push(Decoded { key, time, extra, value });
                }
            }
        }
        Ok(out)
    }

    /// Restores changelog records (retention applied) with their checkpoint.
    pub(crate) fn restore_records(
        &mut self,
        records: &mut dyn Iterator<Item = ChangelogRecord>,
        offset: u64,
    ) -> Result<(), StoreError> {
        let mut writes = self.restore_writes(records)?;
        self.core.apply_direct(&mut writes, offset)
    }

    /// After an abort, segments and stream time must be those of the committed state.
    pub(crate) fn after_abort(&mut self) {
        if let Err(e) = self.reload() {
            tracing::warn!(store = %self.core.name, error = %e, "could not reload segments after abort");
        }
    }

    /// The write set that restores these changelog records, with retention
    /// applied as if they had been written one by one.
    fn restore_writes(&mut self, records: &mut dyn Iterator<Item = ChangelogRecord>) -> Result<WriteSet, StoreError> {
        let mut decoded = Vec::new();
        for (k, v) in records {
            let Some((_, time, _)) = decode_changelog_key(&k) else {
                return Err(StoreError::MalformedChangelog {
                    store: self.core.name.clone(),
                    reason: format!("key of {} bytes is not a window/session changelog key", k.len()),
                });
            };
            self.observed = self.observed.max(time);
            decoded.push((k, time, v));
        }
        let min_live = self.min_live();
        let mut writes = WriteSet::default();
        for (k, time, v) in decoded {
            if time < min_live {
                continue;
            }
            let seg = self.segment_of(time);
            self.segments.insert(seg);
            let mut internal = seg_prefix(seg).to_vec();
            internal.extend_from_slice(&k);
            writes.ops.insert(internal, v);
        }
        writes.range_deletes.extend(self.take_expired_segments());
        Ok(writes)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Bad bytes never panic: any changelog key decodes or is refused, and
        /// what decodes is re-encoded to the same bytes.
        #[test]
        fn decoding_arbitrary_changelog_keys_never_panics(raw in prop::collection::vec(any::<u8>(), 0..40)) {
            if let Some((key, time, extra)) = decode_changelog_key(&raw) {
                prop_assert_eq!(changelog_key(&key, time, &extra), raw);
            }
        }
    }
}
