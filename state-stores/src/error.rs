use std::path::PathBuf;

/// An error from a state store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store was used after it was closed.
    #[error("state store `{store}` is closed; it cannot be read or written any more")]
    Closed {
        /// The store's name.
        store: String,
    },
    /// A range was asked for with its lower bound above its upper bound.
    #[error("state store `{store}`: invalid range, the lower bound is greater than the upper bound")]
    InvalidRange {
        /// The store's name.
        store: String,
    },
    /// The store's files could not be read or written.
    #[error(
        "state store `{store}` at {path}: {message}. The local state can be wiped \
         (delete the directory) and restored from its changelog topic"
    )]
    Io {
        /// The store's name.
        store: String,
        /// Where the store keeps its files.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}
