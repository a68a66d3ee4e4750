//! Flush batches: the files one flush of one Kafka partition writes, how they are named, and what
//! their Parquet footers record. The ingest resumes from them and readers use them to leave out a
//! batch a crash left half-renamed, so the rules live here, beside the table schemas.
//!
//! A batch of partition `p`, offsets `first..=last`, that wrote `n` files (one per table
//! directory it touched) names its files
//! `p<p:05>-<first:020>-<last:020>-<i>of<n>-<topic>.parquet`, or
//! `p<p:05>e<epoch>-…` in offset epoch 1 and later (see [`BatchFile::epoch`]). The same facts are
//! in each file's key-value metadata, with a fingerprint of the batch's last message.
//!
//! `shiftright compact` merges a partition's files of one directory into
//! `p<p:05>[e<epoch>]-<first:020>-<last:020>-compacted-<topic>.parquet`: a batch of one file whose
//! offset range covers every file it replaced (see `coverage` for what that means to readers and
//! to recovery).

use std::path::Path;

/// Parquet key-value metadata keys that record where a file's rows came from. The ingest seeks each
/// partition past the highest offset recorded in durable files, so these are the source of truth for
/// progress.
pub mod file_metadata {
    /// Kafka topic of every row in the file.
    pub const TOPIC: &str = "shiftright.topic";
    /// Kafka partition of every row in the file.
    pub const PARTITION: &str = "shiftright.partition";
    /// First offset of the flush batch the file belongs to.
    pub const FIRST_OFFSET: &str = "shiftright.first_offset";
    /// Last offset of the flush batch the file belongs to.
    pub const LAST_OFFSET: &str = "shiftright.last_offset";
    /// How many files the flush batch wrote (across tables and partitions directories).
    pub const BATCH_FILES: &str = "shiftright.batch_files";
    /// The partition's offset epoch (absent: 0).
    pub const EPOCH: &str = "shiftright.offset_epoch";
    /// Fingerprint of the batch's last message (Kafka timestamp, key and payload), so that a
    /// restart can tell whether the log still holds the message it stopped after.
    pub const LAST_MESSAGE: &str = "shiftright.last_message";
}

/// What a compacted file's name has in place of `<i>of<n>`.
const COMPACTED: &str = "compacted";

/// The longest topic name the ingest accepts: with the rest of a batch file's name (and the
/// temporary name's dot and `.tmp`) it stays within the 255-byte name limit of common filesystems.
pub const MAX_TOPIC_BYTES: usize = 160;

/// One durable file's place in its batch, parsed from its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchFile {
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// Offset epoch: 0 until the partition's log was found reset (a topic recreated, a broker that
    /// lost its log) and the reset accepted; each accepted reset starts the next epoch, so the new
    /// log's offsets never meet the old files' names.
    pub epoch: u32,
    /// First offset of the batch.
    pub first_offset: i64,
    /// Last offset of the batch.
    pub last_offset: i64,
    /// 1-based index of the file in its batch.
    pub index: usize,
    /// Number of files in the batch.
    pub count: usize,
    /// Written by compaction: the merge of this partition's files of one directory whose offsets lie
    /// in `first_offset..=last_offset` (index 1 of 1).
    pub compacted: bool,
}

/// The batch a file belongs to: every file of a batch shares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId {
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// Offset epoch.
    pub epoch: u32,
    /// First offset.
    pub first_offset: i64,
    /// Last offset.
    pub last_offset: i64,
}

/// What a batch file's footer says, once checked against its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Rows in the file.
    pub rows: i64,
    /// Fingerprint of the batch's last message, when the writer recorded one.
    pub last_message: Option<u64>,
}

