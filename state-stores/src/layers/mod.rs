//! Store layers that wrap any store of this crate. The change-logging and
//! caching layers need a task's record collector and typed records, so they
//! live in `streams-core` and `streams-dsl`.

mod metered;

pub use metered::{Metered, OperationMetrics, StoreMeters, StoreOperation};
