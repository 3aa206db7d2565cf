//! `page-views`: final views per page per minute, and user sessions.
//!
//! Contract. Input `page-views`: JSON `{"user_id", "page", "ts"}` (record time
//! `ts`). Output `page-view-counts`: key = page, JSON `{"page",
//! "window_start", "window_end", "views"}`, the final count of each 1-minute
//! tumbling window (grace 10 s), one record per window once it closed.
//! Output `user-sessions`: key = user_id, JSON `{"user_id", "session_start",
//! "session_end", "views"}`, one record per closed session (5-minute
//! inactivity gap; `session_end` is the time of the session's last view;
//! grace 10 s).
//!
//! With `--format avro` (see [`crate::format`]) the same, with Confluent-framed
//! Avro values: input [`avro::PAGE_VIEW_SCHEMA`] (`PageView {user_id: string,
//! page: string, ts: long}`, or any compatible writer schema), outputs
//! [`avro::PAGE_VIEW_COUNT_SCHEMA`] (`PageViewCount {page: string,
//! window_start: long, window_end: long, views: long}`) and
//! [`avro::USER_SESSION_SCHEMA`] (`UserSession {user_id: string,
//! session_start: long, session_end: long, views: long}`), registered as
//! `<topic>-value`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streams_dsl::prelude::*;
use streams_dsl::{DslError, SerdeError, SerdeRef};

use crate::format::Format;

/// Default input topic.
pub const INPUT: &str = "page-views";
/// Default per-page output topic.
pub const COUNTS: &str = "page-view-counts";
/// Default sessions output topic.
pub const SESSIONS: &str = "user-sessions";
/// Window size of the page counts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Session inactivity gap.
pub const GAP: Duration = Duration::from_secs(300);
/// Grace of both.
pub const GRACE: Duration = Duration::from_secs(10);

/// A page view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageView {
    /// Who.
    pub user_id: String,
    /// What.
    pub page: String,
    /// When, ms.
    #[serde(default)]
    pub ts: Option<i64>,
}

/// A page's views in one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCount {
    /// The page.
    pub page: String,
    /// Window start, ms (inclusive).
    pub window_start: i64,
    /// Window end, ms (exclusive).
    pub window_end: i64,
    /// Views.
    pub views: i64,
}

/// A user's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Who.
    pub user_id: String,
    /// First view, ms.
    pub session_start: i64,
    /// Last view, ms.
    pub session_end: i64,
    /// Views.
    pub views: i64,
}

/// The Avro records of the topics: the schemas and their Rust shapes.
pub mod avro {
    use serde::{Deserialize, Serialize};

    use crate::format::AvroRecord;

    /// The input record.
    pub const PAGE_VIEW_SCHEMA: &str = r#"{
  "type": "record",
  "name": "PageView",
  "fields": [
    {"name": "user_id", "type": "string"},
    {"name": "page", "type": "string"},
    {"name": "ts", "type": "long"}
  ]
}"#;

    /// The `page-view-counts` record (the Rust shape is [`super::PageCount`]).
    pub const PAGE_VIEW_COUNT_SCHEMA: &str = r#"{
  "type": "record",
  "name": "PageViewCount",
  "fields": [
    {"name": "page", "type": "string"},
    {"name": "window_start", "type": "long"},
    {"name": "window_end", "type": "long"},
    {"name": "views", "type": "long"}
  ]
}"#;

    /// The `user-sessions` record (the Rust shape is [`super::Session`]).
    pub const USER_SESSION_SCHEMA: &str = r#"{
  "type": "record",
  "name": "UserSession",
  "fields": [
    {"name": "user_id", "type": "string"},
    {"name": "session_start", "type": "long"},
    {"name": "session_end", "type": "long"},
    {"name": "views", "type": "long"}
  ]
}"#;

    /// A `PageView` record.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PageView {
        /// Who.
        pub user_id: String,
        /// What.
        pub page: String,
        /// When, ms.
        pub ts: i64,
    }

    impl AvroRecord for super::PageView {
        type Wire = PageView;
        const SCHEMA: &'static str = PAGE_VIEW_SCHEMA;

        fn to_wire(&self) -> PageView {
            PageView { user_id: self.user_id.clone(), page: self.page.clone(), ts: self.ts.unwrap_or_default() }
        }

        fn from_wire(v: PageView) -> Self {
            Self { user_id: v.user_id, page: v.page, ts: Some(v.ts) }
        }
    }

    impl AvroRecord for super::PageCount {
        type Wire = Self;
        const SCHEMA: &'static str = PAGE_VIEW_COUNT_SCHEMA;

        fn to_wire(&self) -> Self {
            self.clone()
        }

        fn from_wire(c: Self) -> Self {
            c
        }
    }

    impl AvroRecord for super::Session {
        type Wire = Self;
        const SCHEMA: &'static str = USER_SESSION_SCHEMA;

        fn to_wire(&self) -> Self {
            self.clone()
        }

        fn from_wire(s: Self) -> Self {
            s
        }
    }
}

