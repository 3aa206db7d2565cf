//! What the schema-registry tests share: the registry's URL, one-call
//! encoding and decoding, the wire format's schema id, and the Python
//! Confluent client they compare with.

use std::io::Write;
use std::process::{Command, Stdio};

use streams_core::serde::{Serde, SerdeError};
use streams_core::Headers;

/// The registry's URL, or `None` after one loud line saying the test is skipped.
pub fn registry() -> Option<String> {
    match std::env::var("SCHEMA_REGISTRY_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED: no schema registry (run through scripts/test.sh, or set SCHEMA_REGISTRY_URL)");
            None
        }
    }
}

/// `value` encoded for `topic` (null as no bytes).
pub fn ser<S: Serde>(serde: &S, topic: &str, value: &S::Target) -> Result<Vec<u8>, SerdeError> {
    Ok(serde.serialize(topic, &mut Headers::new(), value)?.unwrap_or_default())
}

/// `bytes` read from `topic`.
pub fn de<S: Serde>(serde: &S, topic: &str, bytes: &[u8]) -> Result<S::Target, SerdeError> {
    serde.deserialize(topic, &Headers::new(), Some(bytes))
}

/// The error of a call that should fail.
pub fn failure<T: std::fmt::Debug>(result: Result<T, SerdeError>) -> SerdeError {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => e,
    }
}

/// The schema id of Confluent's wire format (bytes 1 to 4, after the magic byte).
pub fn schema_id(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]])
}

/// Runs the Python Confluent client (integration-tests/python/sr_client.py);
/// `None` when no Python can run it here (after one SKIPPED line).
pub fn python(args: &[&str], stdin: &str) -> Result<Option<String>, Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut child = Command::new("bash")
        .arg(format!("{root}/scripts/pyclient.sh"))
        .arg("run")
        .args(args)
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("no stdin")?.write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    match out.status.code() {
        Some(0) => Ok(Some(String::from_utf8(out.stdout)?)),
        Some(3) => {
            eprintln!("SKIPPED: the Python Confluent client cannot run here: {}", String::from_utf8_lossy(&out.stderr));
            Ok(None)
        }
        _ => Err(format!(
            "sr_client.py {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )
        .into()),
    }
}
