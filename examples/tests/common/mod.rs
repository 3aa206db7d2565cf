//! Running an example binary as a child process against the test broker.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running example; killed when dropped.
pub struct App {
    child: Child,
    log: std::path::PathBuf,
}

impl App {
    /// Starts `binary` with `args`; its stderr goes to a log file next to the state.
    pub fn start(binary: &str, args: &[String], log: &Path) -> std::io::Result<Self> {
        let err = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", "info,librdkafka=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()?;
        Ok(Self { child, log: log.to_path_buf() })
    }

    /// SIGKILL: no clean shutdown, no final commit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The tail of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The arguments every example gets in tests: the real broker, a unique
/// application id, a private state directory, fast commits and failure detection.
pub fn base_args(app_id: &str, state_dir: &Path) -> Vec<String> {
    [
        "--bootstrap-servers",
        &integration_tests::bootstrap_servers(),
        "--application-id",
        app_id,
        "--state-dir",
        &state_dir.display().to_string(),
        "--config",
        "consumer.session.timeout.ms=6000",
        "--config",
        "consumer.heartbeat.interval.ms=1000",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// `flag value` pairs as arguments.
pub fn args(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs.iter().flat_map(|(f, v)| [f.to_string(), v.to_string()]).collect()
}
