//! `shiftright compact`: merges the small files the ingest leaves (one per flush per directory)
//! into large ones, so that readers open few files however often the ingest flushes.
//!
//! In each table/date/experiment directory, the files of one partition (and offset epoch) that
//! are older than `older_than` and belong to complete flush batches are merged, in offset order,
//! into files of about `target_bytes`: `p…-<first>-<last>-compacted-<topic>.parquet`, whose name and
//! footer record the offset range they span and whose footer keeps the newest batch's
//! last-message fingerprint. A merge is written under a hidden temporary name, fsynced, renamed
//! into place and its directory fsynced; only then are the files it replaced removed. So at every
//! point, a crash included, each row is counted once (`shiftright_schemas::coverage`: a file
//! within a merge's range beside it is superseded, a batch within one is complete), and the
//! ingest resumes exactly where it would have. The ingest may run meanwhile: it only adds files
//! past its durable offsets, and the files of a batch it is still renaming are never taken.
//! One compaction at a time per output (`_ingest_locks/compact.lock`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use shiftright_schemas::{file_metadata, BatchFile};

use crate::error::{Error, Result};
use crate::stored::{lock_maintenance, remove_all, Listing, Stored, COMPACTING_PREFIX};
use crate::writer::sync_dir;

/// Footer key of a merged file: how many files it replaced.
pub const MERGED_FILES: &str = "shiftright.merged_files";

/// What to merge.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Files younger than this are left alone (default 1 h): readers of fresh data pay little for
    /// them, and a merge of files still arriving would be redone.
    pub older_than: Duration,
    /// The size merged files aim at (default 256 MiB); a file this large is not merged again.
    pub target_bytes: u64,
    /// Files a merge replaced stay (left out by readers) until the merge is this old (default
    /// 10 min): a query that listed them before the merge can still read them, and no listing
    /// can miss the merge and its files at once.
    pub keep_replaced: Duration,
    /// Say what would be merged, change nothing.
    pub dry_run: bool,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            older_than: Duration::from_secs(3600),
            target_bytes: 256 << 20,
            keep_replaced: Duration::from_secs(600),
            dry_run: false,
        }
    }
}

/// What a compaction did (or, dry, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactSummary {
    /// Directories with at least one merge.
    pub directories: usize,
    /// Files merged (and removed).
    pub merged: usize,
    /// Merged files written.
    pub written: usize,
    /// Bytes of the files merged.
    pub bytes_before: u64,
    /// Bytes of the merged files.
    pub bytes_after: u64,
    /// Rows moved.
    pub rows: u64,
    /// Files that merges (of this run or earlier ones) replaced, removed now.
    pub replaced_removed: usize,
    /// Files merges replaced that stay until their merge is `keep_replaced` old.
    pub replaced_kept: usize,
    /// Temporary files of a crashed compaction, removed.
    pub temporary_removed: usize,
    /// Files left unmerged because their footer does not check out, with what is wrong.
    pub damaged: Vec<(PathBuf, String)>,
}

/// Merges the small files under `out_dir` (see the module docs).
pub fn compact(out_dir: &Path, options: &CompactOptions) -> Result<CompactSummary> {
    if !out_dir.is_dir() {
        return Err(Error::NotAnOutput(out_dir.to_path_buf()));
    }
    let _lock = lock_maintenance(out_dir)?;
    let listing = Listing::of(out_dir)?;
    let mut summary = CompactSummary::default();
    if !options.dry_run {
        for temp in &listing.compacting {
            tracing::info!(path = %temp.display(), "removing the temporary file of an interrupted compaction");
            std::fs::remove_file(temp)
                .map_err(|e| Error::io(temp, "removing a temporary file", e))?;
            summary.temporary_removed += 1;
        }
    }
    let superseded = listing.superseded();
    let complete = listing.complete_batches();
    let cutoff = ago(options.older_than);
    let mut directories = BTreeSet::new();
    for ((dir, _, _, _), files) in groups(&listing, &superseded) {
        let mergeable = |f: &Stored| {
            let Some(batch) = f.batch.as_ref() else {
                return false;
            };
            if f.modified > cutoff || f.bytes >= options.target_bytes {
                return false;
            }
            if !complete.contains(&batch.batch()) {
                return false;
            }
            // A damaged file ends the run like any other it may not take.
            match batch.check_footer(&f.path) {
                Ok(_) => true,
                Err(why) => {
                    tracing::warn!(path = %f.path.display(), %why, "a damaged file is not merged");
                    summary.damaged.push((f.path.clone(), why));
                    false
                }
            }
        };
        let found = runs(&files, mergeable);
        for run in found {
            for chunk in chunks(&run, options.target_bytes) {
                if options.dry_run {
                    tracing::info!(dir = %dir.display(), files = chunk.len(), "would merge");
                } else {
                    summary.rows += merge(&dir, &chunk)?;
                    summary.bytes_after += merged_bytes(&dir, &chunk)?;
                }
                summary.merged += chunk.len();
                summary.written += 1;
                summary.bytes_before += chunk.iter().map(|f| f.bytes).sum::<u64>();
                directories.insert(dir.clone());
            }
        }
    }
    summary.directories = directories.len();
    if !options.dry_run {
        remove_replaced(out_dir, options.keep_replaced, &mut summary)?;
    }
    Ok(summary)
}

