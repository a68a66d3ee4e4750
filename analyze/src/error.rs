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
    /// Two experiments would write the same report page (cannot happen but for a 64-bit hash
    /// collision; checked so that a page is never overwritten).
    #[error("experiments {first:?} and {second:?} would share the page name {stem:?}; rename one")]
    PageName {
        /// One experiment.
        first: String,
        /// The other.
        second: String,
        /// The page name they share.
        stem: String,
    },
    /// The query engine could not be set up (memory limit, spill directory).
    #[error("{0}")]
    Engine(String),
    /// A query would change data or read outside the data directory; queries are read only.
    #[error("{0}")]
    ReadOnly(String),
    /// Parquet files under the data directory cannot be read.
    #[error("{} Parquet file(s) cannot be read: {}; move or delete them, or pass --skip-corrupt to leave them out (counted and reported)", files.len(), describe_corrupt(files))]
    CorruptFiles {
        /// Each unreadable file with what is wrong with it.
        files: Vec<(PathBuf, String)>,
    },
    /// JSON rendering failed.
    #[error("building a results-history row failed")]
    History(#[from] serde_arrow::Error),

    #[error("rendering JSON failed")]
    Json(#[from] serde_json::Error),
}

/// The first few corrupt files with their faults, for the error message.
fn describe_corrupt(files: &[(PathBuf, String)]) -> String {
    let mut shown: Vec<String> = files
        .iter()
        .take(5)
        .map(|(path, fault)| format!("{} ({fault})", path.display()))
        .collect();
    if files.len() > 5 {
        shown.push(format!("and {} more", files.len() - 5));
    }
    shown.join(", ")
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
