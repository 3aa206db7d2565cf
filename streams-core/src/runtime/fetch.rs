//! Batch consumption for a stream thread: the fetched records of every
//! assigned partition are forwarded to one queue of the thread's own, and
//! the thread takes them from it a batch at a time.
//!
//! rust-rdkafka's `BaseConsumer::poll` serves one event per call: a queue
//! lock, two clock reads, an `Arc` per message and a deadline computation,
//! every record (W2's profile: ~13% of the stream thread's CPU).
//! `rd_kafka_consume_batch_queue` serves a whole batch under one lock and one
//! clock read. It cannot be used on the consumer queue itself, where
//! rebalances arrive as events that rust-rdkafka must serve (served there,
//! librdkafka would unassign everything), hence a queue of partitions'
//! records only, forwarded before librdkafka starts fetching them: every
//! record of a partition arrives on the one queue, in order. The consumer
//! queue is still polled for events (and for the records of a partition
//! that could not be forwarded, which all arrive there instead).
//!
//! One of the crate's FFI modules (with `produce` and `wakeup`): rust-rdkafka exposes
//! no batch call.
#![allow(unsafe_code)]

use std::ffi::{c_int, CStr};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::TopicPartitionList;

use crate::record::Headers;
use crate::topology::RawRecord;

/// A queue of the owning thread that the assigned partitions' records are
/// forwarded to. Must be dropped before the consumer it was made from (see
/// [`FetchQueue::new`]).
pub(crate) struct FetchQueue {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    rk: NonNull<rdsys::rd_kafka_t>,
    /// The message pointers of one batch (reused; empty between calls).
    messages: Vec<*mut rdsys::rd_kafka_message_t>,
    /// The last topic handle seen in this batch and its name: records come
    /// in runs of one partition, so a name is converted once per run. Only
    /// within a batch, while its messages (which hold their topics) live.
    topic: Option<(*const rdsys::rd_kafka_topic_t, Arc<str>)>,
    /// Whether records come with their headers (librdkafka parses them
    /// from the record batch when asked: 7% of a restore's CPU).
    headers: bool,
}

impl std::fmt::Debug for FetchQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchQueue").field("batch", &self.messages.capacity()).finish_non_exhaustive()
    }
}

// SAFETY: librdkafka's queue and client handles may be used from any thread;
// message pointers are held only inside `consume`, which takes `&mut self`.
unsafe impl Send for FetchQueue {}

impl FetchQueue {
    /// A queue for `consumer`'s records, taking up to `batch` records per
    /// call.
    ///
    /// # Safety
    /// The queue must be dropped before `consumer`: librdkafka requires a
    /// client's queues destroyed before the client, and nothing ties the
    /// two here (the queue lives in the consumer's own context).
    pub(crate) unsafe fn new<C: ConsumerContext>(consumer: &BaseConsumer<C>, batch: usize) -> Option<Self> {
        let rk = NonNull::new(consumer.client().native_ptr())?;
        // SAFETY: `rk` is a live consumer handle; the queue is ours to destroy.
        let queue = NonNull::new(rdsys::rd_kafka_queue_new(rk.as_ptr()))?;
        Some(Self { queue, rk, messages: Vec::with_capacity(batch.max(1)), topic: None, headers: true })
    }

    /// Records come without their headers (a changelog's are not restored).
    pub(crate) fn without_headers(mut self) -> Self {
        self.headers = false;
        self
    }

