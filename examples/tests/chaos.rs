//! The chaos suite: the real `word-count` binary, as child processes, under
//! the faults a deployment meets: the broker going away (cleanly or killed)
//! while the app works or restores, SIGKILLs of instances, scaling out and
//! in, user code that panics, and an outage longer than `task.timeout.ms`.
//!
//! Input comes from a plain producer, expected counts are computed here from
//! the input, and output is read with a read_committed consumer. Under
//! exactly_once_v2 every word's counts must strictly increase and end exact;
//! under at_least_once nothing may be lost.
//!
//! Scenarios that take a broker down use the `chaos` instance of
//! `scripts/kafka.sh` (127.0.0.1:29192, started here on demand) so that the
//! rest of the suite keeps its broker, and run one at a time: a static mutex
//! in this process, and an flock on the instance's lock file across
//! processes (another `cargo test`, `scripts/chaos.sh`). The others use the
//! default test broker. Sizes are small enough for `cargo test`;
//! `scripts/chaos.sh NAME --words N …` runs one scenario bigger, through
//! these variables: RIVULET_CHAOS_WORDS, _KILLS, _OUTAGES, _DOWN_SECS, _SEED,
//! _TIMEOUT_SECS (and RIVULET_CHAOS_WORD_COUNT: another `word-count` binary;
//! RIVULET_CHAOS_APP_ARGS: more arguments for every app started).
//! Each run prints its seed and where the apps' logs are kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod common;
use common::{
    base_args_on, committed_offsets, contract_words, create_topic_on, produce_lines, App, Broker, CountsReader, Res,
    Rng,
};

/// The broker-restarting scenarios share the `chaos` instance: one at a time.
static CHAOS_BROKER: Mutex<()> = Mutex::new(());

fn chaos_broker() -> Res<(MutexGuard<'static, ()>, Broker)> {
    // A scenario that failed poisons the lock; the broker is still usable.
    let guard = CHAOS_BROKER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let broker = Broker::start("chaos")?;
    Ok((guard, broker))
}

/// Runs a scenario; its error, with the apps' log tails, fails the test as
/// readable text.
fn scenario(f: impl FnOnce() -> Res<()>) {
    if let Err(e) = f() {
        panic!("{e}");
    }
}

