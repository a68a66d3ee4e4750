//! The DataFusion session: the Parquet store's tables registered as listing tables, with the
//! schemas of `shiftright-schemas` so that an empty or missing table still has its columns.
//!
//! What a reader sees of the store is decided here, once per session:
//! - a flush batch that a crash left half-renamed (some of its files present, not all) is left
//!   out until the next ingest start removes it, so a reader never counts half a batch;
//! - with `--skip-corrupt`, every file's Parquet footer is read first and a file that fails is
//!   left out, with a warning naming it. Without it, a query that fails on a damaged file is
//!   answered with the damaged files' names (see [`explain_failure`]).
//!
//! A table with nothing left out is registered as its directory (scanned recursively, so every
//! `date=`/`experiment=` partition is included); otherwise as the list of its files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use shiftright_schemas::batch::{read_footer, BatchId};
use shiftright_schemas::coverage;
use shiftright_schemas::{BatchFile, Table};

use crate::error::{Error, Result};
use crate::read::engine::Engine;
use crate::read::scope::Scope;
use shiftright_schemas::HistoryTable;

/// How a command reads the store: which files, and with what engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Leave out files whose Parquet footer cannot be read (each named in a warning) instead of
    /// failing.
    pub skip_corrupt: bool,
    /// Threads, memory limit and spill directory.
    pub engine: crate::read::engine::Engine,
    /// The experiments, dates and time window read (default: everything).
    pub scope: crate::read::scope::Scope,
}

/// A session with `requests`, `business`, `exposures` and `dead_letters` registered over
/// `data_dir`, and the results history (`results`, `decisions`) of `_results/`; a damaged file
/// fails the queries that read it.
pub async fn session(data_dir: &Path) -> Result<SessionContext> {
    session_with(data_dir, ReadOptions::default()).await
}

/// [`session`] with `options`.
pub async fn session_with(data_dir: &Path, options: ReadOptions) -> Result<SessionContext> {
    let files = list(data_dir, &options)?;
    session_over(data_dir, &options, &files, Users::Events).await
}

/// The files a session over `data_dir` with `options` reads, per table: those within its scope,
/// less the half-written flush batches (and the damaged files, with `--skip-corrupt`). Fails
/// as [`session_with`] does on a directory without tables.
pub(crate) fn list(data_dir: &Path, options: &ReadOptions) -> Result<Files> {
    if !data_dir.is_dir() {
        return Err(Error::NoData {
            path: data_dir.to_path_buf(),
            message: "not a directory; pass the --out directory of `shiftright ingest` as --data"
                .into(),
        });
    }
    let store = Store::scan(data_dir, options.skip_corrupt, &options.scope)?;
    let found = Table::EVENTS
        .iter()
        .any(|t| store.present.contains(t.name()));
    if !found {
        return Err(Error::NoData {
            path: data_dir.to_path_buf(),
            message: "no Parquet tables under it (expected requests/, business/, exposures/); run `shiftright ingest --out` there first".into(),
        });
    }
    Ok(store.files)
}

/// The files of each table a session reads.
pub(crate) type Files = BTreeMap<&'static str, Vec<PathBuf>>;

/// What a session's `analysis_users` is computed from.
pub(crate) enum Users {
    /// The events of its tables (`queries/analysis_users.sql`).
    Events,
    /// Users' states folded before (`read::fold`): `user_id` and `state` rows of this schema.
    States(
        arrow::datatypes::SchemaRef,
        Vec<arrow::record_batch::RecordBatch>,
    ),
}

/// A session over exactly `files` (a table without an entry is empty), with the analysis'
/// views, `analysis_users` computed from `users`.
pub(crate) async fn session_over(
    data_dir: &Path,
    options: &ReadOptions,
    files: &Files,
    users: Users,
) -> Result<SessionContext> {
    let ctx = options.engine.context()?;
    for (name, _, schema) in tables(data_dir) {
        let listed = files.get(name).map_or(&[][..], Vec::as_slice);
        let mut provider = listing(name, listed, schema)?;
        if Table::EVENTS.iter().any(|t| t.name() == name) {
            provider = options.scope.window(&ctx, name, provider)?;
        }
        ctx.register_table(name, provider)
            .map_err(Error::query(name))?;
    }
    crate::read::register_views(&ctx, users).await?;
    Ok(ctx)
}