impl BatchFile {
    /// The file name, without directory.
    pub fn file_name(&self) -> String {
        let epoch = if self.epoch == 0 {
            String::new()
        } else {
            format!("e{}", self.epoch)
        };
        let place = if self.compacted {
            COMPACTED.to_string()
        } else {
            format!("{}of{}", self.index, self.count)
        };
        format!(
            "p{:05}{epoch}-{:020}-{:020}-{place}-{}.parquet",
            self.partition, self.first_offset, self.last_offset, self.topic
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
        let head = parts.next()?;
        let (partition, epoch) = match head.split_once('e') {
            Some((p, e)) => (p, e.parse().ok().filter(|e| *e > 0)?),
            None => (head, 0),
        };
        let first_offset = parts.next()?.parse().ok()?;
        let last_offset = parts.next()?.parse().ok()?;
        let place = parts.next()?;
        let (index, count, compacted) = if place == COMPACTED {
            (1, 1, true)
        } else {
            let (index, count) = place.split_once("of")?;
            (index.parse().ok()?, count.parse().ok()?, false)
        };
        let topic = parts.next()?.to_string();
        let file = BatchFile {
            topic,
            partition: partition.parse().ok()?,
            epoch,
            first_offset,
            last_offset,
            index,
            count,
            compacted,
        };
        (file.index >= 1 && file.index <= file.count && file.first_offset <= file.last_offset)
            .then_some(file)
    }

    /// The batch this file belongs to.
    pub fn batch(&self) -> BatchId {
        BatchId {
            topic: self.topic.clone(),
            partition: self.partition,
            epoch: self.epoch,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
        }
    }

    /// The key-value metadata the writer records in the file's footer.
    pub fn metadata(&self, last_message: u64) -> Vec<(&'static str, String)> {
        vec![
            (file_metadata::TOPIC, self.topic.clone()),
            (file_metadata::PARTITION, self.partition.to_string()),
            (file_metadata::FIRST_OFFSET, self.first_offset.to_string()),
            (file_metadata::LAST_OFFSET, self.last_offset.to_string()),
            (file_metadata::BATCH_FILES, self.count.to_string()),
            (file_metadata::EPOCH, self.epoch.to_string()),
            (file_metadata::LAST_MESSAGE, format!("{last_message:016x}")),
        ]
    }

    /// Reads the footer of the file at `path` and checks it against this name: a Parquet footer
    /// that parses, at least one row, and the recorded topic, partition, offsets, file count and
    /// epoch equal to the name's. The error says what is wrong.
    pub fn check_footer(&self, path: &Path) -> Result<Footer, String> {
        let metadata = read_footer(path)?;
        let rows = metadata.file_metadata().num_rows();
        if rows <= 0 {
            return Err("the file has no rows; every batch file has at least one".into());
        }
        let kv = metadata.file_metadata().key_value_metadata();
        let get = |key: &str| {
            kv.and_then(|kv| kv.iter().find(|e| e.key == key))
                .and_then(|e| e.value.clone())
        };
        let expected = [
            (file_metadata::TOPIC, Some(self.topic.clone())),
            (file_metadata::PARTITION, Some(self.partition.to_string())),
            (
                file_metadata::FIRST_OFFSET,
                Some(self.first_offset.to_string()),
            ),
            (
                file_metadata::LAST_OFFSET,
                Some(self.last_offset.to_string()),
            ),
            (file_metadata::BATCH_FILES, Some(self.count.to_string())),
        ];
        for (key, want) in expected {
            let found = get(key);
            if found != want {
                return Err(format!(
                    "its footer records {key} = {found:?}, its name says {want:?}"
                ));
            }
        }
        let epoch = get(file_metadata::EPOCH).unwrap_or_else(|| "0".into());
        if epoch != self.epoch.to_string() {
            return Err(format!(
                "its footer records offset epoch {epoch}, its name says {}",
                self.epoch
            ));
        }
        Ok(Footer {
            rows,
            last_message: get(file_metadata::LAST_MESSAGE)
                .and_then(|m| u64::from_str_radix(&m, 16).ok()),
        })
    }
}

/// Reads and parses a Parquet file's footer; the error says what is wrong (truncated, not
/// Parquet, unreadable).
pub fn read_footer(path: &Path) -> Result<parquet::file::metadata::ParquetMetaData, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(|e| format!("its Parquet footer is unreadable: {e}"))
}

/// A stable fingerprint of a Kafka message (written to footers as 16 hex digits): xxHash64 over its timestamp, key
/// and payload, each length-prefixed.
pub fn message_fingerprint(
    timestamp_ms: Option<i64>,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
) -> u64 {
    let mut hasher = twox_hash::XxHash64::with_seed(0);
    use std::hash::Hasher;
    hasher.write_i64(timestamp_ms.unwrap_or(i64::MIN));
    for part in [key, payload] {
        match part {
            Some(bytes) => {
                hasher.write_u64(bytes.len() as u64);
                hasher.write(bytes);
            }
            None => hasher.write_u64(u64::MAX),
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(epoch: u32) -> BatchFile {
        BatchFile {
            topic: "my-topic.v2".into(),
            partition: 3,
            epoch,
            first_offset: 10,
            last_offset: 99,
            index: 2,
            count: 3,
            compacted: false,
        }
    }

    #[test]
    fn names_round_trip_even_with_dashes_in_the_topic() {
        for epoch in [0, 1, 17] {
            let f = file(epoch);
            assert_eq!(BatchFile::parse(&f.file_name()), Some(f.clone()));
            assert_eq!(BatchFile::parse(&f.temp_name()), None);
        }
        assert_eq!(
            file(0).file_name(),
            "p00003-00000000000000000010-00000000000000000099-2of3-my-topic.v2.parquet"
        );
        assert!(file(2).file_name().starts_with("p00003e2-"));
        assert_eq!(BatchFile::parse("part-0.parquet"), None);
        assert_eq!(BatchFile::parse("p00003e0-1-2-1of1-t.parquet"), None);
        assert_eq!(BatchFile::parse("p00003-1-2-3of2-t.parquet"), None);
        let merged = BatchFile {
            index: 1,
            count: 1,
            compacted: true,
            ..file(1)
        };
        assert_eq!(
            merged.file_name(),
            "p00003e1-00000000000000000010-00000000000000000099-compacted-my-topic.v2.parquet"
        );
        assert_eq!(BatchFile::parse(&merged.file_name()), Some(merged));
    }

    #[test]
    fn the_longest_topic_fits_a_file_name() {
        let f = BatchFile {
            topic: "t".repeat(MAX_TOPIC_BYTES),
            partition: i32::MAX,
            epoch: u32::MAX,
            first_offset: i64::MAX,
            last_offset: i64::MAX,
            index: 99_999,
            count: 99_999,
            compacted: false,
        };
        assert!(f.temp_name().len() <= 255, "{}", f.temp_name().len());
    }

    #[test]
    fn fingerprints_tell_messages_apart() {
        let a = message_fingerprint(Some(1), Some(b"k"), Some(b"v"));
        assert_eq!(a, message_fingerprint(Some(1), Some(b"k"), Some(b"v")));
        assert_ne!(a, message_fingerprint(Some(2), Some(b"k"), Some(b"v")));
        assert_ne!(a, message_fingerprint(Some(1), Some(b"kv"), Some(b"")));
        assert_ne!(a, message_fingerprint(Some(1), None, Some(b"v")));
    }

    #[test]
    fn a_truncated_file_fails_its_footer_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        std::fs::write(&path, b"PAR1 not really").unwrap();
        let err = file(0).check_footer(&path).unwrap_err();
        assert!(err.contains("footer"), "{err}");
    }
}