/// The `word-count` binary: this build's, or RIVULET_CHAOS_WORD_COUNT.
fn word_count_bin() -> String {
    std::env::var("RIVULET_CHAOS_WORD_COUNT").unwrap_or_else(|_| env!("CARGO_BIN_EXE_word-count").to_owned())
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(format!("RIVULET_CHAOS_{name}")).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const EOS: &str = "exactly_once_v2";
const ALOS: &str = "at_least_once";

/// One scenario's topics, application id, apps' logs and input so far.
struct Run {
    name: &'static str,
    servers: String,
    rng: Rng,
    input: String,
    output: String,
    partitions: i32,
    app_id: String,
    state: tempfile::TempDir,
    logs: PathBuf,
    started: usize,
    /// Expected counts of everything produced so far.
    expected: BTreeMap<String, u64>,
    words: u64,
    t0: Instant,
}

impl Run {
    fn new(name: &'static str, servers: &str, partitions: i32, seed: u64) -> Res<Self> {
        let seed = knob("SEED", seed);
        let input = integration_tests::unique_name(&format!("chaos-{name}-in"));
        let output = integration_tests::unique_name(&format!("chaos-{name}-out"));
        create_topic_on(servers, &input, partitions)?;
        create_topic_on(servers, &output, partitions)?;
        let logs = std::env::temp_dir().join("rivulet-chaos").join(integration_tests::unique_name(name));
        std::fs::create_dir_all(&logs)?;
        let run = Self {
            name,
            servers: servers.to_owned(),
            rng: Rng(seed | 1),
            input,
            output,
            partitions,
            app_id: integration_tests::unique_name(&format!("chaos-{name}")),
            state: tempfile::tempdir()?,
            logs,
            started: 0,
            expected: BTreeMap::new(),
            words: 0,
            t0: Instant::now(),
        };
        run.note(&format!("seed {seed}, broker {servers}, input {}, logs in {}", run.input, run.logs.display()));
        Ok(run)
    }

    fn note(&self, what: &str) {
        eprintln!("[{} {:6.1}s] {what}", self.name, self.t0.elapsed().as_secs_f64());
    }

    /// The state directory of instance `instance`.
    fn state_dir(&self, instance: &str) -> PathBuf {
        self.state.path().join(instance)
    }

    /// Starts instance `instance` (its own state directory) under `guarantee`
    /// with `extra` arguments; each start logs to a file of its own.
    fn start(&mut self, instance: &str, guarantee: &str, extra: &[&str]) -> Res<App> {
        let mut args = base_args_on(&self.servers, &self.app_id, &self.state_dir(instance));
        args.extend(
            [
                "--input-topic",
                &self.input,
                "--output-topic",
                &self.output,
                "--partitions",
                &self.partitions.to_string(),
                "--processing-guarantee",
                guarantee,
            ]
            .map(str::to_owned),
        );
        if guarantee == ALOS {
            args.extend(["--commit-interval-ms", "500"].map(str::to_owned));
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        // Diagnosis: `RIVULET_CHAOS_APP_ARGS="--config producer.debug=eos,msg"`.
        if let Ok(more) = std::env::var("RIVULET_CHAOS_APP_ARGS") {
            args.extend(more.split_whitespace().map(str::to_owned));
        }
        self.started += 1;
        let log = self.logs.join(format!("{:02}-{instance}.log", self.started));
        let app = App::start(&word_count_bin(), &args, &log)?;
        self.note(&format!("started {instance} (pid {}, log {})", app.pid(), log.display()));
        Ok(app)
    }

    /// A line of 1–12 words drawn from `vocab` words, in mixed case and
    /// with assorted separators.
    fn line(&mut self, vocab: u64) -> String {
        const SEPARATORS: [&str; 6] = [" ", " ", ", ", " - ", ". ", "\t"];
        let n = 1 + self.rng.below(12);
        let mut line = String::new();
        for i in 0..n {
            if i > 0 {
                line.push_str(SEPARATORS[self.rng.below(SEPARATORS.len() as u64) as usize]);
            }
            let w = self.rng.below(vocab);
            line.push_str(&if self.rng.below(10) == 0 { format!("W{w}") } else { format!("w{w}") });
        }
        line
    }

    /// Adds `line`'s words to the expected counts.
    fn expect(&mut self, line: &str) {
        for w in contract_words(line) {
            *self.expected.entry(w).or_default() += 1;
            self.words += 1;
        }
    }

    /// Produces `lines` (and expects their words unless `counted` is false).
    fn produce(&mut self, lines: &[String], counted: bool) -> Res<()> {
        if counted {
            for l in lines {
                self.expect(l);
            }
        }
        produce_lines(&self.servers, &self.input, lines)?;
        Ok(())
    }

    /// Produces about `words` more words from a vocabulary of `vocab`.
    fn produce_words(&mut self, words: u64, vocab: u64) -> Res<()> {
        let mut lines = Vec::new();
        let mut n = 0;
        while n < words {
            let line = self.line(vocab);
            n += contract_words(&line).count() as u64;
            lines.push(line);
        }
        self.produce(&lines, true)?;
        self.note(&format!("produced {n} words in {} lines ({} words in all)", lines.len(), self.words));
        Ok(())
    }

    /// Input in the background: about `words` words from a vocabulary of
    /// `vocab` (expected at once), produced in 20 batches spread over about
    /// `secs` seconds, so that the faults meet an app under load.
    fn feed(&mut self, words: u64, vocab: u64, secs: u64) -> Res<Feeder> {
        let mut lines = Vec::new();
        let mut n = 0;
        while n < words {
            let line = self.line(vocab);
            n += contract_words(&line).count() as u64;
            self.expect(&line);
            lines.push(line);
        }
        self.note(&format!("feeding {n} words in {} lines over {secs} s", lines.len()));
        let (servers, topic) = (self.servers.clone(), self.input.clone());
        let batches = 20;
        let handle = std::thread::spawn(move || -> Result<(), String> {
            let start = Instant::now();
            let per_batch = lines.len().div_ceil(batches);
            for (i, batch) in lines.chunks(per_batch).enumerate() {
                // The pace of the load, not a wait for anything.
                let due = start + Duration::from_secs(secs) * i as u32 / batches as u32;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                produce_lines(&servers, &topic, batch).map_err(|e| format!("feeding batch {i}: {e}"))?;
            }
            Ok(())
        });
        Ok(Feeder { handle: Some(handle) })
    }

    fn reader(&self) -> Res<CountsReader> {
        CountsReader::new(&self.servers, &self.output)
    }
}

/// The background producer of [`Run::feed`].
struct Feeder {
    handle: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Feeder {
    /// Whether it has produced everything.
    fn done(&self) -> bool {
        self.handle.as_ref().is_none_or(std::thread::JoinHandle::is_finished)
    }

    /// Waits for the last batch.
    fn join(&mut self) -> Res<()> {
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| "the feeder panicked")?.map_err(Into::into),
            None => Ok(()),
        }
    }
}

/// How long a wait for output may take: RIVULET_CHAOS_TIMEOUT_SECS, else
/// scaled with the input.
fn timeout_for(words: u64) -> Duration {
    Duration::from_secs(knob("TIMEOUT_SECS", 180 + words / 500))
}

/// Every app of `apps` is still running; else which one exited, with its log.
fn all_running(apps: &mut [&mut App]) -> Result<(), String> {
    for app in apps.iter_mut() {
        if let Some(status) = app.exit_status() {
            return Err(format!(
                "the app (pid {}) exited with {status}; its log ({}) ends:\n{}",
                app.pid(),
                app.log_path().display(),
                app.tail(40)
            ));
        }
    }
    Ok(())
}

/// The broker goes away for `secs` seconds (SIGKILL when `hard`, else a
/// clean shutdown) and comes back; the apps must keep running throughout.
fn outage(run: &Run, broker: &mut Broker, hard: bool, secs: u64, apps: &mut [&mut App]) -> Res<()> {
    run.note(&format!("broker down ({}) for {secs} s", if hard { "SIGKILL" } else { "SIGTERM" }));
    broker.down(hard)?;
    // The outage lasts this long by design; meanwhile the apps must stay up.
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        all_running(apps).map_err(|e| format!("during the broker outage: {e}"))?;
        std::thread::sleep(Duration::from_millis(100));
    }
    broker.up()?;
    run.note("broker up again");
    all_running(apps).map_err(|e| format!("after the broker outage: {e}"))?;
    Ok(())
}

