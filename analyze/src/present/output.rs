//! Query results as the user asked for them: an aligned table, CSV, JSON lines or a Parquet file
//! (`shiftright query --format`).

use std::path::Path;

use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};

/// Writes query results to a Parquet file (`--format parquet`), through a temporary file renamed
/// into place.
pub fn write_parquet(
    schema: arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    path: &Path,
) -> Result<()> {
    let io = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Output formats of `shiftright query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFormat {
    /// An aligned table.
    Table,
    /// CSV with a header.
    Csv,
    /// JSON lines, one object per row.
    Json,
}

/// Renders query results.
pub fn render_batches(batches: &[RecordBatch], format: QueryFormat) -> Result<String> {
    Ok(match format {
        QueryFormat::Table => {
            arrow::util::pretty::pretty_format_batches(batches)?.to_string() + "\n"
        }
        QueryFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buf);
                for b in batches {
                    writer.write(b)?;
                }
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
        QueryFormat::Json => {
            let mut buf = Vec::new();
            {
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut buf);
                for b in batches {
                    writer.write(b)?;
                }
                writer.finish()?;
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
    })
}