/// Turns a failed query into what to do about it: the names of the damaged files it met, when
/// there are any (every event table's files have their footers read, and those that fail are
/// listed), how to give it memory when it ran out of its limit, or how to reach the cluster it
/// was sent to. Other failures are returned as they are.
pub fn explain_failure(data_dir: &Path, engine: &Engine, error: Error) -> Error {
    let Error::Query { name, source } = &error else {
        return error;
    };
    if let Some(cluster) = &engine.cluster {
        let text = format!("{source:?}");
        let unreachable = text.contains("ConnectError")
            || text.contains("tonic::transport")
            || text.contains("Error connecting");
        let scheduler = crate::read::engine::scheduler_address(cluster)
            .ok()
            .is_some_and(|(host, port)| text.contains(&format!("{host}:{port}")));
        if unreachable && scheduler {
            return Error::Engine(format!(
                "query {name} could not reach the Ballista scheduler at {cluster} ({}). Start one \
                 there (`shiftright scheduler --bind HOST:PORT`) with at least one executor \
                 (`shiftright executor --scheduler {cluster}`), or leave out --cluster \
                 (SHIFTRIGHT_CLUSTER) to run in this process",
                source.find_root()
            ));
        }
        if unreachable {
            return Error::Engine(format!(
                "query {name} could not fetch results from an executor of the cluster at \
                 {cluster} ({}). Every executor must be reachable from here and from the other \
                 executors at its --advertise-host (default: its --bind address) and \
                 --flight-port",
                source.find_root()
            ));
        }
    }
    if matches!(
        source.find_root(),
        datafusion::error::DataFusionError::ResourcesExhausted(_)
    ) {
        return Error::Engine(format!(
            "query {name} ran out of memory within --memory-limit ({}). Raise --memory-limit \
             (SHIFTRIGHT_MEMORY_LIMIT) or lower --threads: every thread's aggregates get their own \
             share of the limit, and the analysis needs a few MiB for each arm (variant, or variant \
             within an endpoint or region) whatever the number of events",
            source.find_root()
        ));
    }
    let text = source.to_string().to_lowercase();
    if !(text.contains("parquet")
        || text.contains("footer")
        || text.contains("i/o")
        || text.contains("io error"))
    {
        return error;
    }
    match Store::scan(data_dir, true, &Scope::default()) {
        Ok(store) if !store.corrupt.is_empty() => Error::CorruptFiles {
            files: store.corrupt,
        },
        _ => error,
    }
}

/// Every table of a session: name, directory and schema. The event tables and dead letters, then
/// the results history.
fn tables(data_dir: &Path) -> Vec<(&'static str, PathBuf, arrow::datatypes::SchemaRef)> {
    let mut all: Vec<_> = Table::WRITTEN
        .into_iter()
        .map(|t| (t.name(), data_dir.join(t.dir_name()), t.schema()))
        .collect();
    all.extend(
        HistoryTable::ALL
            .into_iter()
            .map(|t| (t.name(), t.dir(data_dir), t.schema())),
    );
    all
}

/// The directories a session reads tables from. A file written below one of them is data.
pub fn table_dirs(data_dir: &Path) -> Vec<PathBuf> {
    tables(data_dir)
        .into_iter()
        .map(|(_, dir, _)| dir)
        .collect()
}

/// The files a session reads, per table.
struct Store {
    files: BTreeMap<&'static str, Vec<PathBuf>>,
    /// Tables with at least one Parquet file, read or left out.
    present: BTreeSet<&'static str>,
    /// Files left out for a footer that cannot be read.
    corrupt: Vec<(PathBuf, String)>,
}

impl Store {
    /// The files of every table; those of the event tables and dead letters within `scope`.
    ///
    /// A flush batch can span dates (late events) that the scope leaves unlisted, so a batch
    /// that looks incomplete within the scope is checked again over every date before it is
    /// left out.
    fn scan(data_dir: &Path, skip_corrupt: bool, scope: &Scope) -> Result<Store> {
        let mut files = BTreeMap::new();
        let mut present = BTreeSet::new();
        for (table, dir, _) in tables(data_dir) {
            let found = if partitioned(table) {
                parquet_files(&dir, &|name| scope.keeps_dir(name))?
            } else {
                parquet_files(&dir, &|_| true)?
            };
            if !found.is_empty() {
                present.insert(table);
            }
            // A compaction that crashed, or is running, may have left the files it merged beside
            // the merge: their rows are in it (`coverage`).
            let superseded = coverage::superseded(&found);
            let found: Vec<PathBuf> = found
                .into_iter()
                .filter(|path| !superseded.contains(path))
                .collect();
            files.insert(table, found);
        }
        let mut incomplete = incomplete_batches(files.values().flatten());
        if !incomplete.is_empty() && !scope.is_everything() {
            confirm_incomplete(data_dir, &mut incomplete)?;
        }
        for (table, dir, _) in tables(data_dir) {
            if let (true, Some(paths)) = (partitioned(table), files.get_mut(table)) {
                // Judged below the table's root: the data directory's own path may hold any name.
                paths.retain(|path| scope.keeps_file(path.strip_prefix(&dir).unwrap_or(path)));
            }
        }
        let mut store = Store {
            files,
            present,
            corrupt: Vec::new(),
        };
        for paths in store.files.values_mut() {
            paths.retain(|path| {
                let hidden = batch_file(path).is_some_and(|b| incomplete.contains(&b.batch()));
                if hidden {
                    tracing::info!(path = %path.display(), "leaving out a file of a flush batch that is not complete yet (the next ingest start removes or completes it)");
                }
                !hidden
            });
            if skip_corrupt {
                paths.retain(|path| match read_footer(path) {
                    Ok(_) => true,
                    Err(fault) => {
                        tracing::warn!(path = %path.display(), %fault, "--skip-corrupt: leaving out an unreadable Parquet file");
                        store.corrupt.push((path.clone(), fault));
                        false
                    }
                });
            }
        }
        if !store.corrupt.is_empty() {
            tracing::warn!(
                files = store.corrupt.len(),
                "--skip-corrupt: {} unreadable Parquet file(s) left out; the results do not include their rows",
                store.corrupt.len()
            );
        }
        Ok(store)
    }
}

