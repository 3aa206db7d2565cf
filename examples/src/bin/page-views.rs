//! `page-views`: final page-view counts per minute and user sessions.
//!
//! ```text
//! cargo run -p rivulet-examples --bin page-views                       # embedded cluster, demo views
//! cargo run -p rivulet-examples --bin page-views -- --bootstrap-servers localhost:9092
//! ```
//!
//! Topic contract: input `page-views`, JSON `{"user_id", "page", "ts"}`.
//! Outputs `page-view-counts` (key page, JSON `{"page", "window_start",
//! "window_end", "views"}`, 1-minute windows, grace 10 s) and `user-sessions`
//! (key user_id, JSON `{"user_id", "session_start", "session_end", "views"}`,
//! 5-minute inactivity gap), each record final.
//!
//! With `--format avro --schema-registry URL`: Confluent-framed Avro values,
//! input record `PageView {user_id: string, page: string, ts: long}` (read
//! from any compatible writer schema), outputs `PageViewCount {page: string,
//! window_start: long, window_end: long, views: long}` and `UserSession
//! {user_id: string, session_start: long, session_end: long, views: long}`,
//! registered as `<topic>-value`.

use rivulet_examples::{cli, page_views};

fn main() {
    cli::run(
        &page_views::spec(),
        |args| {
            page_views::topology_in(
                args.topic("--input-topic"),
                args.topic("--counts-topic"),
                args.topic("--sessions-topic"),
                &args.format,
            )
        },
        |args| Ok(Box::new(page_views::DemoViews::new(args.topic("--input-topic"), &args.format)?)),
        cli::print_record,
    );
}
