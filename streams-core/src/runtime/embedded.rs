//! The embedded cluster: librdkafka's in-process mock cluster, for demos and
//! quick local runs with nothing to install.

use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;

use rdkafka::mocking::MockCluster;

use crate::error::StreamsError;

enum Command {
    CreateTopic { name: String, partitions: i32, reply: mpsc::Sender<Result<(), String>> },
}

/// An in-process Kafka-protocol cluster (librdkafka's mock cluster).
///
/// Point any client at [`bootstrap_servers`](Self::bootstrap_servers). It is
/// for demos and local runs, not for exactly-once: the mock does not hide
/// aborted transactions from read_committed readers, does not store
/// transactional offset commits, and keeps at most 5 MiB or 100,000 records
/// per partition. It cannot create topics through the admin API; give it to
/// [`KafkaStreams::with_embedded_cluster`](super::KafkaStreams::with_embedded_cluster)
/// so that internal topics are created through the mock's own call.
///
/// ```
/// use streams_core::runtime::EmbeddedCluster;
///
/// let cluster = EmbeddedCluster::start()?;
/// cluster.create_topic("text-lines", 4)?;
/// assert!(!cluster.bootstrap_servers().is_empty());
/// # Ok::<(), streams_core::StreamsError>(())
/// ```
#[derive(Debug)]
pub struct EmbeddedCluster {
    bootstrap_servers: String,
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    owner: Option<thread::JoinHandle<()>>,
}

impl EmbeddedCluster {
    /// Starts a one-broker mock cluster on a thread of its own (the mock's
    /// handle cannot move between threads).
    pub fn start() -> Result<Self, StreamsError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
        let owner = thread::Builder::new()
            .name("rivulet-embedded-cluster".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Serves until every sender is gone, then drops the cluster here.
                for command in cmd_rx {
                    match command {
                        Command::CreateTopic { name, partitions, reply } => {
                            let _ = reply.send(cluster.create_topic(&name, partitions, 1).map_err(|e| e.to_string()));
                        }
                    }
                }
            })
            .map_err(|e| StreamsError::Embedded { operation: "start".into(), message: e.to_string() })?;
        let bootstrap_servers = ready_rx
            .recv()
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(|message| StreamsError::Embedded { operation: "start".into(), message })?;
        Ok(Self { bootstrap_servers, commands: Mutex::new(Some(cmd_tx)), owner: Some(owner) })
    }

    /// The `bootstrap.servers` of the cluster.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Creates a topic (replication factor 1). Creating an existing topic
    /// with the same partition count succeeds.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), StreamsError> {
        let fail = |message: String| StreamsError::Embedded { operation: format!("create topic `{name}`"), message };
        let (reply, answer) = mpsc::channel();
        {
            let guard = self.commands.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let sender = guard.as_ref().ok_or_else(|| fail("the embedded cluster is stopped".into()))?;
            sender
                .send(Command::CreateTopic { name: name.to_owned(), partitions, reply })
                .map_err(|_| fail("the embedded cluster is stopped".into()))?;
        }
        answer.recv().map_err(|_| fail("the embedded cluster stopped".into()))?.map_err(fail)
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        self.commands.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(owner) = self.owner.take() {
            let _ = owner.join();
        }
    }
}