/// Flush batches found complete over every date after a scope's listing made them look
/// incomplete (their other files lie on a date it skips: a late event, a flush across
/// midnight). A complete batch stays complete, so each is listed in full once per process, not
/// at every evaluation of a server.
static COMPLETE: std::sync::OnceLock<std::sync::Mutex<BTreeSet<(PathBuf, BatchId)>>> =
    std::sync::OnceLock::new();

/// Keeps in `incomplete` only the batches that are incomplete over every date of `data_dir`.
fn confirm_incomplete(data_dir: &Path, incomplete: &mut BTreeSet<BatchId>) -> Result<()> {
    let complete = COMPLETE.get_or_init(Default::default);
    let known = |id: &BatchId| {
        complete
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(data_dir.to_path_buf(), id.clone()))
    };
    incomplete.retain(|id| !known(id));
    if incomplete.is_empty() {
        return Ok(());
    }
    let mut everything = Vec::new();
    for (table, dir, _) in tables(data_dir) {
        if partitioned(table) {
            everything.extend(parquet_files(&dir, &|_| true)?);
        }
    }
    let truly = incomplete_batches(everything.iter());
    let mut complete = complete.lock().unwrap_or_else(|e| e.into_inner());
    incomplete.retain(|id| {
        let still = truly.contains(id);
        if !still {
            complete.insert((data_dir.to_path_buf(), id.clone()));
        }
        still
    });
    Ok(())
}

/// Whether `table` is laid out in `date=`/`experiment=` directories that a scope can skip.
fn partitioned(table: &str) -> bool {
    Table::EVENTS.iter().any(|t| t.name() == table) || table == Table::DeadLetters.name()
}

/// The flush batches of which some files are among `paths` but not all, less those a compacted
/// file among them covers (their missing files were merged into it).
fn incomplete_batches<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> BTreeSet<BatchId> {
    let files: Vec<BatchFile> = paths.filter_map(|p| batch_file(p)).collect();
    coverage::completeness(&files)
        .into_iter()
        .filter_map(|(id, complete)| (!complete).then_some(id))
        .collect()
}

fn batch_file(path: &Path) -> Option<BatchFile> {
    BatchFile::parse(path.file_name()?.to_str()?)
}

/// A listing table over exactly `files` (none: an empty table with `schema`).
fn listing(
    name: &str,
    files: &[PathBuf],
    schema: arrow::datatypes::SchemaRef,
) -> Result<Arc<dyn datafusion::datasource::TableProvider>> {
    if files.is_empty() {
        // An empty table that a Ballista scheduler can also be sent (a MemTable cannot).
        return Ok(Arc::new(EmptyTable::new(schema)));
    }
    let urls: Vec<ListingTableUrl> = files
        .iter()
        .map(|f| {
            let canonical = f.canonicalize().map_err(|e| Error::NoData {
                path: f.to_path_buf(),
                message: format!("cannot resolve a table file: {e}"),
            })?;
            ListingTableUrl::parse(canonical.display().to_string()).map_err(Error::query(name))
        })
        .collect::<Result<_>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(
        ListingTable::try_new(config).map_err(Error::query(name))?,
    ))
}

/// Every `.parquet` file below `dir` (none when it does not exist) in directories whose names
/// `descend` accepts, sorted.
fn parquet_files(dir: &Path, descend: &dyn Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::NoData {
                    path: d,
                    message: format!("cannot list the table directory: {e}"),
                })
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if descend(&entry.file_name().to_string_lossy()) {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|x| x == "parquet")
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::error::DataFusionError;

    use super::*;

    #[test]
    fn running_out_of_memory_says_which_flags_to_change() {
        let exhausted = DataFusionError::ResourcesExhausted("Failed to allocate 4.1 MB".into());
        let error = Error::Query {
            name: "analysis_arms".into(),
            source: DataFusionError::Shared(Arc::new(exhausted)),
        };
        let text =
            explain_failure(Path::new("/nonexistent"), &Engine::default(), error).to_string();
        assert!(
            text.contains("analysis_arms")
                && text.contains("--memory-limit")
                && text.contains("--threads")
                && text.contains("4.1 MB"),
            "{text}"
        );
    }
}