    /// Forwards the records of `partitions` to this queue. Called on every
    /// assignment before librdkafka starts fetching: stopping a partition's
    /// fetch (a revocation) ends its forwarding, and as the application's
    /// forwarding it is not replaced by the consumer queue's on the next
    /// start, so a partition assigned without it would deliver nowhere. A
    /// partition that cannot be forwarded at all keeps delivering to the
    /// consumer queue (all its records, so their order holds).
    pub(crate) fn attach(&self, partitions: &TopicPartitionList) {
        for e in partitions.elements() {
            let Ok(topic) = std::ffi::CString::new(e.topic()) else { continue };
            // SAFETY: live handles; the partition queue handle returned is
            // released right after (the forwarding stays with the partition).
            unsafe {
                let partition = rdsys::rd_kafka_queue_get_partition(self.rk.as_ptr(), topic.as_ptr(), e.partition());
                if partition.is_null() {
                    tracing::debug!(
                        topic = e.topic(),
                        partition = e.partition(),
                        "partition queue unavailable; its records come through the consumer queue"
                    );
                    continue;
                }
                rdsys::rd_kafka_queue_forward(partition, self.queue.as_ptr());
                rdsys::rd_kafka_queue_destroy(partition);
            }
        }
    }

    /// Appends up to a batch of records to `out`, waiting at most `wait` for
    /// the first (and not for more once one is there); returns the first
    /// consumer error of the batch if there was one (each is logged). Every record of the batch is appended, those after an error
    /// too: librdkafka's position has passed them all.
    pub(crate) fn consume(&mut self, wait: Duration, out: &mut Vec<RawRecord>) -> Option<KafkaError> {
        self.consume_at_most(wait, usize::MAX, out)
    }

    /// [`FetchQueue::consume`], taking at most `max` records.
    pub(crate) fn consume_at_most(
        &mut self,
        wait: Duration,
        max: usize,
        out: &mut Vec<RawRecord>,
    ) -> Option<KafkaError> {
        let max = max.min(self.messages.capacity());
        // librdkafka's batch call waits until the batch is full or the time
        // is up: a blocking wait asks for one record, the rest is taken
        // without waiting.
        let mut n = self.serve(0, max, 0);
        if n == 0 && !wait.is_zero() {
            n = self.serve(0, max, c_int::try_from(wait.as_millis()).unwrap_or(c_int::MAX));
            if n > 0 {
                n += self.serve(n, max, 0);
            }
        }
        let mut batch = Batch { queue: self, taken: 0 };
        let mut error = None;
        while batch.taken < n {
            let message = batch.queue.messages[batch.taken];
            // SAFETY: a live message of this batch, destroyed right after.
            unsafe {
                match batch.queue.record(message) {
                    Ok(Some(record)) => out.push(record),
                    Ok(None) => {}
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                }
                rdsys::rd_kafka_message_destroy(message);
            }
            batch.taken += 1;
        }
        drop(batch);
        error
    }

    /// Takes messages into `messages[from..max]` (one only when `timeout`
    /// is not zero), waiting up to `timeout` ms; returns how many. `max` is
    /// at most the buffer's capacity (`consume_at_most` bounds it).
    fn serve(&mut self, from: usize, max: usize, timeout: c_int) -> usize {
        debug_assert!(max <= self.messages.capacity());
        let room = max.saturating_sub(from);
        let want = if timeout == 0 { room } else { room.min(1) };
        if want == 0 {
            return 0;
        }
        // SAFETY: `from` is the buffer's length (the pointers before it are
        // initialised) and there is room for `want` more; librdkafka writes
        // n <= want pointers and returns n (never negative here).
        unsafe {
            let n = rdsys::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                timeout,
                self.messages.as_mut_ptr().add(from),
                want,
            );
            let n = usize::try_from(n).unwrap_or(0).min(want);
            self.messages.set_len(from + n);
            n
        }
    }

    /// The owned copy of one consumed message; `None` for the end of a
    /// partition (only reported with `enable.partition.eof`).
    ///
    /// # Safety
    /// `m` is a live message returned by librdkafka.
    unsafe fn record(&mut self, m: *const rdsys::rd_kafka_message_t) -> Result<Option<RawRecord>, KafkaError> {
        let (err, rkt, partition, offset) = ((*m).err, (*m).rkt, (*m).partition, (*m).offset);
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF {
                return Ok(None);
            }
            let reason = rdsys::rd_kafka_message_errstr(m);
            let reason = if reason.is_null() { "".into() } else { CStr::from_ptr(reason).to_string_lossy() };
            let topic = if rkt.is_null() {
                "".into()
            } else {
                CStr::from_ptr(rdsys::rd_kafka_topic_name(rkt)).to_string_lossy()
            };
            let code = RDKafkaErrorCode::from(err);
            tracing::debug!(%topic, partition, offset, %code, %reason, "consumer error");
            return Err(KafkaError::MessageConsumption(code));
        }
        let topic = match &self.topic {
            Some((cached, name)) if *cached == rkt.cast_const() => Arc::clone(name),
            _ => {
                let name: Arc<str> = CStr::from_ptr(rdsys::rd_kafka_topic_name(rkt)).to_string_lossy().into();
                self.topic = Some((rkt.cast_const(), Arc::clone(&name)));
                name
            }
        };
        let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        let timestamp = rdsys::rd_kafka_message_timestamp(m, &mut kind);
        // As rust-rdkafka's `Timestamp::to_millis`: none or -1 is 0.
        let timestamp = match kind {
            rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => 0,
            _ if timestamp == -1 => 0,
            _ => timestamp,
        };
        Ok(Some(RawRecord {
            topic,
            partition: Some(partition),
            offset: Some(offset),
            timestamp,
            key: bytes((*m).key, (*m).key_len),
            value: bytes((*m).payload, (*m).len),
            headers: if self.headers { headers(m) } else { Headers::new() },
        }))
    }
}

