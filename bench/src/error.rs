//! The benchmark crate's one error type.

use std::path::PathBuf;

/// Result alias of the benchmark crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file or directory failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A measured child process could not run, or failed.
    #[error("{what}: {detail}")]
    Child {
        /// The command.
        what: String,
        /// What went wrong (exit status, the end of its standard error).
        detail: String,
    },
    /// The ingest library failed.
    #[error(transparent)]
    Ingest(#[from] shiftright_ingest::Error),
    /// Generating or producing traffic failed, or the broker did.
    #[error(transparent)]
    Traffic(#[from] shiftright_traffic::Error),
    /// A Kafka client failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What was being done.
        context: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Reading Parquet back failed.
    #[error("reading {}: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The Parquet reader's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// The benchmark did not finish in time, or found less than it needed.
    #[error("{0}")]
    Incomplete(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
