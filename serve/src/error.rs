//! The serve crate's one error type.

/// Result alias of the serve crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why `serve` or `watch` cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings cannot work together; the message says what to change.
    #[error("{0}")]
    Config(String),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The token file cannot be read.
    #[error("cannot read the token file {}", path.display())]
    Token {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A Kafka client failed.
    #[error("{context}")]
    Kafka {
        /// What was being done.
        context: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A record could not be encoded.
    #[error("cannot encode a decision: {0}")]
    Encode(String),
    /// The analysis failed.
    #[error(transparent)]
    Analyze(#[from] shiftright_analyze::Error),
}
