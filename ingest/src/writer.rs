//! Writes a partition's buffer as one flush batch of Parquet files, durably: each file is written
//! under a temporary name and fsynced, then all are renamed, then their directories are fsynced.
//! Only after that does the caller commit the batch's offsets.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use shiftright_schemas::{BatchFile, Table};

use crate::buffer::PartitionBuffer;
use crate::columns::events_to_batch;
use crate::dead_letters::dead_letters_to_batch;
use crate::decode::RejectReason;
use crate::error::{Error, Result};
use crate::stats::FlushRecord;

/// What one flush wrote.
#[derive(Debug, Clone, Default)]
pub struct FlushOutcome {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Good rows written.
    pub rows: usize,
    /// Dead letters written.
    pub dead_letters: usize,
    /// Bytes on disk.
    pub bytes: u64,
    /// Offset to commit: one past the batch's last.
    pub next_offset: i64,
    /// Rows, bytes and files per table, and dead letters by reason, for the metrics.
    pub record: FlushRecord,
}

/// Writes `buffer` under `out_dir` and makes it durable.
pub fn write_batch(out_dir: &Path, buffer: &PartitionBuffer) -> Result<FlushOutcome> {
    let started = Instant::now();
    let mut planned: Vec<(PathBuf, Table, RecordBatch)> = Vec::new();
    let table_dir = out_dir.join(buffer.table.dir_name());
    for (key, events) in &buffer.rows {
        let dir = table_dir
            .join(format!("date={}", key.date))
            .join(format!("experiment={}", key.experiment));
        planned.push((dir, buffer.table, events_to_batch(buffer.table, events)?));
    }
    let dead_dir = out_dir.join(Table::DeadLetters.dir_name());
    for (date, letters) in &buffer.dead_letters {
        planned.push((
            dead_dir.join(format!("date={date}")),
            Table::DeadLetters,
            dead_letters_to_batch(letters)?,
        ));
    }

    let count = planned.len();
    let mut outcome = FlushOutcome {
        next_offset: buffer.last_offset + 1,
        ..FlushOutcome::default()
    };
    let mut renames: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(count);
    let mut per_table: BTreeMap<Table, (u64, u64, u64)> = BTreeMap::new();
    for (i, (dir, table, batch)) in planned.iter().enumerate() {
        let file = BatchFile {
            topic: buffer.source.topic.clone(),
            partition: buffer.source.partition,
            epoch: buffer.epoch,
            first_offset: buffer.first_offset,
            last_offset: buffer.last_offset,
            index: i + 1,
            count,
            compacted: false,
        };
        create_dir_durably(dir)?;
        let temp = dir.join(file.temp_name());
        let bytes = write_parquet(&temp, batch, &file, buffer.last_message)?;
        outcome.bytes += bytes;
        let entry = per_table.entry(*table).or_default();
        *entry = (
            entry.0 + batch.num_rows() as u64,
            entry.1 + bytes,
            entry.2 + 1,
        );
        renames.push((temp, dir.join(file.file_name())));
    }
    let mut dirs = BTreeSet::new();
    for (temp, path) in renames {
        std::fs::rename(&temp, &path)
            .map_err(|e| Error::io(&temp, "renaming a written file into place", e))?;
        dirs.insert(path.parent().map(Path::to_path_buf).unwrap_or_default());
        outcome.files.push(path);
    }
    for dir in dirs {
        sync_dir(&dir)?;
    }
    outcome.rows = buffer.rows.values().map(Vec::len).sum();
    outcome.dead_letters = buffer.dead_letters.values().map(Vec::len).sum();
    let mut reasons: BTreeMap<RejectReason, u64> = BTreeMap::new();
    for letter in buffer.dead_letters.values().flatten() {
        *reasons.entry(letter.rejection.reason).or_default() += 1;
    }
    outcome.record = FlushRecord {
        rows: per_table.iter().map(|(t, v)| (*t, v.0)).collect(),
        bytes: per_table.iter().map(|(t, v)| (*t, v.1)).collect(),
        files: per_table.iter().map(|(t, v)| (*t, v.2)).collect(),
        dead_letters: reasons.into_iter().collect(),
        duration: started.elapsed(),
    };
    Ok(outcome)
}

fn write_parquet(
    path: &Path,
    batch: &RecordBatch,
    file: &BatchFile,
    last_message: u64,
) -> Result<u64> {
    let parquet_err = |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let metadata = file
        .metadata(last_message)
        .into_iter()
        .map(|(key, value)| KeyValue::new(key.to_string(), value))
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(metadata))
        .build();
    let handle = File::create(path).map_err(|e| Error::io(path, "creating a Parquet file", e))?;
    let mut writer =
        ArrowWriter::try_new(handle, batch.schema(), Some(props)).map_err(parquet_err)?;
    writer.write(batch).map_err(parquet_err)?;
    let handle = writer.into_inner().map_err(parquet_err)?;
    handle
        .sync_all()
        .map_err(|e| Error::io(path, "fsyncing a Parquet file", e))?;
    let len = handle
        .metadata()
        .map_err(|e| Error::io(path, "reading a file size", e))?
        .len();
    Ok(len)
}

/// Creates `dir` and fsyncs the parents of every directory it created, so that a file renamed into
/// it survives a power loss.
pub(crate) fn create_dir_durably(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cursor = d.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "creating an output directory", e))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, "fsyncing a directory", e))
}

/// A one-row exposures file named and described as `file`, as the writer makes them (for the
/// recovery tests).
#[cfg(test)]
pub(crate) fn write_test_file(path: &Path, file: &BatchFile) {
    use crate::decode::{Common, Event};
    let event = Event::Exposure {
        common: Common {
            event_id: "e".into(),
            ts_ms: 0,
            user_id: "u".into(),
            synthetic: false,
        },
        experiment: "x".into(),
        variant: "v".into(),
        weights: None,
    };
    let batch = events_to_batch(Table::Exposures, &[event]).unwrap();
    write_parquet(path, &batch, file, 0x0123_4567_89ab_cdef).unwrap();
}