/// Waits until `reader` has read `more` records beyond what it had.
fn wait_progress(run: &Run, reader: &mut CountsReader, more: usize, apps: &mut [&mut App]) -> Res<()> {
    let target = reader.records + more;
    let waited = reader.wait(
        timeout_for(run.words),
        &format!("{more} more output records"),
        |r| r.records >= target,
        || all_running(apps),
    );
    waited.map_err(|e| stalled(e, apps))
}

/// A timed-out wait's error, with the logs of the apps (which still run).
fn stalled(e: Box<dyn std::error::Error>, apps: &mut [&mut App]) -> Box<dyn std::error::Error> {
    let message = e.to_string();
    if !message.starts_with("timed out") {
        return e;
    }
    let logs: Vec<String> = apps
        .iter()
        .map(|a| format!("the log of pid {} ({}) ends:\n{}", a.pid(), a.log_path().display(), a.tail(25)))
        .collect();
    format!("{message}\n{}", logs.join("\n")).into()
}

/// Waits until the output has every expected count, then checks it.
fn finish(run: &Run, reader: &mut CountsReader, guarantee: &str, apps: &mut [&mut App]) -> Res<()> {
    let expected = run.expected.clone();
    let waited =
        reader.wait(timeout_for(run.words), "the final counts", |r| r.reached(&expected), || all_running(apps));
    waited.map_err(|e| stalled(e, apps))?;
    // Anything committed after the counts were reached (a duplicate) shows too.
    reader.drain(Duration::from_secs(60))?;
    let verdict = if guarantee == EOS { reader.check_exact(&expected) } else { reader.check_at_least(&expected) };
    verdict.map_err(|e| format!("{} words, {} output records: {e}", run.words, reader.records))?;
    run.note(&format!("{} words counted {} ({} output records)", run.words, guarantee, reader.records));
    Ok(())
}

