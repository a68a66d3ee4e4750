//! The traffic crate's one error type.

use std::path::PathBuf;

/// Result alias of the traffic crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong generating or sending traffic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario's numbers are inconsistent.
    #[error("invalid scenario: {0}")]
    Scenario(String),
    /// The embedded broker failed.
    #[error("embedded broker: {0}")]
    Broker(String),
    /// Producing to Kafka failed.
    #[error("producing to Kafka: {0}")]
    Produce(String),
    /// Writing JSON-lines files failed.
    #[error("writing {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}
