//! Durable progress, read back from the Parquet files themselves.
//!
//! Each flush batch of a partition writes files named as `shiftright_schemas::batch` says, with
//! the partition, offset epoch and offset range in their names and footers. On assignment of a
//! partition the consumer resumes at one past the last offset of the newest *sound* batch (highest
//! epoch, then highest offset):
//! - a batch whose n files are not all present was cut short by a crash mid-rename: its files are
//!   removed and its rows read again, so nothing is counted twice;
//! - a complete batch whose footers do not check out (truncated, not Parquet, or recording other
//!   offsets than their names) is moved whole to `OUT/_quarantine/` (same relative paths, kept for
//!   inspection) and its rows read again, so a damaged file is never trusted as progress;
//! - temporary files a crash left behind are removed;
//! - a batch that lacks files because `shiftright compact` merged them is complete (its range lies
//!   within a compacted file's), and a compacted file is a sound batch of one file.

use std::path::{Path, PathBuf};

use shiftright_schemas::batch::BatchId;
use shiftright_schemas::coverage::Coverage;
use shiftright_schemas::{BatchFile, Table};

use crate::error::{Error, Result};

/// Where quarantined batches go, under the output root. Readers never list it.
pub const QUARANTINE_DIR: &str = "_quarantine";

/// Where a partition resumes, recovered from its newest sound batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// One past the batch's last offset.
    pub next_offset: i64,
    /// The batch's offset epoch.
    pub epoch: u32,
    /// Fingerprint of the batch's last message (None for files written before it was recorded):
    /// the pipeline checks that the log still holds that message at `next_offset - 1`.
    pub last_message: Option<u64>,
}

/// What recovery did besides finding the resume point, for logs and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The resume point; None when the partition has no sound batch.
    pub resume: Option<Resume>,
    /// Batches moved to the quarantine: each one's files (at their new place) and what was wrong.
    pub quarantined: Vec<(Vec<PathBuf>, String)>,
}

