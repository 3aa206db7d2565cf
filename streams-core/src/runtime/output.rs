//! A stream thread's producer: sends what sinks and changelogs write, tracks
//! the offsets each partition reached (changelog checkpoints) and the first
//! delivery error, and runs the thread's transactions under exactly-once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext, PurgeConfig};
use rdkafka::TopicPartitionList;

use super::errors::{by_code, ErrorClass, KafkaCallError};
use super::produce::{Outgoing, SendError, TopicHandles};
use super::retry::RetryPolicy;
use super::wakeup::ReportSignal;
use crate::error::{ProcessorError, StreamsError};
use crate::task_engine::RecordCollector;
use crate::topology::RawRecord;

/// The time-out of one transactional call; a call that times out is
/// retried (librdkafka allows it) within `task.timeout.ms`.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A transactional producer's records fail by themselves after
/// `message.timeout.ms` (librdkafka caps it at `transaction.timeout.ms`, 10 s
/// here): one that makes no progress for this long is wedged and replaced.
/// So is any producer that acknowledges nothing for this long while the
/// cluster answers (see `Output::drain`).
const PRODUCER_STALL: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Deliveries {
    /// Topic → partition → highest offset written. By topic first so that a
    /// report looks its topic up by `&str`: no allocation per record.
    offsets: foldhash::HashMap<String, foldhash::HashMap<i32, i64>>,
    /// The first failed delivery since the last commit.
    error: Option<(String, KafkaError)>,
    /// Bumped by every abort: a record sent before it is reported under its
    /// old epoch and ignored, so a late report of an aborted record neither
    /// moves a checkpoint nor fails the batch that follows.
    epoch: usize,
}

/// Receives delivery reports.
#[derive(Default)]
pub(crate) struct DeliveryContext {
    deliveries: Mutex<Deliveries>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, epoch: usize) {
        let mut d = self.deliveries.lock().unwrap_or_else(PoisonError::into_inner);
        if epoch != d.epoch {
            return;
        }
        match result {
            Ok(m) => {
                // One name conversion and one lookup per report: this runs
                // for every record written.
                let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
                if let Some(partitions) = d.offsets.get_mut(topic) {
                    let slot = partitions.entry(partition).or_insert(-1);
                    *slot = (*slot).max(offset);
                } else {
                    d.offsets.insert(topic.to_owned(), std::iter::once((partition, offset)).collect());
                }
            }
            Err((e, m)) => {
                if d.error.is_none() {
                    d.error = Some((m.topic().to_owned(), e.clone()));
                }
            }
        }
    }
}

type Producer0 = BaseProducer<DeliveryContext>;

/// The producer side of a stream thread.
pub(crate) struct Output {
    /// The handles records are sent by; destroyed before the producer.
    topics: TopicHandles,
    /// Shared with the watchdog threads of transactional calls.
    producer: Arc<Producer0>,
    /// Wakes a wait for delivery reports; `None` (no socket could be made)
    /// waits in polls with time-outs instead.
    reports: Option<ReportSignal>,
    transactional: bool,
    in_transaction: bool,
    partitions: Mutex<HashMap<String, i32>>,
    /// How long the producer may make no progress (a full queue, records
    /// not acknowledged) before it counts as broken.
    stall: Duration,
    /// How long a drain may see no acknowledgement while the cluster
    /// answers before the producer counts as wedged ([`PRODUCER_STALL`]).
    unacknowledged_limit: Duration,
    /// Records sent since start.
    pub(crate) sent: u64,
    /// The delivery epoch records are sent under (see `Deliveries::epoch`).
    epoch: usize,
}

fn call_error(operation: &'static str, e: KafkaError) -> StreamsError {
    KafkaCallError::new(operation, e).into()
}

/// A record the producer could not write is lost from the open batch,
/// whatever the code: the batch is redone (unless the producer itself is
/// fenced or broken).
fn lost_batch(operation: String, e: KafkaError) -> KafkaCallError {
    let class = match e.rdkafka_error_code().map(by_code) {
        Some(c @ (ErrorClass::Fenced | ErrorClass::Fatal)) => c,
        _ => ErrorClass::Abortable,
    };
    KafkaCallError::with_class(operation, e, class)
}