/// The page-views topology (JSON).
pub fn topology(input: &str, counts: &str, sessions: &str) -> Result<Topology, DslError> {
    build(
        input,
        counts,
        sessions,
        Arc::new(JsonSerde::<PageView>::new()),
        Arc::new(JsonSerde::<PageCount>::new()),
        Arc::new(JsonSerde::<Session>::new()),
    )
}

/// The page-views topology with its external topics in `format`.
pub fn topology_in(
    input: &str,
    counts: &str,
    sessions: &str,
    format: &Format,
) -> Result<Topology, Box<dyn std::error::Error>> {
    Ok(build(input, counts, sessions, format.serde()?, format.serde()?, format.serde()?)?)
}

fn build(
    input: &str,
    counts: &str,
    sessions: &str,
    view_serde: SerdeRef<PageView>,
    count_serde: SerdeRef<PageCount>,
    session_serde: SerdeRef<Session>,
) -> Result<Topology, DslError> {
    let builder = StreamsBuilder::new();
    let views = builder
        .stream(
            &[input],
            Consumed::with(Nullable(BytesSerde), Nullable(view_serde)).with_timestamp_extractor(
                |r: &Record<Option<Vec<u8>>, Option<PageView>>| {
                    r.value().as_ref().and_then(|v| v.ts).unwrap_or_else(|| r.timestamp())
                },
            ),
        )
        .flat_map_values(|v: Option<PageView>| v);
    views
        .group_by(
            |_, v: &PageView| v.page.clone(),
            Grouped::with(StringSerde, JsonSerde::<PageView>::new()).named("views-by-page"),
        )
        .windowed_by(TimeWindows::of_size_and_grace(WINDOW, GRACE))
        .count_with(Materialized::as_store("page-view-counts-store"))
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .flat_map(|w: Windowed<String>, n: Option<i64>| {
            n.map(|views| {
                let page = w.key.clone();
                (w.key, PageCount { page, window_start: w.window.start, window_end: w.window.end, views })
            })
        })
        .to_with(counts, Produced::with(StringSerde, count_serde));
    views
        .group_by(
            |_, v: &PageView| v.user_id.clone(),
            Grouped::with(StringSerde, JsonSerde::<PageView>::new()).named("views-by-user"),
        )
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(GAP, GRACE))
        .count_with(Materialized::as_store("user-sessions-store"))
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .flat_map(|w: Windowed<String>, n: Option<i64>| {
            // Sessions merged into a later one arrive as tombstones: skip them.
            n.map(|views| {
                let user_id = w.key.clone();
                (w.key, Session { user_id, session_start: w.window.start, session_end: w.window.end, views })
            })
        })
        .to_with(sessions, Produced::with(StringSerde, session_serde));
    builder.build()
}

/// The command line of the `page-views` binary.
pub fn spec() -> crate::cli::AppSpec {
    use crate::cli::{AppSpec, TopicArg};
    AppSpec {
        name: "page-views",
        about: "Reads JSON page views {user_id, page, ts} from `page-views`. Writes `page-view-counts` (key page; \
                JSON {page, window_start, window_end, views}: final counts per 1-minute window, grace 10 s) and \
                `user-sessions` (key user_id; JSON {user_id, session_start, session_end, views}: one record per \
                closed session, 5-minute inactivity gap).",
        avro: "`page-views` holds Avro records PageView {user_id: string, page: string, ts: long} (or any compatible \
               writer schema); `page-view-counts` gets PageViewCount {page: string, window_start: long, window_end: \
               long, views: long} and `user-sessions` gets UserSession {user_id: string, session_start: long, \
               session_end: long, views: long}, registered as `<topic>-value`. Keys stay UTF-8 strings.",
        inputs: vec![TopicArg { flag: "--input-topic", default: INPUT, compacted: false }],
        outputs: vec![
            TopicArg { flag: "--counts-topic", default: COUNTS, compacted: false },
            TopicArg { flag: "--sessions-topic", default: SESSIONS, compacted: false },
        ],
        numbers: vec![],
        texts: vec![],
    }
}