/// `since` before now (the epoch when that is earlier).
fn ago(since: Duration) -> SystemTime {
    SystemTime::now()
        .checked_sub(since)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Removes the files merges replaced whose merge beside them is at least `keep` old; counts
/// the rest.
fn remove_replaced(out_dir: &Path, keep: Duration, summary: &mut CompactSummary) -> Result<()> {
    let listing = Listing::of(out_dir)?;
    let superseded = listing.superseded();
    if superseded.is_empty() {
        return Ok(());
    }
    let cutoff = ago(keep);
    // The merges old enough to let their replaced files go, by directory.
    let mut settled: BTreeMap<&Path, Vec<&BatchFile>> = BTreeMap::new();
    for file in &listing.files {
        if let (Some(batch), Some(dir)) = (&file.batch, file.path.parent()) {
            if batch.compacted && file.modified <= cutoff && !superseded.contains(&file.path) {
                settled.entry(dir).or_default().push(batch);
            }
        }
    }
    let mut removable = Vec::new();
    for file in listing
        .files
        .iter()
        .filter(|f| superseded.contains(&f.path))
    {
        let (Some(batch), Some(dir)) = (&file.batch, file.path.parent()) else {
            continue;
        };
        let spanned = settled.get(dir).is_some_and(|merges| {
            merges.iter().any(|m| {
                (&m.topic, m.partition, m.epoch) == (&batch.topic, batch.partition, batch.epoch)
                    && m.first_offset <= batch.first_offset
                    && batch.last_offset <= m.last_offset
            })
        });
        if spanned {
            removable.push(file.path.clone());
        } else {
            summary.replaced_kept += 1;
        }
    }
    remove_all(removable.iter())?;
    summary.replaced_removed += removable.len();
    Ok(())
}

/// The files of each directory and partition log, in offset order; files without a batch name
/// and superseded files are left out.
type Group = (PathBuf, String, i32, u32);

fn groups<'a>(
    listing: &'a Listing,
    superseded: &BTreeSet<PathBuf>,
) -> BTreeMap<Group, Vec<&'a Stored>> {
    let mut groups: BTreeMap<Group, Vec<&Stored>> = BTreeMap::new();
    for file in &listing.files {
        let (Some(batch), Some(dir)) = (&file.batch, file.path.parent()) else {
            continue;
        };
        if superseded.contains(&file.path) {
            continue;
        }
        groups
            .entry((
                dir.to_path_buf(),
                batch.topic.clone(),
                batch.partition,
                batch.epoch,
            ))
            .or_default()
            .push(file);
    }
    for files in groups.values_mut() {
        files.sort_by_key(|f| f.batch.as_ref().map(|b| b.first_offset));
    }
    groups
}

/// The maximal runs of consecutive files that `eligible` accepts. A merge spans the offsets of
/// its run, and a file within that span beside it would be taken as merged: so a file that may
/// not be merged (too young, its batch incomplete) ends the run.
fn runs<'a>(
    files: &[&'a Stored],
    mut eligible: impl FnMut(&Stored) -> bool,
) -> Vec<Vec<&'a Stored>> {
    let mut runs = vec![Vec::new()];
    for file in files {
        if eligible(file) {
            runs.last_mut().expect("one run").push(*file);
        } else if !runs.last().expect("one run").is_empty() {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| r.len() > 1);
    runs
}

/// Splits a run into merges of about `target` bytes: files are added until the merge reaches the
/// target. A merge needs two files; a file already at the target stays as it is.
fn chunks<'a>(run: &[&'a Stored], target: u64) -> Vec<Vec<&'a Stored>> {
    let mut out: Vec<Vec<&Stored>> = Vec::new();
    let mut current: Vec<&Stored> = Vec::new();
    let mut bytes = 0;
    for file in run {
        if file.bytes >= target {
            out.push(std::mem::take(&mut current));
            bytes = 0;
            continue;
        }
        current.push(file);
        bytes += file.bytes;
        if bytes >= target {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
    }
    out.push(current);
    out.retain(|c| c.len() > 1);
    out
}