/// One batch's messages while they are read: whatever is left of them when
/// it goes (all of them after a panic) is given back to librdkafka, and the
/// topic cache forgotten with them.
struct Batch<'q> {
    queue: &'q mut FetchQueue,
    taken: usize,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        for &message in &self.queue.messages[self.taken..] {
            // SAFETY: the messages from `taken` on were not destroyed yet.
            unsafe { rdsys::rd_kafka_message_destroy(message) };
        }
        // SAFETY: every message is destroyed: the pointers are dead.
        unsafe { self.queue.messages.set_len(0) };
        self.queue.topic = None;
    }
}

/// A copy of `len` bytes at `ptr`, `None` for a null pointer.
///
/// # Safety
/// A non-null `ptr` points at `len` readable bytes.
unsafe fn bytes(ptr: *const std::ffi::c_void, len: usize) -> Option<Vec<u8>> {
    (!ptr.is_null()).then(|| std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_vec())
}

/// The message's headers, copied.
///
/// # Safety
/// `m` is a live message returned by librdkafka.
unsafe fn headers(m: *const rdsys::rd_kafka_message_t) -> Headers {
    let mut out = Headers::new();
    let mut hdrs: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    if rdsys::rd_kafka_message_headers(m, &mut hdrs) != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        || hdrs.is_null()
    {
        return out;
    }
    for idx in 0.. {
        let mut name: *const std::ffi::c_char = std::ptr::null();
        let mut value: *const std::ffi::c_void = std::ptr::null();
        let mut size = 0usize;
        if rdsys::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size)
            != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            break;
        }
        if name.is_null() {
            continue;
        }
        out.add(CStr::from_ptr(name).to_string_lossy().into_owned(), bytes(value, size));
    }
    out
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: the queue is ours and the client still alive (see `new`);
        // partitions still forwarding here drop what they enqueue from now.
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue.as_ptr()) };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use rdkafka::client::ClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{Consumer, Rebalance};
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    use super::*;

    #[derive(Default)]
    struct Attaching(Mutex<Option<FetchQueue>>);

    impl ClientContext for Attaching {}

    impl ConsumerContext for Attaching {
        fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
            if let (Rebalance::Assign(tpl), Some(fetch)) = (rebalance, self.0.lock().unwrap().as_ref()) {
                fetch.attach(tpl);
            }
        }
    }

    #[test]
    fn assigned_partitions_records_arrive_whole_and_in_order_on_the_fetch_queue(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let cluster = MockCluster::new(1)?;
        cluster.create_topic("in", 2, 1)?;
        let producer: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create()?;
        for i in 0..50i64 {
            let key = format!("k{i}");
            let value = format!("v{i}");
            let mut record = BaseRecord::to("in").key(&key).partition(i32::from(i % 2 == 1)).timestamp(1_000 + i);
            // Every fifth record a tombstone, every third with headers.
            if i % 5 != 0 {
                record = record.payload(&value);
            }
            if i % 3 == 0 {
                record =
                    record.headers(
                        OwnedHeaders::new()
                            .insert(Header { key: "h", value: Some(value.as_bytes()) })
                            .insert(Header::<&[u8]> { key: "none", value: None }),
                    );
            }
            producer.send(record).map_err(|(e, _)| e)?;
        }
        producer.flush(Duration::from_secs(10))?;

        // A member of the test's group (nothing committed: each assignment
        // reads from the start).
        let member = || {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", cluster.bootstrap_servers())
                .set("group.id", "fetch-test")
                // The mock cluster rebalances once the members' sessions say so.
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "500")
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest");
            c
        };
        let consumer: BaseConsumer<Attaching> = member().create_with_context(Attaching::default())?;
        /// Takes the queue out before the consumer goes, even when an
        /// assertion fails.
        struct Guard<'c>(&'c BaseConsumer<Attaching>);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                drop(self.0.context().0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
            }
        }
        let guard = Guard(&consumer);
        // SAFETY: `guard` drops the queue before the consumer.
        *consumer.context().0.lock().unwrap() = unsafe { FetchQueue::new(&consumer, 16) };
        // Reads until `want` records came through the fetch queue, polling
        // `other` (a second member) beside.
        let read = |records: &mut Vec<RawRecord>, want: usize, other: Option<&BaseConsumer>| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while records.len() < want && Instant::now() < deadline {
                if let Some(other) = other {
                    let _ = other.poll(Duration::ZERO);
                }
                if let Some(Ok(m)) = consumer.poll(Duration::ZERO) {
                    panic!("a record of an attached partition reached the consumer queue: {m:?}");
                }
                let mut fetch = consumer.context().0.lock().unwrap();
                let before = records.len();
                let error = fetch.as_mut().unwrap().consume(Duration::from_millis(100), records);
                assert!(records.len() - before <= 16, "a batch larger than asked for: {}", records.len() - before);
                assert!(error.is_none(), "{error:?}");
            }
        };
        consumer.subscribe(&["in"])?;
        let mut records = Vec::new();
        read(&mut records, 50, None);
        assert_eq!(records.len(), 50, "records fetched before the deadline");
        for p in 0..2 {
            let mine: Vec<&RawRecord> = records.iter().filter(|r| r.partition == Some(p)).collect();
            assert_eq!(mine.len(), 25);
            for (offset, r) in mine.into_iter().enumerate() {
                let i = 2 * i64::try_from(offset)? + i64::from(p);
                assert_eq!(&*r.topic, "in");
                assert_eq!(r.offset, Some(i64::try_from(offset)?));
                assert_eq!(r.timestamp, 1_000 + i);
                assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
                let value = format!("v{i}").into_bytes();
                assert_eq!(r.value, (i % 5 != 0).then(|| value.clone()));
                let headers: Vec<(&str, Option<&[u8]>)> =
                    r.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref())).collect();
                let expected: Vec<(&str, Option<&[u8]>)> =
                    if i % 3 == 0 { vec![("h", Some(&value)), ("none", None)] } else { Vec::new() };
                assert_eq!(headers, expected);
            }
        }
        // A second member joins: every partition is revoked (its fetch
        // stopped, which ends its forwarding) and one assigned again, whose
        // records (nothing was committed) all come again through the queue.
        let other: BaseConsumer = member().create()?;
        other.subscribe(&["in"])?;
        let mut again = Vec::new();
        read(&mut again, 25, Some(&other));
        let partitions: std::collections::BTreeSet<Option<i32>> = again.iter().map(|r| r.partition).collect();
        assert_eq!(partitions.len(), 1, "one partition after the second member joined: {partitions:?}");
        let offsets: Vec<Option<i64>> = again.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..25).map(Some).collect::<Vec<_>>(), "the second assignment's records, in order");
        drop(guard);
        Ok(())
    }
}
