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
    /// Restoring was asked for while the store had uncommitted writes.
    #[error("state store `{store}`: cannot restore while the store has uncommitted writes; commit or abort first")]
    PendingWrites {
        /// The store's name.
        store: String,
    },
    /// A changelog record that this kind of store cannot have written.
    #[error("state store `{store}`: malformed changelog record: {reason}")]
    MalformedChangelog {
        /// The store's name.
        store: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store's files could not be opened, read or written.
    #[error(
        "state store `{store}` at {}: {message}. The local state can be wiped (delete that \
         directory) and is then restored from the store's changelog topic", .path.display()
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
