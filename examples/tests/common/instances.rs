//! Example instances run as child processes with an HTTP endpoint, and
//! waiting on them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{App, Res};

/// An example child process with its HTTP endpoint and state directory.
pub struct Instance {
    pub name: &'static str,
    /// Declared before the state directory: the process dies before its
    /// directory is removed.
    pub app: App,
    pub http: SocketAddr,
    pub _state: tempfile::TempDir,
}

/// Every instance still runs; else which one exited, with its log.
pub fn alive(instances: &mut [&mut Instance]) -> Result<(), String> {
    for i in instances.iter_mut() {
        if let Some(status) = i.app.exit_status() {
            return Err(format!(
                "instance {} (pid {}) exited with {status}; its log ({}) ends:\n{}",
                i.name,
                i.app.pid(),
                i.app.log_path().display(),
                i.app.tail(40)
            ));
        }
    }
    Ok(())
}

/// The instances' log tails, for a failure message.
pub fn tails(instances: &[&mut Instance]) -> String {
    instances
        .iter()
        .map(|i| format!("the log of {} ({}) ends:\n{}", i.name, i.app.log_path().display(), i.app.tail(25)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls `check` until it holds; fails with its last complaint and the
/// instances' logs after `timeout`, or at once when an instance exits.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    instances: &mut [&mut Instance],
    mut check: impl FnMut(&[&mut Instance]) -> Result<T, String>,
) -> Res<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check(instances) {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        alive(instances).map_err(|e| format!("while waiting for {what}: {e}"))?;
        if Instant::now() >= deadline {
            return Err(
                format!("timed out after {timeout:?} waiting for {what}; last: {last}\n{}", tails(instances)).into()
            );
        }
        // The pace of polling, not what the test waits on.
        std::thread::sleep(Duration::from_millis(100));
    }
}