/// Two broker outages (one clean shutdown, one SIGKILL) while the app works;
/// input in parts, one more after each outage.
fn broker_restarts(name: &'static str, guarantee: &str, seed: u64) -> Res<()> {
    let (_lock, mut broker) = chaos_broker()?;
    let mut run = Run::new(name, broker.servers(), 4, seed)?;
    let words = knob("WORDS", 100_000);
    let outages = knob("OUTAGES", 2);
    let down_secs = knob("DOWN_SECS", 15);
    let part = words / (outages + 1);
    run.produce_words(part, 2_000)?;
    let mut app = run.start("a", guarantee, &[])?;
    let mut reader = run.reader()?;
    for i in 0..outages {
        // Mid-part: some output committed, more input waiting.
        wait_progress(&run, &mut reader, 300, &mut [&mut app])?;
        let behind = !reader.reached(&run.expected);
        run.note(&format!("outage {} with {} output records read (app behind: {behind})", i + 1, reader.records));
        outage(&run, &mut broker, i % 2 == 1, down_secs, &mut [&mut app])?;
        let rest = if i + 1 == outages { words - part * outages } else { part };
        run.produce_words(rest, 2_000)?;
    }
    finish(&run, &mut reader, guarantee, &mut [&mut app])?;
    let status = app.terminate(Duration::from_secs(60));
    run.note(&format!("stopped with SIGTERM: {status:?}"));
    Ok(())
}

#[test]
fn broker_restart_exactly_once() {
    scenario(|| broker_restarts("broker_restart_exactly_once", EOS, 0xc4a0_5000_0000_0001));
}

#[test]
fn broker_restart_at_least_once() {
    scenario(|| broker_restarts("broker_restart_at_least_once", ALOS, 0xc4a0_5000_0000_0002));
}

/// Lines in the log of `app` that contain `what`.
fn log_lines_with(app: &App, what: &str) -> usize {
    app.log_text().lines().filter(|l| l.contains(what)).count()
}

