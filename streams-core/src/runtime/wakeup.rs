//! Waking a stream thread when its producer has delivery reports to serve.
//!
//! rust-rdkafka's `BaseProducer::poll(timeout)` keeps polling until the whole
//! time-out has passed, whatever it served, and hands librdkafka what is left
//! of it in whole milliseconds: below one millisecond it polls without
//! blocking. A wait for acknowledgements made of such polls spins (W2 under
//! exactly-once: a tenth of all CPU in clock reads at commits) and always
//! lasts its full time-out, however early the last report came.
//!
//! librdkafka can instead write to a file descriptor when the producer's
//! event queue turns non-empty. The thread blocks reading the other end,
//! then serves what arrived with non-blocking polls, one event each.
#![allow(unsafe_code)]

use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::producer::{BaseProducer, Producer as _, ProducerContext};

/// A producer's event queue, and a socket librdkafka writes to when the
/// queue receives an event after it was last served.
pub(crate) struct ReportSignal {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    reader: UnixStream,
    /// librdkafka writes to this end; it must stay open while it may.
    _writer: UnixStream,
    /// Keeps the client alive until the queue handle is destroyed, which
    /// librdkafka requires before the client goes.
    _client: Arc<dyn Send + Sync>,
}

impl std::fmt::Debug for ReportSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportSignal").field("fd", &self.reader.as_raw_fd()).finish_non_exhaustive()
    }
}

// SAFETY: librdkafka's queue handles may be used from any thread, and the
// queue is only read (its length) through this one.
unsafe impl Send for ReportSignal {}
// SAFETY: as above; every method takes `&self` and is safe to call at once
// from several threads (a read on a socket, a queue length).
unsafe impl Sync for ReportSignal {}

impl ReportSignal {
    /// A signal for the event queue `producer` serves in `poll`. `None` if
    /// no socket pair can be made (out of file descriptors) or librdkafka
    /// gives no queue; the caller then polls with time-outs as before.
    pub(crate) fn new<C: ProducerContext + 'static>(producer: &Arc<BaseProducer<C>>) -> Option<Self> {
        let (reader, writer) = UnixStream::pair().ok()?;
        // librdkafka writes without blocking and ignores a full socket: a
        // wake-up already unread is all the reader needs.
        writer.set_nonblocking(true).ok()?;
        let rk = producer.client().native_ptr();
        // SAFETY: `rk` is a live producer handle, kept alive by `_client`
        // until the queue handle is destroyed in `drop`.
        let queue = NonNull::new(unsafe { rdsys::rd_kafka_queue_get_main(rk) })?;
        const WAKE: &[u8] = b"1";
        // SAFETY: the queue handle is live; librdkafka copies the payload,
        // and the descriptor stays open until the event is disabled again.
        unsafe {
            rdsys::rd_kafka_queue_io_event_enable(queue.as_ptr(), writer.as_raw_fd(), WAKE.as_ptr().cast(), WAKE.len());
        }
        let client: Arc<dyn Send + Sync> = Arc::<BaseProducer<C>>::clone(producer);
        Some(Self { queue, reader, _writer: writer, _client: client })
    }

    /// Whether events wait in the queue.
    pub(crate) fn pending(&self) -> bool {
        // SAFETY: the queue handle is live until `drop`.
        unsafe { rdsys::rd_kafka_queue_length(self.queue.as_ptr()) > 0 }
    }

    /// Blocks until an event arrived since the queue was last served, or
    /// for `timeout`; `Ok(true)` if woken by an event. The queue must have
    /// been served until empty first: librdkafka signals only an empty
    /// queue's first event. A wake-up may be stale (the event already
    /// served): callers check what they wait for and wait again. An error
    /// means the socket is unusable and the caller must wait otherwise.
    pub(crate) fn wait(&self, timeout: Duration) -> std::io::Result<bool> {
        // A zero read time-out means "block forever" to the socket.
        self.reader.set_read_timeout(Some(timeout.max(Duration::from_micros(1))))?;
        // Large enough to take every stale wake-up at once: librdkafka
        // writes one for every event batch the main loop serves between
        // two waits.
        let mut buf = [0u8; 4096];
        match (&self.reader).read(&mut buf) {
            Ok(n) => Ok(n > 0),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for ReportSignal {
    fn drop(&mut self) {
        // SAFETY: the queue handle is live (the client is, through
        // `_client`); after disabling, librdkafka no longer writes to the
        // descriptor closed when `writer` drops.
        unsafe {
            rdsys::rd_kafka_queue_io_event_enable(self.queue.as_ptr(), -1, std::ptr::null(), 0);
            rdsys::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _};

    use super::*;

    /// Every wait for an acknowledgement ends because librdkafka signalled a
    /// delivery report, not at its time-out, and the reports are all served
    /// by non-blocking polls.
    #[test]
    fn a_wait_ends_when_delivery_reports_arrive() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 1, 1).expect("topic");
        let producer: Arc<BaseProducer<DefaultProducerContext>> = Arc::new(
            ClientConfig::new()
                .set("bootstrap.servers", cluster.bootstrap_servers())
                .set("linger.ms", "0")
                .create()
                .expect("producer"),
        );
        let signal = ReportSignal::new(&producer).expect("signal");
        for round in 0..20 {
            producer.send(BaseRecord::<[u8], [u8]>::to("t").payload(b"v".as_slice())).expect("send");
            while producer.in_flight_count() > 0 {
                while signal.pending() {
                    producer.poll(Duration::ZERO);
                }
                if producer.in_flight_count() > 0 {
                    let woken = signal.wait(Duration::from_secs(30)).expect("the socket works");
                    assert!(woken, "round {round}: no wake-up within 30 s");
                }
            }
        }
        drop(signal);
        assert_eq!(Arc::strong_count(&producer), 1, "the signal let go of the producer");
    }
}
