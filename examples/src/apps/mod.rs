//! One module per example application.

pub mod word_count;