/// State built, the app stopped and its state directory deleted; it starts
/// again and the broker is killed while it restores from the changelog.
#[test]
fn broker_restart_during_restore() {
    scenario(|| {
        let (_lock, mut broker) = chaos_broker()?;
        let mut run = Run::new("broker_restart_during_restore", broker.servers(), 4, 0xc4a0_5000_0000_0003)?;
        let words = knob("WORDS", 120_000);
        let down_secs = knob("DOWN_SECS", 15);
        // Mostly distinct words: a changelog about as long as the input.
        let vocab = words;
        run.produce_words(words, vocab)?;
        let mut app = run.start("a", EOS, &[])?;
        let mut reader = run.reader()?;
        finish(&run, &mut reader, EOS, &mut [&mut app])?;
        let status = app.terminate(Duration::from_secs(60));
        run.note(&format!("stopped with SIGTERM: {status:?}"));
        if status.is_none() {
            app.kill();
        }
        std::fs::remove_dir_all(run.state_dir("a"))?;
        run.note("state directory deleted");

        let mut app = run.start("a", EOS, &[])?;
        let deadline = Instant::now() + timeout_for(run.words);
        while log_lines_with(&app, "restoring") == 0 {
            all_running(&mut [&mut app]).map_err(|e| format!("before restoring: {e}"))?;
            if Instant::now() >= deadline {
                return Err(format!(
                    "no \"restoring\" in the log within {:?}:\n{}",
                    timeout_for(run.words),
                    app.tail(30)
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (restoring, restored) = (log_lines_with(&app, "restoring"), log_lines_with(&app, "restored"));
        outage(&run, &mut broker, true, down_secs, &mut [&mut app])?;
        run.note(&format!(
            "when the broker went down the log had {restoring} \"restoring\" and {restored} \"restored\" lines"
        ));
        // More of the same words: their counts continue from the restored state.
        run.produce_words(words / 5, vocab)?;
        finish(&run, &mut reader, EOS, &mut [&mut app])?;
        assert!(
            restored < restoring,
            "the outage should have hit a restore in progress, but the {restoring} restores begun had ended; \
             make the state bigger (RIVULET_CHAOS_WORDS)"
        );
        Ok(())
    });
}

/// Two instances, SIGKILLed at random moments and restarted at once,
/// while input keeps coming.
#[test]
fn kill9_loop_two_instances() {
    scenario(|| {
        let servers = integration_tests::bootstrap_servers();
        let mut run = Run::new("kill9_loop_two_instances", &servers, 4, 0xc4a0_5000_0000_0004)?;
        let words = knob("WORDS", 300_000);
        let kills = knob("KILLS", 10);
        let mut feeder = run.feed(words, 2_000, words / 10_000)?;
        let mut apps = [run.start("a", EOS, &[])?, run.start("b", EOS, &[])?];
        let mut reader = run.reader()?;
        for k in 0..kills {
            let [a, b] = &mut apps;
            // A random moment: once some more output is committed (the app
            // works), and a random time more.
            let more = 100 + run.rng.below(1_000) as usize;
            let expected = run.expected.clone();
            let target = reader.records + more;
            let waited = reader.wait(
                timeout_for(run.words),
                &format!("{more} more output records"),
                |r| r.records >= target || r.reached(&expected),
                || all_running(&mut [&mut *a, &mut *b]),
            );
            waited.map_err(|e| stalled(e, &mut [&mut *a, &mut *b]))?;
            let pause = Instant::now() + Duration::from_millis(run.rng.below(2_500));
            while Instant::now() < pause {
                reader.poll(Duration::from_millis(50));
            }
            all_running(&mut [a, b])?;
            let victim = run.rng.below(2) as usize;
            let name = ["a", "b"][victim];
            let state = if feeder.done() { "input complete" } else { "input still coming" };
            run.note(&format!(
                "kill {} of {kills}: SIGKILL {name} ({} output records, {state})",
                k + 1,
                reader.records
            ));
            apps[victim].kill();
            apps[victim] = run.start(name, EOS, &[])?;
        }
        feeder.join()?;
        let [a, b] = &mut apps;
        finish(&run, &mut reader, EOS, &mut [a, b])
    });
}

/// The `processed=N` of the last status line in `app`'s log.
fn processed(app: &App) -> u64 {
    app.log_text()
        .lines()
        .rev()
        .find_map(|l| l.split("processed=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap_or(0)
}

/// One instance, then three (each must take work), then one again, while
/// input keeps coming.
#[test]
fn scale_1_3_1() {
    scenario(|| {
        let servers = integration_tests::bootstrap_servers();
        let mut run = Run::new("scale_1_3_1", &servers, 4, 0xc4a0_5000_0000_0005)?;
        let words = knob("WORDS", 300_000);
        let mut feeder = run.feed(words, 2_000, words / 10_000)?;
        let mut a = run.start("a", EOS, &[])?;
        let mut reader = run.reader()?;
        wait_progress(&run, &mut reader, 300, &mut [&mut a])?;

        let mut b = run.start("b", EOS, &[])?;
        let mut c = run.start("c", EOS, &[])?;
        // Scaled out: the new instances take tasks and process records.
        let deadline = Instant::now() + timeout_for(run.words);
        while processed(&b) == 0 || processed(&c) == 0 {
            reader.poll(Duration::from_millis(200));
            all_running(&mut [&mut a, &mut b, &mut c]).map_err(|e| format!("scaling out: {e}"))?;
            if Instant::now() >= deadline || reader.reached(&run.expected) {
                return Err(format!(
                    "after scaling out, b processed {} and c {} records:\nb:\n{}\nc:\n{}",
                    processed(&b),
                    processed(&c),
                    b.tail(15),
                    c.tail(15)
                )
                .into());
            }
        }
        let state = if feeder.done() { "input complete" } else { "input still coming" };
        run.note(&format!("b processed {}, c processed {} ({state})", processed(&b), processed(&c)));
        wait_progress(&run, &mut reader, 300, &mut [&mut a, &mut b, &mut c])?;

        // Scaled in: b and c stop cleanly.
        for (name, app) in [("b", &mut b), ("c", &mut c)] {
            let status = app.terminate(Duration::from_secs(60));
            run.note(&format!("{name} stopped with SIGTERM: {status:?}"));
            if !status.is_some_and(|s| s.success()) {
                return Err(format!("{name} should stop cleanly on SIGTERM, got {status:?}:\n{}", app.tail(30)).into());
            }
        }
        let state = if feeder.done() { "input complete" } else { "input still coming" };
        run.note(&format!("scaled in to a ({state})"));
        feeder.join()?;
        finish(&run, &mut reader, EOS, &mut [&mut a])
    });
}

const PANIC_WORD: &str = "kaboom";

/// Lines from a small vocabulary with `PANIC_WORD` lines at `at`; a panic
/// line also has a word of its own (`poisonN`) and common words.
fn panic_input(run: &mut Run, lines: usize, at: &[usize]) -> Vec<(String, bool)> {
    (0..lines)
        .map(
            |i| {
                if at.contains(&i) {
                    (format!("w1 {PANIC_WORD} poison{i}, w2"), false)
                } else {
                    (run.line(200), true)
                }
            },
        )
        .collect()
}

/// With `processing.exception.handler=log_and_continue`, a panicking
/// closure costs its own record only.
#[test]
fn panicking_closure_continue() {
    scenario(|| {
        let servers = integration_tests::bootstrap_servers();
        let mut run = Run::new("panicking_closure_continue", &servers, 1, 0xc4a0_5000_0000_0006)?;
        let input = panic_input(&mut run, 3_000, &[400, 1_500, 2_900]);
        for (line, counted) in &input {
            if *counted {
                run.expect(line);
            }
        }
        let lines: Vec<String> = input.into_iter().map(|(l, _)| l).collect();
        run.produce(&lines, false)?;
        let mut app = run.start(
            "a",
            EOS,
            &["--panic-on-word", PANIC_WORD, "--config", "processing.exception.handler=log_and_continue"],
        )?;
        let mut reader = run.reader()?;
        finish(&run, &mut reader, EOS, &mut [&mut app])?;
        let log = app.log_text();
        let skips: Vec<&str> =
            log.lines().filter(|l| !l.contains("status:") && l.to_lowercase().contains("skip")).take(5).collect();
        assert!(!skips.is_empty(), "the log should mention the skipped records:\n{}", app.tail(30));
        run.note(&format!("the log says:\n{}", skips.join("\n")));
        Ok(())
    });
}

/// With the default handler, a panicking closure stops the app with an
/// error naming the node and the record, and nothing past the record is
/// committed.
#[test]
fn panicking_closure_fail() {
    scenario(|| {
        let servers = integration_tests::bootstrap_servers();
        let mut run = Run::new("panicking_closure_fail", &servers, 1, 0xc4a0_5000_0000_0007)?;
        let before = 1_000;
        let first: Vec<String> = (0..before).map(|_| run.line(200)).collect();
        run.produce(&first, true)?;
        let mut app = run.start("a", EOS, &["--panic-on-word", PANIC_WORD])?;
        let mut reader = run.reader()?;
        let expected = run.expected.clone();
        let waited = reader.wait(
            timeout_for(run.words),
            "the counts before the panic",
            |r| r.reached(&expected),
            || all_running(&mut [&mut app]),
        );
        waited.map_err(|e| stalled(e, &mut [&mut app]))?;
        // The panic record is at offset `before` of partition 0; what follows
        // has words of its own.
        let mut rest = vec![format!("w1 {PANIC_WORD} w2")];
        rest.extend((0..500).map(|i| format!("{} after{i}", run.line(200))));
        run.produce(&rest, false)?;
        let status = app.wait_exit(Duration::from_secs(120));
        let tail = app.tail(40);
        let status = status.ok_or_else(|| format!("the app did not stop after the panic:\n{tail}"))?;
        run.note(&format!("exited with {status}"));
        assert!(!status.success(), "it must exit with a non-zero status, got {status}:\n{tail}");

        // The error names the node and the record (topic, partition, offset).
        let log = app.log_text();
        let node = flat_map_node(&log).ok_or_else(|| format!("no flat-map node in the logged topology:\n{log}"))?;
        let errors = error_text(&log);
        let offset = before.to_string();
        let has_offset = errors.split(|c: char| !c.is_ascii_digit()).any(|t| t == offset);
        if !(errors.contains(&node) && errors.contains(&run.input) && has_offset) {
            return Err(format!(
                "the error should name node {node} and the record (topic {}, partition 0, offset {offset}); \
                 the log's errors and warnings:\n{errors}",
                run.input
            )
            .into());
        }
        run.note(&format!("the error:\n{errors}"));

        // Nothing from past the record is committed: neither its input offset
        // nor output of the lines after it.
        reader.drain(Duration::from_secs(90))?;
        let committed = committed_offsets(&run.servers, &run.app_id, &run.input, 1)?;
        assert!(
            committed[0].is_some_and(|o| o <= before as i64),
            "committed input offset {:?}, expected at most {before}",
            committed[0]
        );
        let leaked: Vec<&String> =
            reader.counts.keys().filter(|w| w.starts_with("after") || *w == PANIC_WORD).collect();
        assert!(leaked.is_empty(), "words from after the panic record were committed: {leaked:?}");
        reader.check_exact(&expected).map_err(|e| format!("the counts before the panic: {e}"))?;
        Ok(())
    });
}

/// The errors and warnings of a log, and what was printed without `tracing`
/// (the final error, a panic message), leaving out the logged topology,
/// status lines and connection noise.
fn error_text(log: &str) -> String {
    common::log_events(log)
        .into_iter()
        .filter(|l| !l.contains("status:"))
        .filter(|l| !l.starts_with(|c: char| c.is_ascii_digit()) || l.contains(" ERROR ") || l.contains(" WARN "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The name of the word-count's flat-map node in the logged topology.
fn flat_map_node(log: &str) -> Option<String> {
    log.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .find(|t| t.to_uppercase().contains("FLATMAP") || t.to_uppercase().contains("FLAT-MAP"))
        .map(str::to_owned)
}

/// A broker outage longer than `task.timeout.ms` stops the app with an
/// error that says so.
#[test]
fn task_timeout_exceeded() {
    scenario(|| {
        let (_lock, mut broker) = chaos_broker()?;
        let mut run = Run::new("task_timeout_exceeded", broker.servers(), 4, 0xc4a0_5000_0000_0008)?;
        run.produce_words(knob("WORDS", 60_000), 2_000)?;
        let mut app = run.start("a", EOS, &["--config", "task.timeout.ms=5000"])?;
        let mut reader = run.reader()?;
        wait_progress(&run, &mut reader, 300, &mut [&mut app])?;
        run.note(&format!("broker down (SIGKILL) with {} output records read", reader.records));
        broker.down(true)?;
        // Down until the app gives up, for 45 s at most (the fault): with
        // task.timeout.ms at 5 s it should be gone well before (librdkafka's
        // own request timeouts come on top: about 20-26 s seen).
        let down = Instant::now();
        let status = app.wait_exit(Duration::from_secs(45));
        run.note(&format!("{status:?} {:.1} s into the outage", down.elapsed().as_secs_f64()));
        broker.up()?;
        let tail = app.tail(40);
        let status = status.ok_or_else(|| format!("the app outlived 45 s of outage, 9 x task.timeout.ms:\n{tail}"))?;
        assert!(!status.success(), "it must exit with a non-zero status, got {status}:\n{tail}");
        let errors = error_text(&app.log_text());
        if !errors.contains("task.timeout.ms") {
            return Err(format!("its error should name task.timeout.ms; its errors and warnings:\n{errors}").into());
        }
        run.note(&format!("exited with {status}; the error:\n{errors}"));
        Ok(())
    });
}