/// Runs a transactional call on a watchdog thread. librdkafka bounds these
/// calls by their time-out, but a call can wait forever for an internal
/// operation (seen: `send_offsets_to_transaction` while the producer id is
/// re-acquired after a broker restart). A call that does not return in
/// time leaves its thread behind, holding the producer; the error is fatal,
/// so the stream thread rejoins with a new producer, which fences this one.
fn guarded<T: Send + 'static>(
    producer: &Arc<Producer0>,
    operation: &'static str,
    call: impl FnOnce(&Producer0) -> rdkafka::error::KafkaResult<T> + Send + 'static,
) -> Result<T, StreamsError> {
    start_guarded(producer, operation, call)?.wait()
}

/// A transactional call running on its watchdog thread.
struct GuardedCall<T> {
    operation: &'static str,
    answer: std::sync::mpsc::Receiver<rdkafka::error::KafkaResult<T>>,
}

/// Starts [`guarded`]'s call without waiting for it, so that the stream
/// thread can do something else meanwhile.
fn start_guarded<T: Send + 'static>(
    producer: &Arc<Producer0>,
    operation: &'static str,
    call: impl FnOnce(&Producer0) -> rdkafka::error::KafkaResult<T> + Send + 'static,
) -> Result<GuardedCall<T>, StreamsError> {
    let producer = Arc::clone(producer);
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("rivulet-txn-call".into())
        .spawn(move || {
            let _ = reply.send(call(&producer));
        })
        .map_err(|e| StreamsError::IllegalState(format!("cannot start a thread for {operation}: {e}")))?;
    Ok(GuardedCall { operation, answer })
}

impl<T> GuardedCall<T> {
    /// The call's result, or a fatal error once it overran its time-out.
    fn wait(self) -> Result<T, StreamsError> {
        let operation = self.operation;
        match self.answer.recv_timeout(CALL_TIMEOUT + WATCHDOG_SLACK) {
            Ok(result) => result.map_err(|e| call_error(operation, e)),
            Err(_) => Err(KafkaCallError::with_class(
                format!(
                    "{operation}: librdkafka did not return within {} s",
                    (CALL_TIMEOUT + WATCHDOG_SLACK).as_secs()
                ),
                KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut),
                ErrorClass::Fatal,
            )
            .into()),
        }
    }
}

/// How much longer than its own time-out a transactional call may take.
const WATCHDOG_SLACK: Duration = Duration::from_secs(20);

impl Output {
    pub(crate) fn new(
        config: &rdkafka::config::ClientConfig,
        transactional: bool,
        retry: RetryPolicy<'_>,
    ) -> Result<Self, StreamsError> {
        let producer: Arc<Producer0> = Arc::new(
            config
                .create_with_context(DeliveryContext::default())
                .map_err(|e| call_error("creating the producer", e))?,
        );
        if transactional {
            retry.run(|| guarded(&producer, "initialising transactions", |p| p.init_transactions(CALL_TIMEOUT)))?;
        }
        let stall = if transactional { PRODUCER_STALL } else { retry.timeout };
        let reports = ReportSignal::new(&producer);
        if reports.is_none() {
            tracing::warn!("no wake-up socket for the producer's delivery reports; waiting for them in polls");
        }
        Ok(Self {
            topics: TopicHandles::new(&producer),
            producer,
            reports,
            transactional,
            in_transaction: false,
            partitions: Mutex::default(),
            stall,
            unacknowledged_limit: PRODUCER_STALL,
            sent: 0,
            epoch: 0,
        })
    }

