//! One module per example application.

pub mod fraud_detection;
pub mod money;
pub mod order_enrichment;
pub mod page_views;
pub mod word_count;