/// Recovers `topic`/`partition` from the durable files under `out_dir` (see the module docs).
/// Only the partition's current owner may call it.
pub fn recover_partition(out_dir: &Path, topic: &str, partition: i32) -> Result<Recovery> {
    let mut files: Vec<(BatchFile, PathBuf)> = Vec::new();
    let temp_suffix = format!("-{topic}.parquet.tmp");
    let temp_prefix = format!(".p{partition:05}");
    for table in Table::WRITTEN {
        let root = out_dir.join(table.dir_name());
        walk(&root, &mut |path, name| {
            if name.starts_with(&temp_prefix) && name.ends_with(&temp_suffix) {
                if BatchFile::parse(&name[1..name.len() - 4])
                    .is_some_and(|f| f.partition == partition && f.topic == topic)
                {
                    tracing::info!(path = %path.display(), "removing a temporary file left by an interrupted flush");
                    std::fs::remove_file(path)
                        .map_err(|e| Error::io(path, "removing a temporary file", e))?;
                }
            } else if let Some(file) = BatchFile::parse(name) {
                if file.topic == topic && file.partition == partition {
                    files.push((file, path.to_path_buf()));
                }
            }
            Ok(())
        })?;
    }
    // Newest batch first; only the newest can be incomplete, since batches are written one at a time.
    files.sort_by(|a, b| {
        (b.0.epoch, b.0.last_offset, b.0.first_offset)
            .cmp(&(a.0.epoch, a.0.last_offset, a.0.first_offset))
            .then(a.0.index.cmp(&b.0.index))
    });
    // Batches whose files in some directory a compaction merged: complete, though files are
    // missing (`shiftright_schemas::coverage`).
    let coverage = Coverage::of(files.iter().map(|(f, _)| f));
    let mut recovery = Recovery::default();
    // The newest epoch with a batch removed or quarantined, and the start of its oldest such
    // batch: with no sound batch of that epoch before it, reading resumes there (the group's
    // committed offset may already be past it).
    let mut dropped_from: Option<(u32, i64)> = None;
    let dropped = |from: &mut Option<(u32, i64)>, batch: &BatchId| {
        if from.is_none_or(|(epoch, _)| epoch == batch.epoch) {
            *from = Some((batch.epoch, batch.first_offset));
        }
    };
    while let Some((newest, _)) = files.first() {
        let batch = newest.batch();
        let count = newest.count;
        let batch_len = files.iter().take_while(|(f, _)| f.batch() == batch).count();
        let members: Vec<(BatchFile, PathBuf)> = files.drain(..batch_len).collect();
        let mut indexes: Vec<usize> = members.iter().map(|(f, _)| f.index).collect();
        indexes.dedup();
        let incomplete = indexes.len() != count || members.iter().any(|(f, _)| f.count != count);
        if incomplete && !coverage.covers(&batch) {
            for (_, path) in &members {
                tracing::warn!(
                    path = %path.display(), topic, partition, first = batch.first_offset, last = batch.last_offset,
                    "removing a file of an incomplete flush batch; its rows will be read again"
                );
                std::fs::remove_file(path)
                    .map_err(|e| Error::io(path, "removing an incomplete batch", e))?;
            }
            dropped(&mut dropped_from, &batch);
            continue;
        }
        let mut last_message = None;
        let mut fault = None;
        for (file, path) in &members {
            match file.check_footer(path) {
                Ok(footer) => last_message = last_message.or(footer.last_message),
                Err(why) => {
                    fault = Some(format!("{}: {why}", path.display()));
                    break;
                }
            }
        }
        match fault {
            None => {
                if let Some((epoch, first)) = dropped_from.filter(|(e, _)| *e > batch.epoch) {
                    // (Batches of one epoch are dropped newest first; `dropped_from` keeps the
                    // newest epoch's oldest.)
                    // Every batch of the newer epoch was dropped: that epoch's log is the one
                    // to read, from where its first dropped batch began.
                    recovery.resume = Some(Resume {
                        next_offset: first,
                        epoch,
                        last_message: None,
                    });
                    return Ok(recovery);
                }
                recovery.resume = Some(Resume {
                    next_offset: batch.last_offset + 1,
                    epoch: batch.epoch,
                    last_message,
                });
                return Ok(recovery);
            }
            Some(why) if members.iter().any(|(f, _)| f.compacted) || coverage.overlaps(&batch) => {
                // Quarantining it would lose the rows a merge took from it or from the batches
                // it spans, and reading its offsets again would write the merged ones twice.
                return Err(Error::Recovery {
                    topic: topic.to_string(),
                    partition,
                    reason: format!(
                        "{why}. `shiftright compact` merged offsets {}..={} of this partition (in \
                         part or whole) into a compacted file, so neither moving the batch to \
                         {QUARANTINE_DIR}/ nor reading it again from Kafka would keep every row \
                         exactly once; stopping instead. Restore the damaged file from a backup, \
                         or move it out of the output by hand to accept the loss of its rows",
                        batch.first_offset, batch.last_offset
                    ),
                });
            }
            Some(why) => {
                tracing::error!(
                    topic, partition, first = batch.first_offset, last = batch.last_offset, fault = %why,
                    "a flush batch is damaged: moving it to {QUARANTINE_DIR}/ and reading its rows again"
                );
                let mut moved = Vec::with_capacity(members.len());
                for (_, path) in &members {
                    moved.push(quarantine(out_dir, path)?);
                }
                recovery.quarantined.push((moved, why));
                dropped(&mut dropped_from, &batch);
            }
        }
    }
    recovery.resume = dropped_from.map(|(epoch, first)| Resume {
        next_offset: first,
        epoch,
        last_message: None,
    });
    Ok(recovery)
}

/// Moves `path` (under `out_dir`) to the same relative place under `out_dir/_quarantine/`, durably.
fn quarantine(out_dir: &Path, path: &Path) -> Result<PathBuf> {
    let relative = path.strip_prefix(out_dir).unwrap_or(path);
    let target = out_dir.join(QUARANTINE_DIR).join(relative);
    if let Some(parent) = target.parent() {
        crate::writer::create_dir_durably(parent)?;
    }
    std::fs::rename(path, &target)
        .map_err(|e| Error::io(path, "moving a damaged file to the quarantine", e))?;
    for dir in [target.parent(), path.parent()].into_iter().flatten() {
        crate::writer::sync_dir(dir)?;
    }
    Ok(target)
}