    /// Opens the thread's transaction if none is open (exactly-once only).
    pub(crate) fn begin(&mut self) -> Result<(), KafkaCallError> {
        if self.transactional && !self.in_transaction {
            self.producer.begin_transaction().map_err(|e| KafkaCallError::new("beginning a transaction", e))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Waits until every record sent is acknowledged or failed, serving
    /// delivery reports as they arrive (rdkafka's `flush` polls in 100 ms
    /// slices, which would cost every commit at least that long). Records
    /// fail by themselves after `message.timeout.ms`; this bounds the wait
    /// by `task.timeout.ms` in case they do not.
    ///
    /// Without a transaction the wait may be long (the cluster away for up
    /// to `task.timeout.ms`), but a producer that acknowledges nothing for
    /// [`PRODUCER_STALL`] while the cluster answers its metadata
    /// requests is wedged (seen after broker restarts: librdkafka holding
    /// records for minutes after its broker came back), and is replaced.
    fn drain(&self, retry: RetryPolicy<'_>) -> Result<(), StreamsError> {
        let started = Instant::now();
        let mut waiting = false;
        // The fewest records in flight so far, and when the next check for
        // a wedged producer is due.
        let mut fewest = self.producer.in_flight_count();
        let mut check_at = Instant::now() + self.unacknowledged_limit;
        loop {
            self.poll();
            let in_flight = self.producer.in_flight_count();
            if in_flight == 0 {
                break;
            }
            if self.transactional && started.elapsed() >= self.stall {
                return Err(self.wedged("waiting for records to be acknowledged", self.stall).into());
            }
            if in_flight < fewest {
                fewest = in_flight;
                check_at = Instant::now() + self.unacknowledged_limit;
            } else if Instant::now() >= check_at {
                if self.cluster_answers() {
                    let what = format!("waiting for {in_flight} records to be acknowledged while the cluster answers");
                    return Err(self.wedged(&what, self.unacknowledged_limit).into());
                }
                // Away: wait on, asking again a while later.
                check_at = Instant::now() + Duration::from_secs(5);
            }
            if started.elapsed() >= retry.timeout {
                let source = KafkaCallError::with_class(
                    format!("waiting for {in_flight} records to be acknowledged"),
                    KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut),
                    ErrorClass::Retriable,
                );
                return Err(StreamsError::TaskTimeout { timeout: retry.timeout, source: Box::new(source.into()) });
            }
            if !waiting && started.elapsed() >= CALL_TIMEOUT {
                waiting = true;
                retry.counters.cluster_unreachable(&"records not acknowledged for 10 s");
            }
            self.await_reports(Duration::from_millis(5));
        }
        if waiting {
            super::listener::Counters::add(
                &retry.counters.blocked_ms,
                u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            );
        }
        Ok(())
    }

    /// Whether the cluster answers a metadata request through this producer.
    fn cluster_answers(&self) -> bool {
        self.producer.client().fetch_metadata(None, Duration::from_secs(2)).is_ok_and(|m| !m.brokers().is_empty())
    }

    /// The producer made no progress for `after`, longer than its records
    /// may take: it is replaced (the thread rejoins with a new one).
    fn wedged(&self, what: &str, after: Duration) -> KafkaCallError {
        KafkaCallError::with_class(
            format!("{what}: the producer made no progress for {} s", after.as_secs()),
            KafkaError::MessageProduction(RDKafkaErrorCode::OperationTimedOut),
            ErrorClass::Fatal,
        )
    }

    pub(crate) fn has_open_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Serves the delivery reports (and any other producer events) that
    /// arrived, without blocking.
    pub(crate) fn poll(&self) {
        match &self.reports {
            // One event (a batch of reports) per call: as many calls as
            // there are events, bounded in case they keep coming.
            Some(reports) => {
                for _ in 0..1024 {
                    if !reports.pending() {
                        break;
                    }
                    self.producer.poll(Duration::ZERO);
                }
            }
            None => self.producer.poll(Duration::ZERO),
        }
    }

    /// Serves the delivery reports queued or, if there are none, waits up
    /// to `timeout` for the next and serves it. Returns as soon as one
    /// arrives, unlike the producer's own `poll`, which always takes its
    /// whole time-out (spinning through its last millisecond).
    fn await_reports(&self, timeout: Duration) {
        let Some(reports) = &self.reports else {
            self.producer.poll(timeout);
            return;
        };
        // Events queued (arrived since the last `poll`, or left by its
        // bound): serve them, as no wake-up would come for them.
        if reports.pending() {
            self.poll();
            return;
        }
        match reports.wait(timeout) {
            Ok(true) => {
                self.poll();
            }
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, "the producer's wake-up socket failed; polling instead");
                self.producer.poll(timeout);
            }
        }
    }

    /// The first failed delivery since the last commit, as an error that
    /// abandons the batch.
    fn delivery_error(&self) -> Result<(), StreamsError> {
        let mut d = self.producer.context().deliveries.lock().unwrap_or_else(PoisonError::into_inner);
        match d.error.take() {
            Some((topic, e)) => Err(lost_batch(format!("writing to topic `{topic}`"), e).into()),
            None => Ok(()),
        }
    }

    /// Commits: under exactly-once, the consumed `offsets` go into the
    /// transaction, which then commits; otherwise waits until every record is
    /// acknowledged. Transient failures are retried within `task.timeout.ms`;
    /// a failed delivery is an abortable error. Returns the offset each
    /// written partition reached (next offset to read), for checkpoints.
    pub(crate) fn commit(
        &mut self,
        offsets: &TopicPartitionList,
        group: Option<ConsumerGroupMetadata>,
        retry: RetryPolicy<'_>,
    ) -> Result<HashMap<(String, i32), i64>, StreamsError> {
        if self.transactional {
            if self.in_transaction {
                const SEND_OFFSETS: &str = "sending offsets to the transaction";
                let send_offsets = |group: &Arc<ConsumerGroupMetadata>| {
                    let (offsets, group) = (offsets.clone(), Arc::clone(group));
                    start_guarded(&self.producer, SEND_OFFSETS, move |p| {
                        p.send_offsets_to_transaction(&offsets, &group, CALL_TIMEOUT)
                    })
                };
                // The offsets travel to the group coordinator while the
                // records still in flight are acknowledged: two round trips
                // waited out as one (W2: ~4 ms of a ~15 ms commit).
                let offsets_sent = match offsets.count() {
                    0 => None,
                    _ => {
                        let group = Arc::new(group.ok_or_else(|| {
                            StreamsError::IllegalState("no consumer group metadata to commit offsets with".into())
                        })?);
                        Some((send_offsets(&group)?, group))
                    }
                };
                let mut drained = self.drain(retry);
                // Waited for whatever the drain did: an abort or a new
                // producer must not race the call still under way.
                if let Some((first, group)) = offsets_sent {
                    let sent = first.wait();
                    // task.timeout.ms is spent: that is the answer, whatever
                    // the offsets did.
                    if matches!(drained, Err(StreamsError::TaskTimeout { .. })) {
                        return drained.map(|()| HashMap::new());
                    }
                    match sent {
                        Ok(()) => {}
                        // The cluster was away: as when the two ran one after
                        // the other, the offsets are retried until they are
                        // in, then what is in flight is drained again.
                        Err(e) if e.kafka_class() == Some(ErrorClass::Retriable) => {
                            retry.run(|| send_offsets(&group)?.wait())?;
                            if drained.is_err() {
                                drained = self.drain(retry);
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                drained?;
                self.delivery_error()?;
                retry.run(|| {
                    guarded(&self.producer, "committing the transaction", |p| p.commit_transaction(CALL_TIMEOUT))
                })?;
                self.in_transaction = false;
            }
        } else {
            self.drain(retry)?;
            self.delivery_error()?;
        }
        let mut d = self.producer.context().deliveries.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(std::mem::take(&mut d.offsets)
            .into_iter()
            .flat_map(|(topic, partitions)| partitions.into_iter().map(move |(p, o)| ((topic.clone(), p), o + 1)))
            .collect())
    }

    /// Aborts the open transaction (exactly-once) or forgets what was sent
    /// since the last commit (at-least-once: it is sent again). Retries
    /// while the cluster is away; an error means the producer is unusable.
    pub(crate) fn abort(&mut self, retry: RetryPolicy<'_>) -> Result<(), StreamsError> {
        let aborted = if self.transactional && self.in_transaction {
            // Nothing queued is wanted any more; what is in flight must still
            // be reported (served by poll) before librdkafka can abort.
            self.producer.purge(PurgeConfig::default().queue());
            let started = Instant::now();
            while self.producer.in_flight_count() > 0 && started.elapsed() < self.stall.min(retry.timeout) {
                self.await_reports(Duration::from_millis(10));
            }
            let aborted = retry
                .run(|| guarded(&self.producer, "aborting the transaction", |p| p.abort_transaction(CALL_TIMEOUT)));
            if aborted.is_ok() {
                self.in_transaction = false;
            }
            aborted
        } else {
            Ok(())
        };
        // Whatever is reported from here on belongs to the batch given up.
        let mut d = self.producer.context().deliveries.lock().unwrap_or_else(PoisonError::into_inner);
        d.offsets.clear();
        d.error = None;
        d.epoch = d.epoch.wrapping_add(1);
        self.epoch = d.epoch;
        aborted
    }

    /// As [`abort`](Self::abort) where nothing more can be done about a
    /// failure (the tasks are being closed dirty anyway): logs it.
    pub(crate) fn abort_or_log(&mut self, retry: RetryPolicy<'_>) {
        if let Err(e) = self.abort(retry) {
            tracing::warn!(error = %e, "aborting the transaction failed; the broker aborts it after transaction.timeout.ms");
            self.in_transaction = false;
        }
    }
}

impl RecordCollector for Output {
    fn send(&mut self, record: RawRecord) -> Result<(), ProcessorError> {
        self.begin().map_err(|source| ProcessorError::Send { topic: record.topic.to_string(), source })?;
        let outgoing = Outgoing {
            topic: &record.topic,
            partition: record.partition,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            timestamp: record.timestamp,
            headers: &record.headers,
        };
        let mut full_since: Option<Instant> = None;
        loop {
            let e = match self.topics.send(&outgoing, self.epoch) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err(SendError::Refused(RDKafkaErrorCode::QueueFull)) => {
                    // Back-pressure: serve delivery reports until there is room.
                    if full_since.get_or_insert_with(Instant::now).elapsed() >= self.stall {
                        let source = self.wedged(&format!("sending a record to topic `{}`", record.topic), self.stall);
                        return Err(ProcessorError::Send { topic: record.topic.to_string(), source });
                    }
                    self.await_reports(Duration::from_millis(10));
                    continue;
                }
                Err(SendError::Refused(code)) => KafkaError::MessageProduction(code),
                Err(SendError::InvalidTopic) => KafkaError::MessageProduction(RDKafkaErrorCode::InvalidTopic),
            };
            let source = lost_batch(format!("sending a record to topic `{}`", record.topic), e);
            return Err(ProcessorError::Send { topic: record.topic.to_string(), source });
        }
    }

    fn partition_count(&self, topic: &str) -> Option<i32> {
        let mut cache = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&n) = cache.get(topic) {
            return Some(n);
        }
        let metadata = self.producer.client().fetch_metadata(Some(topic), Duration::from_secs(10)).ok()?;
        let n = metadata.topics().first().map(|t| i32::try_from(t.partitions().len()).unwrap_or(0))?;
        (n > 0).then(|| {
            cache.insert(topic.to_owned(), n);
            n
        })
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::*;
    use crate::runtime::listener::Counters;

    #[test]
    fn a_producer_that_acknowledges_nothing_while_the_cluster_answers_is_replaced(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let cluster = MockCluster::new(1)?;
        cluster.create_topic("out", 1, 1)?;
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", cluster.bootstrap_servers()).set("enable.idempotence", "true");
        let counters = Counters::default();
        // Far longer than the test: only the wedge check can end the wait.
        let retry = RetryPolicy { timeout: Duration::from_secs(600), counters: &counters };
        let mut output = Output::new(&config, false, retry)?;
        output.unacknowledged_limit = Duration::from_secs(2);
        // Every produce request fails retriably: librdkafka retries on and on
        // while the broker answers everything else.
        cluster.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 2_000]);
        output.send(RawRecord {
            topic: "out".into(),
            partition: Some(0),
            offset: None,
            timestamp: 1,
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: crate::record::Headers::default(),
        })?;
        let error = match output.commit(&TopicPartitionList::new(), None, retry) {
            Ok(_) => return Err("a record no broker acknowledged was reported as written".into()),
            Err(e) => e,
        };
        assert_eq!(error.kafka_class(), Some(ErrorClass::Fatal), "{error}");
        assert!(error.to_string().contains("acknowledged while the cluster answers"), "{error}");
        Ok(())
    }
}
