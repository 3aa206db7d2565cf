//! Sending records by topic handle.
//!
//! rust-rdkafka's `BaseProducer::send` names a record's topic by string: it
//! copies the name into a C string, and librdkafka then looks the topic up
//! among the client's topics under the client's lock, for every record (W2
//! word count: ~2.5% of all CPU). A stream thread writes to a handful of
//! topics, so it keeps one librdkafka topic handle per topic and sends by
//! handle, with the same arguments rust-rdkafka passes otherwise (copied key
//! and value, delivery opaque, timestamp, headers), so that delivery reports
//! reach the producer's context as before.
//!
//! One of the crate's FFI modules (with `fetch` and `wakeup`): rust-rdkafka
//! exposes no send by handle.
#![allow(unsafe_code)]

use std::ffi::{c_void, CString};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use rdkafka::bindings as rdsys;
use rdkafka::producer::{BaseProducer, Producer as _, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdsys::rd_kafka_vtype_t::*;

use crate::record::Headers;

/// librdkafka's `RD_KAFKA_PARTITION_UA` (a macro, so not in the bindings):
/// the partitioner chooses.
const PARTITION_UNASSIGNED: i32 = -1;

/// Why a record could not be handed to librdkafka.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The topic's name holds a NUL byte: no topic can have it.
    InvalidTopic,
    /// librdkafka refused the record (`QueueFull`: try again once delivery
    /// reports made room).
    Refused(RDKafkaErrorCode),
}

/// One producer's topic handles, made on a topic's first record and kept
/// until the producer goes.
pub(crate) struct TopicHandles {
    rk: *mut rdsys::rd_kafka_t,
    /// Few topics per thread: a scan finds the record's topic by pointer
    /// first (records share their topic's `Arc`), by name otherwise.
    handles: Vec<(Arc<str>, NonNull<rdsys::rd_kafka_topic_t>)>,
    /// Keeps the client alive until the topic handles are destroyed.
    _client: Arc<dyn Send + Sync>,
}

impl std::fmt::Debug for TopicHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topics: Vec<&str> = self.handles.iter().map(|(t, _)| &**t).collect();
        f.debug_struct("TopicHandles").field("topics", &topics).finish_non_exhaustive()
    }
}

// SAFETY: librdkafka's client and topic handles may be used from any thread;
// every method that uses them takes `&mut self`.
unsafe impl Send for TopicHandles {}

/// A record as librdkafka takes it: borrowed bytes, copied by librdkafka.
pub(crate) struct Outgoing<'a> {
    pub(crate) topic: &'a Arc<str>,
    /// `None` lets the producer's partitioner choose.
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) timestamp: i64,
    pub(crate) headers: &'a Headers,
}

impl TopicHandles {
    /// Handles for `producer`'s records.
    pub(crate) fn new<C: ProducerContext + 'static>(producer: &Arc<BaseProducer<C>>) -> Self {
        let rk = producer.client().native_ptr();
        let client: Arc<dyn Send + Sync> = Arc::<BaseProducer<C>>::clone(producer);
        Self { rk, handles: Vec::new(), _client: client }
    }

    fn handle(&mut self, topic: &Arc<str>) -> Result<NonNull<rdsys::rd_kafka_topic_t>, SendError> {
        if let Some((_, h)) = self.handles.iter().find(|(t, _)| Arc::ptr_eq(t, topic) || **t == **topic) {
            return Ok(*h);
        }
        let name = CString::new(&**topic).map_err(|_| SendError::InvalidTopic)?;
        // SAFETY: `rk` is live (kept by `_client`); a NULL configuration
        // takes the producer's default topic configuration (its
        // partitioner), as a send by name does. The handle is ours to destroy.
        let handle = NonNull::new(unsafe { rdsys::rd_kafka_topic_new(self.rk, name.as_ptr(), ptr::null_mut()) })
            .ok_or(SendError::Refused(RDKafkaErrorCode::InvalidTopic))?;
        self.handles.push((Arc::clone(topic), handle));
        Ok(handle)
    }

    /// Hands `record` to librdkafka, which copies its bytes; its delivery
    /// report carries `opaque` (the context's `usize` delivery opaque).
    pub(crate) fn send(&mut self, record: &Outgoing<'_>, opaque: usize) -> Result<(), SendError> {
        let rkt = self.handle(record.topic)?;
        let headers = native_headers(record.headers);
        let (key, key_len) =
            record.key.map_or((ptr::null_mut(), 0), |k| (k.as_ptr().cast_mut().cast::<c_void>(), k.len()));
        let (value, value_len) =
            record.value.map_or((ptr::null_mut(), 0), |v| (v.as_ptr().cast_mut().cast::<c_void>(), v.len()));
        // SAFETY: live client and topic handles; key and value are valid for
        // their lengths during the call (MSG_F_COPY: librdkafka copies
        // them); the arguments follow librdkafka's variadic list, typed as
        // rust-rdkafka passes them. The opaque is an integer, never read as
        // a pointer (`IntoOpaque for usize`). The headers pass to librdkafka
        // on success only.
        let err = unsafe {
            rdsys::rd_kafka_producev(
                self.rk,
                RD_KAFKA_VTYPE_RKT,
                rkt.as_ptr(),
                RD_KAFKA_VTYPE_PARTITION,
                record.partition.unwrap_or(PARTITION_UNASSIGNED),
                RD_KAFKA_VTYPE_MSGFLAGS,
                rdsys::RD_KAFKA_MSG_F_COPY,
                RD_KAFKA_VTYPE_VALUE,
                value,
                value_len,
                RD_KAFKA_VTYPE_KEY,
                key,
                key_len,
                RD_KAFKA_VTYPE_OPAQUE,
                opaque as *mut c_void,
                RD_KAFKA_VTYPE_TIMESTAMP,
                record.timestamp,
                RD_KAFKA_VTYPE_HEADERS,
                headers,
                RD_KAFKA_VTYPE_END,
            )
        };
        if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Ok(());
        }
        if !headers.is_null() {
            // SAFETY: refused, so still ours.
            unsafe { rdsys::rd_kafka_headers_destroy(headers) };
        }
        Err(SendError::Refused(err.into()))
    }
}

