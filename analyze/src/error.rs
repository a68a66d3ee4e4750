//! The analysis crate's one error type. Each variant names the file, table or key at fault.

use std::path::PathBuf;

/// Result alias of the analysis crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an analysis or query could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The experiments file could not be read.
    #[error("cannot read the experiments file {}", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The experiments file is not valid; the message names the key and what is allowed.
    #[error("invalid experiments file {}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The data directory is missing or holds no tables.
    #[error("no data at {}: {message}", path.display())]
    NoData {
        /// The data directory.
        path: PathBuf,
        /// What to do.
        message: String,
    },
    /// DataFusion failed planning or running a query.
    #[error("query {name} failed")]
    Query {
        /// The query's name (or `user query`).
        name: String,
        /// DataFusion's error.
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// A query returned columns of unexpected types (a bug in `queries/`).
    #[error("query {name} returned an unexpected column {column}")]
    Column {
        /// The query's name.
        name: String,
        /// The column.
        column: String,
    },
    /// A query's placeholders and the given parameters do not match.
    #[error("{0}")]
    Params(String),
    /// A named query does not exist.
    #[error("no query named {0:?}; run `shiftright query --list` for the names")]
    UnknownQuery(String),
    /// Results could not be rendered.
    #[error("rendering results failed")]
    Render(#[from] arrow::error::ArrowError),
    /// A file (the results history, a report page, a query's output) could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Writing Parquet (the results history, a query's output) failed.
    #[error("writing Parquet failed")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A report page's template failed to render (a bug in `analyze/templates/`).
    #[error("rendering a report page failed")]
    Template(#[from] minijinja::Error),
    /// A chart could not be drawn.
    #[error("drawing a chart failed: {0}")]
    Chart(String),
    /// JSON rendering failed.
    #[error("rendering JSON failed")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Wraps a DataFusion error with the query's name.
    pub fn query(
        name: impl Into<String>,
    ) -> impl FnOnce(datafusion::error::DataFusionError) -> Error {
        let name = name.into();
        move |source| Error::Query { name, source }
    }
}
