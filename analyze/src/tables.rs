//! The DataFusion session: the Parquet store's tables registered as listing tables (each table's
//! directory is scanned recursively, so every `date=`/`experiment=` partition is included), with
//! the schemas of `shiftright-schemas` so that an empty or missing table still has its columns.

use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use shiftright_schemas::Table;

use crate::error::{Error, Result};
use crate::history::HistoryTable;

/// A session with `requests`, `business`, `exposures` and `dead_letters` registered over `data_dir`,
/// and the results history (`results`, `decisions`) of `_results/`.
pub async fn session(data_dir: &Path) -> Result<SessionContext> {
    if !data_dir.is_dir() {
        return Err(Error::NoData {
            path: data_dir.to_path_buf(),
            message: "not a directory; pass the --out directory of `shiftright ingest` as --data"
                .into(),
        });
    }
    let config = SessionConfig::new().with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    let mut found = 0;
    for table in [
        Table::Requests,
        Table::Business,
        Table::Exposures,
        Table::DeadLetters,
    ] {
        let dir = data_dir.join(table.dir_name());
        found += usize::from(register(&ctx, table.name(), &dir, table.schema())?);
    }
    for table in HistoryTable::ALL {
        register(&ctx, table.name(), &table.dir(data_dir), table.schema())?;
    }
    if found == 0 {
        return Err(Error::NoData {
            path: data_dir.to_path_buf(),
            message: "no Parquet tables under it (expected requests/, business/, exposures/); run `shiftright ingest --out` there first".into(),
        });
    }
    Ok(ctx)
}

/// Registers `dir` as table `name`: a listing table over its Parquet files, or an empty table with
/// `schema` when it has none. Returns whether it had files.
fn register(
    ctx: &SessionContext,
    name: &str,
    dir: &Path,
    schema: arrow::datatypes::SchemaRef,
) -> Result<bool> {
    let has_files = has_parquet(dir);
    let provider: Arc<dyn datafusion::datasource::TableProvider> = if has_files {
        let canonical = dir.canonicalize().map_err(|e| Error::NoData {
            path: dir.to_path_buf(),
            message: format!("cannot resolve the table directory: {e}"),
        })?;
        let url = ListingTableUrl::parse(format!("{}/", canonical.display()))
            .map_err(Error::query(name))?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        Arc::new(ListingTable::try_new(config).map_err(Error::query(name))?)
    } else {
        Arc::new(MemTable::try_new(schema, vec![vec![]]).map_err(Error::query(name))?)
    };
    ctx.register_table(name, provider)
        .map_err(Error::query(name))?;
    Ok(has_files)
}

/// Whether any `.parquet` file exists below `dir`.
fn has_parquet(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            has_parquet(&path)
        } else {
            path.extension().is_some_and(|x| x == "parquet")
        }
    })
}
