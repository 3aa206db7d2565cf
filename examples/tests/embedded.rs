//! The README's quick start: `word-count` with no `--bootstrap-servers` runs
//! on the embedded cluster with demo data, prints counts, and stops cleanly.

use std::process::Command;

#[test]
fn word_count_runs_on_the_embedded_cluster() -> Result<(), Box<dyn std::error::Error>> {
    let out = Command::new(env!("CARGO_BIN_EXE_word-count"))
        .args(["--duration", "8", "--rate", "50"])
        .env("RUST_LOG", "warn")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let counts: Vec<(&str, u64)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("word-counts"))
        .filter_map(|l| l.split_once("->"))
        .filter_map(|(w, n)| Some((w.trim(), n.trim().parse().ok()?)))
        .collect();
    assert!(counts.len() >= 10, "counts were printed:\n{stdout}");
    // The demo text repeats "it was the"; its count grows as lines arrive.
    let was: Vec<u64> = counts.iter().filter(|(w, _)| *w == "was").map(|(_, n)| *n).collect();
    assert!(was.windows(2).all(|w| w[0] < w[1]) && was.last().is_some_and(|n| *n >= 2), "{was:?}");
    Ok(())
}

#[test]
fn help_documents_the_options() -> Result<(), Box<dyn std::error::Error>> {
    for bin in [
        env!("CARGO_BIN_EXE_word-count"),
        env!("CARGO_BIN_EXE_fraud-detection"),
        env!("CARGO_BIN_EXE_order-enrichment"),
        env!("CARGO_BIN_EXE_page-views"),
    ] {
        let out = Command::new(bin).arg("--help").output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        for flag in [
            "--bootstrap-servers",
            "--application-id",
            "--state-dir",
            "--processing-guarantee",
            "--threads",
            "--duration",
        ] {
            assert!(text.contains(flag), "{bin} --help mentions {flag}");
        }
        let bad = Command::new(bin).arg("--no-such-flag").output()?;
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("--no-such-flag"));
    }
    Ok(())
}
