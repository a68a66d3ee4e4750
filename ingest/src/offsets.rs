//! Durable progress, read back from the Parquet files themselves.
//!
//! Each flush batch of a partition writes files named
//! `p<partition>-<first offset>-<last offset>-<i>of<n>-<topic>.parquet` (the same facts are in the
//! files' key-value metadata). On assignment of a partition the consumer resumes at one past the
//! last offset of the newest *complete* batch: a batch whose n files are all present. A crash in the
//! middle of renaming a batch leaves it incomplete; its files are removed and its rows rewritten, so
//! nothing is counted twice. Temporary files a crash left behind are removed at the same time.

use std::path::{Path, PathBuf};

use shiftright_schemas::Table;

use crate::error::{Error, Result};

/// One durable file's place in its batch, parsed from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFile {
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// First offset of the batch.
    pub first_offset: i64,
    /// Last offset of the batch.
    pub last_offset: i64,
    /// 1-based index of the file in its batch.
    pub index: usize,
    /// Number of files in the batch.
    pub count: usize,
}

impl BatchFile {
    /// The file name, without directory.
    pub fn file_name(&self) -> String {
        format!(
            "p{:05}-{:020}-{:020}-{}of{}-{}.parquet",
            self.partition, self.first_offset, self.last_offset, self.index, self.count, self.topic
        )
    }

    /// The name the file has while it is written: hidden, and without the `.parquet` ending so that
    /// no reader ever lists it.
    pub fn temp_name(&self) -> String {
        format!(".{}.tmp", self.file_name())
    }

    /// Parses a durable file name; None for anything else.
    pub fn parse(name: &str) -> Option<BatchFile> {
        let rest = name.strip_prefix('p')?.strip_suffix(".parquet")?;
        let mut parts = rest.splitn(5, '-');
        let partition = parts.next()?.parse().ok()?;
        let first_offset = parts.next()?.parse().ok()?;
        let last_offset = parts.next()?.parse().ok()?;
        let (index, count) = parts.next()?.split_once("of")?;
        let topic = parts.next()?.to_string();
        Some(BatchFile {
            topic,
            partition,
            first_offset,
            last_offset,
            index: index.parse().ok()?,
            count: count.parse().ok()?,
        })
    }
}

/// The next offset to read from `topic`/`partition`, from the durable files under `out_dir`; None
/// when no file of that partition exists. Removes the partition's temporary files and incomplete
/// batches (see the module docs). Only the partition's current owner may call it.
pub fn recover_partition(out_dir: &Path, topic: &str, partition: i32) -> Result<Option<i64>> {
    let mut files: Vec<(BatchFile, PathBuf)> = Vec::new();
    let temp_suffix = format!("-{topic}.parquet.tmp");
    let temp_prefix = format!(".p{partition:05}-");
    for table in [
        Table::Requests,
        Table::Business,
        Table::Exposures,
        Table::DeadLetters,
    ] {
        let root = out_dir.join(table.dir_name());
        walk(&root, &mut |path, name| {
            if name.starts_with(&temp_prefix) && name.ends_with(&temp_suffix) {
                tracing::info!(path = %path.display(), "removing a temporary file left by an interrupted flush");
                std::fs::remove_file(path)
                    .map_err(|e| Error::io(path, "removing a temporary file", e))?;
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
        b.0.last_offset
            .cmp(&a.0.last_offset)
            .then(a.0.index.cmp(&b.0.index))
    });
    while let Some((newest, _)) = files.first() {
        let (first, last, count) = (newest.first_offset, newest.last_offset, newest.count);
        let batch_len = files
            .iter()
            .take_while(|(f, _)| f.first_offset == first && f.last_offset == last)
            .count();
        let mut indexes: Vec<usize> = files[..batch_len].iter().map(|(f, _)| f.index).collect();
        indexes.dedup();
        if indexes.len() == count && files[..batch_len].iter().all(|(f, _)| f.count == count) {
            return Ok(Some(last + 1));
        }
        for (_, path) in files.drain(..batch_len) {
            tracing::warn!(
                path = %path.display(), topic, partition, first, last,
                "removing a file of an incomplete flush batch; its rows will be read again"
            );
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(&path, "removing an incomplete batch", e))?;
        }
    }
    Ok(None)
}

/// Calls `visit` on every file below `dir` (missing directories are empty).
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path, &str) -> Result<()>) -> Result<()> {
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

    fn file(first: i64, last: i64, index: usize, count: usize) -> BatchFile {
        BatchFile {
            topic: "my-topic.v2".into(),
            partition: 3,
            first_offset: first,
            last_offset: last,
            index,
            count,
        }
    }

    #[test]
    fn names_round_trip_even_with_dashes_in_the_topic() {
        let f = file(10, 99, 2, 3);
        assert_eq!(BatchFile::parse(&f.file_name()), Some(f.clone()));
        assert_eq!(BatchFile::parse(&f.temp_name()), None);
        assert_eq!(BatchFile::parse("part-0.parquet"), None);
    }

    fn touch(dir: &Path, sub: &str, name: &str) -> PathBuf {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        std::fs::write(&p, b"x").unwrap();
        p
    }

    #[test]
    fn resumes_after_the_newest_complete_batch_and_removes_the_rest() {
        let out = tempfile::tempdir().unwrap();
        let o = out.path();
        touch(
            o,
            "requests/date=2026-01-01/experiment=a",
            &file(0, 9, 1, 2).file_name(),
        );
        touch(
            o,
            "_dead_letters/date=2026-01-01",
            &file(0, 9, 2, 2).file_name(),
        );
        // A batch whose second file never got renamed, plus its temporary file.
        let partial = touch(
            o,
            "requests/date=2026-01-01/experiment=b",
            &file(10, 19, 1, 2).file_name(),
        );
        let temp = touch(
            o,
            "requests/date=2026-01-01/experiment=b",
            &file(10, 19, 2, 2).temp_name(),
        );
        // Another partition's files are not touched.
        let other = BatchFile {
            partition: 4,
            ..file(0, 99, 1, 2)
        };
        let other_path = touch(
            o,
            "requests/date=2026-01-01/experiment=a",
            &other.file_name(),
        );

        assert_eq!(recover_partition(o, "my-topic.v2", 3).unwrap(), Some(10));
        assert!(!partial.exists());
        assert!(!temp.exists());
        assert!(other_path.exists());
        assert_eq!(recover_partition(o, "my-topic.v2", 7).unwrap(), None);
    }
}