/// Calls `visit` on every file below `dir` (missing directories are empty).
pub(crate) fn walk(dir: &Path, visit: &mut dyn FnMut(&Path, &str) -> Result<()>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, "listing the output", e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "listing the output", e))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(&path, "reading a file type", e))?;
        if kind.is_dir() {
            walk(&path, visit)?;
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            visit(&path, name)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(epoch: u32, first: i64, last: i64, index: usize, count: usize) -> BatchFile {
        BatchFile {
            topic: "my-topic.v2".into(),
            partition: 3,
            epoch,
            first_offset: first,
            last_offset: last,
            index,
            count,
            compacted: false,
        }
    }

    /// Writes a real one-row Parquet file for `f` (as the writer would), or junk.
    fn put(dir: &Path, sub: &str, f: &BatchFile, sound: bool) -> PathBuf {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(f.file_name());
        if sound {
            crate::writer::write_test_file(&p, f);
        } else {
            std::fs::write(&p, b"PAR1 truncated").unwrap();
        }
        p
    }

    #[test]
    fn resumes_after_the_newest_sound_batch_and_removes_the_rest() {
        let out = tempfile::tempdir().unwrap();
        let o = out.path();
        put(
            o,
            "requests/date=2026-01-01/experiment=a",
            &file(0, 0, 9, 1, 2),
            true,
        );
        put(
            o,
            "_dead_letters/date=2026-01-01",
            &file(0, 0, 9, 2, 2),
            true,
        );
        // A batch whose second file never got renamed, plus its temporary file.
        let partial = put(
            o,
            "requests/date=2026-01-01/experiment=b",
            &file(0, 10, 19, 1, 2),
            true,
        );
        let temp = o
            .join("requests/date=2026-01-01/experiment=b")
            .join(file(0, 10, 19, 2, 2).temp_name());
        std::fs::write(&temp, b"x").unwrap();
        // Another partition's files are not touched.
        let other = BatchFile {
            partition: 4,
            ..file(0, 0, 99, 1, 1)
        };
        let other_path = put(o, "requests/date=2026-01-01/experiment=a", &other, true);

        let recovered = recover_partition(o, "my-topic.v2", 3).unwrap();
        assert_eq!(recovered.resume.map(|r| r.next_offset), Some(10));
        assert!(!partial.exists());
        assert!(!temp.exists());
        assert!(other_path.exists());
        assert_eq!(recover_partition(o, "my-topic.v2", 7).unwrap().resume, None);
    }

    /// Puts `(file, sound)` pairs in one experiment directory and recovers the partition.
    fn resume_after(files: &[(BatchFile, bool)]) -> Resume {
        let out = tempfile::tempdir().unwrap();
        for (f, sound) in files {
            put(
                out.path(),
                "requests/date=2026-01-01/experiment=a",
                f,
                *sound,
            );
        }
        recover_partition(out.path(), "my-topic.v2", 3)
            .unwrap()
            .resume
            .unwrap()
    }

    #[test]
    fn a_newer_epoch_whose_batches_were_all_dropped_is_read_again_in_that_epoch() {
        let resume = resume_after(&[
            (file(0, 0, 999, 1, 1), true),
            (file(1, 0, 49, 1, 1), false),
            (file(1, 50, 99, 1, 2), true),
        ]);
        assert_eq!(
            (resume.epoch, resume.next_offset, resume.last_message),
            (1, 0, None)
        );
    }

    #[test]
    fn with_no_sound_batch_left_reading_resumes_where_the_dropped_ones_began() {
        let resume = resume_after(&[(file(0, 300, 599, 1, 1), false)]);
        assert_eq!((resume.next_offset, resume.last_message), (300, None));
    }

    #[test]
    fn a_damaged_batch_is_quarantined_and_the_one_before_it_decides() {
        let out = tempfile::tempdir().unwrap();
        let o = out.path();
        put(
            o,
            "requests/date=2026-01-01/experiment=a",
            &file(0, 0, 9, 1, 1),
            true,
        );
        let bad = put(
            o,
            "requests/date=2026-01-01/experiment=a",
            &file(0, 10, 19, 1, 1),
            false,
        );
        let recovered = recover_partition(o, "my-topic.v2", 3).unwrap();
        assert_eq!(recovered.resume.as_ref().map(|r| r.next_offset), Some(10));
        assert_eq!(recovered.quarantined.len(), 1);
        assert!(!bad.exists());
        assert!(o
            .join(QUARANTINE_DIR)
            .join("requests/date=2026-01-01/experiment=a")
            .join(file(0, 10, 19, 1, 1).file_name())
            .exists());
        assert!(recovered.resume.unwrap().last_message.is_some());
    }

    #[test]
    fn the_newest_epoch_decides_whatever_its_offsets() {
        let resume = resume_after(&[(file(0, 0, 999, 1, 1), true), (file(1, 0, 49, 1, 1), true)]);
        assert_eq!((resume.epoch, resume.next_offset), (1, 50));
    }
}