impl Drop for TopicHandles {
    fn drop(&mut self) {
        for (_, handle) in self.handles.drain(..) {
            // SAFETY: our own handles, destroyed once, while the client lives
            // (records in flight hold references of their own).
            unsafe { rdsys::rd_kafka_topic_destroy(handle.as_ptr()) };
        }
    }
}

/// librdkafka's copy of `headers`; null for none.
fn native_headers(headers: &Headers) -> *mut rdsys::rd_kafka_headers_t {
    if headers.is_empty() {
        return ptr::null_mut();
    }
    // SAFETY: a new headers list, filled with copies of borrowed bytes
    // (librdkafka copies names and values, lengths given explicitly).
    unsafe {
        let native = rdsys::rd_kafka_headers_new(headers.len());
        for h in headers.iter() {
            let (value, value_len) =
                h.value.as_deref().map_or((ptr::null(), 0), |v| (v.as_ptr().cast::<c_void>(), v.len() as isize));
            rdsys::rd_kafka_header_add(native, h.key.as_ptr().cast(), h.key.len() as isize, value, value_len);
        }
        native
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use rdkafka::client::ClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{DeliveryResult, Headers as _, Message};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::Producer as _;
    use rdkafka::{Offset, TopicPartitionList};

    use super::*;

    /// The (topic, opaque) of every delivery report.
    #[derive(Default)]
    struct Reports(Mutex<Vec<(String, usize)>>);

    impl ClientContext for Reports {}

    impl ProducerContext for Reports {
        type DeliveryOpaque = usize;

        fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
            let m = result.as_ref().unwrap();
            self.0.lock().unwrap().push((m.topic().to_owned(), opaque));
        }
    }

    #[test]
    fn records_sent_by_handle_arrive_as_sent_and_report_their_opaque() -> Result<(), Box<dyn std::error::Error>> {
        let cluster = MockCluster::new(1)?;
        cluster.create_topic("a", 2, 1)?;
        cluster.create_topic("b", 1, 1)?;
        let producer: Arc<BaseProducer<Reports>> = Arc::new(
            ClientConfig::new()
                .set("bootstrap.servers", cluster.bootstrap_servers())
                .create_with_context(Reports::default())?,
        );
        let mut handles = TopicHandles::new(&producer);
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut with_headers = Headers::default();
        with_headers.add("h", Some(b"v".to_vec())).add("null", None::<Vec<u8>>);
        let none = Headers::default();
        // Topics interleaved, one named by an equal string of its own (found
        // by name, not by pointer); null keys and values; the partitioner's
        // choice and explicit partitions.
        for i in 0..20usize {
            let topic = if i % 2 == 0 { a.clone() } else { Arc::from(&*b) };
            let key = format!("k{i}");
            let value = format!("v{i}");
            let record = Outgoing {
                topic: &topic,
                partition: (i % 4 == 0).then_some(1),
                key: (i % 3 != 0).then_some(key.as_bytes()),
                value: (i % 5 != 0).then_some(value.as_bytes()),
                timestamp: 1_000 + i64::try_from(i)?,
                headers: if i % 2 == 0 { &with_headers } else { &none },
            };
            assert!(handles.send(&record, i).is_ok());
        }
        assert_eq!(handles.handles.len(), 2, "one handle per topic");
        let nul: Arc<str> = "bad\0topic".into();
        let bad = Outgoing { topic: &nul, partition: None, key: None, value: None, timestamp: 0, headers: &none };
        assert!(matches!(handles.send(&bad, 99), Err(SendError::InvalidTopic)));
        producer.flush(Duration::from_secs(10))?;
        let mut reports = producer.context().0.lock().unwrap().clone();
        reports.sort_by_key(|&(_, opaque)| opaque);
        let expected: Vec<(String, usize)> =
            (0..20).map(|i| ((if i % 2 == 0 { "a" } else { "b" }).to_owned(), i)).collect();
        assert_eq!(reports, expected);

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "produce-test")
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in [("a", 0), ("a", 1), ("b", 0)] {
            tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < 20 && Instant::now() < deadline {
            let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
            let m = m?;
            let i = usize::try_from(m.timestamp().to_millis().unwrap_or(0) - 1_000)?;
            let key = format!("k{i}");
            let value = format!("v{i}");
            assert_eq!(m.topic(), if i % 2 == 0 { "a" } else { "b" });
            if i % 4 == 0 {
                assert_eq!(m.partition(), 1, "record {i}: its explicit partition");
            }
            assert_eq!(m.key(), (i % 3 != 0).then_some(key.as_bytes()), "record {i}");
            assert_eq!(m.payload(), (i % 5 != 0).then_some(value.as_bytes()), "record {i}");
            let headers: Vec<(String, Option<Vec<u8>>)> = m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))).collect())
                .unwrap_or_default();
            let expected = if i % 2 == 0 {
                vec![("h".to_owned(), Some(b"v".to_vec())), ("null".to_owned(), None)]
            } else {
                vec![]
            };
            assert_eq!(headers, expected, "record {i}");
            seen.push(i);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        // The handles go before the producer's last reference.
        drop(handles);
        Ok(())
    }
}
