//! State across instances and restarts on the real broker: two instances
//! split the tasks and one takes the other's over (restoring from the
//! changelog); a restart with local state restores only past its checkpoint;
//! a restart without it restores everything; results stay exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::{create_topic_blocking, latest_by_key, produce, read_until, unique_name, wait_until};
use rivulet_examples::word_count;
use streams_core::runtime::{KafkaStreams, State, StateRestoreListener};
use streams_core::TaskId;

mod common;
use common::{config, lines, merge, records};

const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Restored(AtomicU64);

impl StateRestoreListener for Restored {
    fn on_batch_restored(&self, _task: TaskId, _store: &str, _end: i64, restored: u64) {
        self.0.fetch_add(restored, Ordering::Relaxed);
    }
}

#[test]
fn a_second_instance_takes_over_and_restores() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("lines"), unique_name("counts"), unique_name("wc-pair"));
    create_topic_blocking(&input, 4)?;
    create_topic_blocking(&output, 4)?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = KafkaStreams::new(word_count::topology(&input, &output)?, config(&app, dir_a.path(), "exactly_once_v2"))?;
    let b = KafkaStreams::new(word_count::topology(&input, &output)?, config(&app, dir_b.path(), "exactly_once_v2"))?;
    let restored_a = Arc::new(Restored::default());
    a.set_restore_listener(restored_a.clone());
    a.start()?;
    assert!(a.wait_for_state(State::Running, TIMEOUT));
    b.start()?;
    // Both in the group: the 8 tasks (2 sub-topologies × 4 partitions) split.
    wait_until(TIMEOUT, "tasks split between the instances", || {
        let (ta, tb) = (a.local_tasks(), b.local_tasks());
        (ta.len() == 4 && tb.len() == 4 && ta.iter().all(|t| !tb.contains(t))).then_some(())
    })?;

    let (first, expected_first) = lines(6_000, 1);
    produce(&input, &records(&first, 1_700_000_000_000))?;
    read_until(&output, TIMEOUT, |r| latest_by_key(r) == expected_first)?;

    b.close();
    assert_eq!(b.state(), State::NotRunning);
    wait_until(TIMEOUT, "instance A running all tasks", || {
        (a.local_tasks().len() == 8 && a.state() == State::Running).then_some(())
    })?;
    assert!(restored_a.0.load(Ordering::Relaxed) > 0, "A restored B's stores from their changelogs");

    let (second, expected_second) = lines(6_000, 2);
    produce(&input, &records(&second, 1_700_000_100_000))?;
    let expected = merge(&expected_first, &expected_second);
    let read = read_until(&output, TIMEOUT, |r| latest_by_key(r) == expected);
    a.close();
    assert_eq!(latest_by_key(&read?), expected);
    Ok(())
}

#[test]
fn restarts_restore_from_the_checkpoint_or_from_scratch() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("lines"), unique_name("counts"), unique_name("wc-restart"));
    create_topic_blocking(&input, 2)?;
    create_topic_blocking(&output, 2)?;
    let dir = tempfile::tempdir()?;
    let run =
        |expected: &std::collections::BTreeMap<String, Option<String>>| -> Result<u64, Box<dyn std::error::Error>> {
            let streams =
                KafkaStreams::new(word_count::topology(&input, &output)?, config(&app, dir.path(), "exactly_once_v2"))?;
            let restored = Arc::new(Restored::default());
            streams.set_restore_listener(restored.clone());
            streams.start()?;
            let read = read_until(&output, TIMEOUT, |r| &latest_by_key(r) == expected);
            streams.close();
            read?;
            Ok(restored.0.load(Ordering::Relaxed))
        };

    let (first, mut expected) = lines(5_000, 3);
    produce(&input, &records(&first, 1_700_000_000_000))?;
    assert_eq!(run(&expected)?, 0, "a fresh state directory on fresh changelogs restores nothing");

    let (second, more) = lines(500, 4);
    produce(&input, &records(&second, 1_700_000_100_000))?;
    expected = merge(&expected, &more);
    let restored = run(&expected)?;
    assert_eq!(restored, 0, "with local state kept, restore reads only past the checkpoint (nothing new)");

    // Without local state: everything comes back from the changelogs.
    KafkaStreams::new(word_count::topology(&input, &output)?, config(&app, dir.path(), "exactly_once_v2"))?
        .clean_up()?;
    let (third, more) = lines(500, 5);
    produce(&input, &records(&third, 1_700_000_200_000))?;
    expected = merge(&expected, &more);
    let restored = run(&expected)?;
    assert!(restored >= expected.len() as u64, "full restore of every word's count ({restored} records)");
    Ok(())
}