/// The merged file's name for `chunk`.
fn merged_file(chunk: &[&Stored]) -> BatchFile {
    let first = chunk[0].batch.as_ref().expect("batch files only");
    let last = chunk[chunk.len() - 1]
        .batch
        .as_ref()
        .expect("batch files only");
    BatchFile {
        topic: first.topic.clone(),
        partition: first.partition,
        epoch: first.epoch,
        first_offset: first.first_offset,
        last_offset: last.last_offset,
        index: 1,
        count: 1,
        compacted: true,
    }
}

fn merged_bytes(dir: &Path, chunk: &[&Stored]) -> Result<u64> {
    let path = dir.join(merged_file(chunk).file_name());
    std::fs::metadata(&path)
        .map(|m| m.len())
        .map_err(|e| Error::io(&path, "reading a merged file's size", e))
}

/// Writes the merge of `chunk` into `dir` durably. The files it replaced stay until
/// `remove_replaced` finds the merge old enough. Returns the rows merged.
fn merge(dir: &Path, chunk: &[&Stored]) -> Result<u64> {
    let merged = merged_file(chunk);
    let target = dir.join(merged.file_name());
    let temp = dir.join(format!("{COMPACTING_PREFIX}{}.tmp", merged.file_name()));
    let parquet_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Parquet { path, source }
    };
    // Every file is checked as recovery would before any of it is trusted.
    let mut expected_rows = 0u64;
    let mut last_message = None;
    for file in chunk {
        let batch = file.batch.as_ref().expect("batch files only");
        // Checked when it was found mergeable; this is the same check after the fact.
        let footer = batch
            .check_footer(&file.path)
            .map_err(|reason| Error::Merge {
                path: file.path.clone(),
                reason,
            })?;
        expected_rows += footer.rows as u64;
        last_message = footer.last_message;
    }
    let mut metadata: Vec<KeyValue> = merged
        .metadata(last_message.unwrap_or_default())
        .into_iter()
        .filter(|(key, _)| last_message.is_some() || *key != file_metadata::LAST_MESSAGE)
        .map(|(key, value)| KeyValue::new(key.to_string(), value))
        .collect();
    metadata.push(KeyValue::new(
        MERGED_FILES.to_string(),
        chunk.len().to_string(),
    ));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_key_value_metadata(Some(metadata))
        .build();
    let out = File::create(&temp).map_err(|e| Error::io(&temp, "creating a merged file", e))?;
    let mut writer: Option<(ArrowWriter<File>, arrow::datatypes::SchemaRef)> = None;
    let mut out = Some(out);
    let mut rows = 0u64;
    for file in chunk {
        let handle = File::open(&file.path)
            .map_err(|e| Error::io(&file.path, "opening a file to merge", e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(handle)
            .and_then(|b| b.with_batch_size(8192).build())
            .map_err(parquet_err(&file.path))?;
        for batch in reader {
            let batch = batch.map_err(|e| Error::Arrow {
                table: file.table.name(),
                source: e,
            })?;
            if writer.is_none() {
                let sink = out.take().expect("one output");
                writer = Some((
                    ArrowWriter::try_new(sink, batch.schema(), Some(props.clone()))
                        .map_err(parquet_err(&temp))?,
                    batch.schema(),
                ));
            }
            let (w, schema) = writer.as_mut().expect("created above");
            if schema != &batch.schema() {
                let _ = std::fs::remove_file(&temp);
                return Err(Error::Merge {
                    path: file.path.clone(),
                    reason: "its schema differs from the files merged before it (written by \
                             another shiftright version?); nothing was changed"
                        .into(),
                });
            }
            w.write(&batch).map_err(parquet_err(&temp))?;
            rows += batch.num_rows() as u64;
        }
    }
    let written = writer
        .expect("every batch file has a row")
        .0
        .into_inner()
        .map_err(parquet_err(&temp))?;
    written
        .sync_all()
        .map_err(|e| Error::io(&temp, "fsyncing a merged file", e))?;
    drop(written);
    if rows != expected_rows {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::Merge {
            path: target,
            reason: format!(
                "the merge read {rows} rows where its files' footers record {expected_rows}; \
                 nothing was changed"
            ),
        });
    }
    std::fs::rename(&temp, &target)
        .map_err(|e| Error::io(&temp, "renaming a merged file into place", e))?;
    sync_dir(dir)?;
    tracing::info!(path = %target.display(), files = chunk.len(), rows, "merged");
    Ok(rows)
}

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;
