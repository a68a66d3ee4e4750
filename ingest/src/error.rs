//! The ingest crate's one error type. Bad input is never an error here: it becomes a dead letter.
//! These are the failures that stop the service: a broker client that cannot be created, an output
//! directory that cannot be written, a configuration that makes no sense.

use std::path::PathBuf;

/// Result alias of the ingest crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the ingest service stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is inconsistent; the message says which setting and what is allowed.
    #[error("invalid ingest configuration: {0}")]
    Config(String),
    /// The Kafka client could not be created or subscribed.
    #[error("Kafka client error: {context}")]
    Kafka {
        /// What was being done.
        context: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A file or directory of the output could not be read or written.
    #[error("I/O error on {}: {context}", path.display())]
    Io {
        /// The file or directory at fault.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Rows could not be encoded as Parquet.
    #[error("Parquet encoding of {} failed", path.display())]
    Parquet {
        /// The file being written.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Rows could not be assembled into an Arrow batch (a bug: decoded rows always fit the schema).
    #[error("building an Arrow batch for table {table} failed")]
    Arrow {
        /// The table.
        table: &'static str,
        /// Arrow's error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// A partition's durable progress could not be recovered at assignment.
    #[error("recovering durable offsets of {topic}[{partition}] failed: {reason}")]
    Recovery {
        /// Kafka topic.
        topic: String,
        /// Kafka partition.
        partition: i32,
        /// What went wrong.
        reason: String,
    },
    /// Another ingest group is writing to the same output directory.
    #[error("{} is in use by ingest group {group:?} (running now); two groups on one output would write every row twice. Stop it, use its --group-id to share the work, or pass another --out", out.display())]
    OutputInUse {
        /// The output directory.
        out: PathBuf,
        /// The group holding it.
        group: String,
    },
    /// A partition's previous owner in the group did not let go of it in time.
    #[error("partition {partition} is still held by {holder}, a process of this group that lost it but has not let go (frozen or stalled) after {}s; stop that process (the kernel then releases it), and start this one again", waited.as_secs())]
    PartitionHeld {
        /// The partition.
        partition: String,
        /// Who holds its lock.
        holder: String,
        /// How long this process waited.
        waited: std::time::Duration,
    },
    /// A merge could not be made; nothing was changed.
    #[error("cannot merge {}: {reason}", path.display())]
    Merge {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `compact` was pointed at something that is not an ingest output.
    #[error("{} is not a directory; pass the --out of `shiftright ingest`", .0.display())]
    NotAnOutput(PathBuf),
    /// Another `shiftright compact` works on the same output.
    #[error("{} is being compacted by another `shiftright compact` right now; wait for it to finish (two would merge or remove the same files)", out.display())]
    CompactionRunning {
        /// The output directory.
        out: PathBuf,
    },
    /// Partitions were stopped because their log went below the durable offsets.
    #[error("stopped {} partition(s) whose Kafka log was reset: {partitions}; nothing was written past the reset. If the topic was recreated or the broker lost its log on purpose, run again with --accept-offset-reset to read the new log into a new offset epoch (old files are kept)", count)]
    OffsetReset {
        /// How many partitions.
        count: usize,
        /// Each partition with what was seen.
        partitions: String,
    },
    /// Under `--idle-exit`, some configured topics were never read.
    #[error("stopped after the idle time without reading {topics}: {why}")]
    NotAssigned {
        /// The topics.
        topics: String,
        /// What was found.
        why: String,
    },
    /// A blocking task (Parquet writing) panicked or was cancelled.
    #[error("background writer task failed")]
    Join(#[from] tokio::task::JoinError),
}

impl Error {
    /// Shorthand for an I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, context: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            context,
            source,
        }
    }
}