/// Demo views: 25 users browsing 6 pages in bursts with pauses. Event time
/// runs 30× faster than the wall clock so that windows and sessions close
/// within seconds.
#[derive(Debug)]
pub struct DemoViews {
    rng: crate::cli::DemoRandom,
    clock: Option<i64>,
    /// Per user: the event time before which the user is away.
    away_until: Vec<i64>,
    views: crate::cli::DemoEncoder<PageView>,
}

impl DemoViews {
    /// Views for `topic`, in `format`.
    pub fn new(topic: &str, format: &Format) -> Result<Self, streams_dsl::serde::SchemaParseError> {
        Ok(Self {
            rng: crate::cli::DemoRandom::new(3),
            clock: None,
            away_until: vec![0; 25],
            views: crate::cli::DemoEncoder::new(topic, format.serde()?),
        })
    }
}

impl crate::cli::DemoGenerator for DemoViews {
    fn next(&mut self, now_ms: i64) -> Result<crate::cli::DemoRecord, SerdeError> {
        let ts = self.clock.map_or(now_ms, |c| c + 1500);
        self.clock = Some(ts);
        let mut user = self.rng.below(25) as usize;
        for _ in 0..25 {
            if self.away_until[user] <= ts {
                break;
            }
            user = (user + 1) % 25;
        }
        if self.rng.below(10) == 0 {
            // Leaves for longer than the session gap.
            self.away_until[user] = ts + 6 * 60 * 1000;
        }
        let pages = ["/home", "/products", "/cart", "/checkout", "/help", "/blog"];
        let view = PageView {
            user_id: format!("user-{user:02}"),
            page: pages[self.rng.below(pages.len() as u64) as usize].to_owned(),
            ts: Some(ts),
        };
        Ok(("--input-topic", Some(view.user_id.clone().into_bytes()), self.views.encode(&view)?, ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(user: &str, page: &str, ts: i64) -> Option<PageView> {
        Some(PageView { user_id: user.into(), page: page.into(), ts: Some(ts) })
    }

    #[test]
    fn counts_are_final_and_sessions_closed() -> Result<(), Box<dyn std::error::Error>> {
        let topology = topology(INPUT, COUNTS, SESSIONS)?;
        let driver = TopologyTestDriver::new(&topology)?;
        let input = driver.create_input_topic(INPUT, Nullable(BytesSerde), Nullable(JsonSerde::<PageView>::new()));
        let counts = driver.create_output_topic(COUNTS, StringSerde, JsonSerde::<PageCount>::new());
        let sessions = driver.create_output_topic(SESSIONS, StringSerde, JsonSerde::<Session>::new());
        let t0 = 1_700_000_040_000; // a minute boundary
        for (user, page, dt) in [
            ("u1", "/a", 0),
            ("u2", "/a", 1_000),
            ("u1", "/b", 59_000),
            ("u2", "/b", 61_000),  // next window; /a's window is still in grace
            ("u1", "/a", 30_000),  // late but within grace: counted
            ("u2", "/c", 70_000),  // closes the first window
            ("u1", "/a", 20_000),  // too late: dropped
            ("u3", "/a", 700_000), // closes everything before, and u1/u2 sessions
        ] {
            input.pipe_input_at(None, view(user, page, t0 + dt), t0 + dt)?;
        }
        let counts: Vec<PageCount> = counts.read_values_to_list()?;
        let first: Vec<(String, i64)> =
            counts.iter().filter(|c| c.window_start == t0).map(|c| (c.page.clone(), c.views)).collect();
        assert_eq!(first, [("/a".to_owned(), 3), ("/b".to_owned(), 1)]);
        let mut pairs: Vec<(String, i64)> = counts.iter().map(|c| (c.page.clone(), c.window_start)).collect();
        let n = pairs.len();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), n, "one record per window: {counts:?}");
        let sessions: Vec<Session> = sessions.read_values_to_list()?;
        assert!(sessions.iter().any(|s| s.user_id == "u1" && s.session_start == t0 && s.views == 4), "{sessions:?}");
        Ok(())
    }
}
