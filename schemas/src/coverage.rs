//! What compaction's merged files replace, in the one rule readers, the ingest's recovery,
//! compaction and retention share.
//!
//! `shiftright compact` merges the files of one partition in one directory into a compacted file
//! (see `batch`) whose offset range spans theirs, makes it durable, and only then removes them. So
//! at any moment, a crash included:
//! - a file whose range lies within a compacted file's range *in its own directory* (same topic,
//!   partition and epoch) is **superseded**: its rows are in the compacted file, and a reader
//!   leaves it out (the next compaction removes it);
//! - a flush batch whose range lies within some compacted file's range *anywhere* is **covered**:
//!   compaction takes complete batches only, so the files it lacks were merged, not lost, and
//!   the batch is complete (a reader keeps its other files, recovery does not remove them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::batch::{BatchFile, BatchId};

/// One partition's log in one offset epoch: the offsets that compacted ranges are compared in.
type Log = (String, i32, u32);

fn log_of(file: &BatchFile) -> Log {
    (file.topic.clone(), file.partition, file.epoch)
}

/// The offset ranges of the compacted files among some files.
#[derive(Debug, Default, Clone)]
pub struct Coverage {
    merged: BTreeMap<Log, Vec<(i64, i64)>>,
}

impl Coverage {
    /// The compacted ranges of `files` (the batch files among them; others are ignored).
    pub fn of<'a>(files: impl IntoIterator<Item = &'a BatchFile>) -> Coverage {
        let mut coverage = Coverage::default();
        for file in files.into_iter().filter(|f| f.compacted) {
            coverage
                .merged
                .entry(log_of(file))
                .or_default()
                .push((file.first_offset, file.last_offset));
        }
        coverage
    }

    /// [`Coverage::of`] the batch files among `paths`, by name.
    pub fn of_paths<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Coverage {
        let files: Vec<BatchFile> = paths.into_iter().filter_map(|p| parse(p)).collect();
        Coverage::of(&files)
    }

    /// Whether some compacted file's range contains `batch`'s: then the batch was complete when it
    /// was compacted, and its files that are missing were merged.
    pub fn covers(&self, batch: &BatchId) -> bool {
        let log = (batch.topic.clone(), batch.partition, batch.epoch);
        self.merged.get(&log).is_some_and(|ranges| {
            ranges
                .iter()
                .any(|(first, last)| *first <= batch.first_offset && batch.last_offset <= *last)
        })
    }
}

impl Coverage {
    /// Whether some compacted file's range shares an offset with `batch`'s.
    pub fn overlaps(&self, batch: &BatchId) -> bool {
        let log = (batch.topic.clone(), batch.partition, batch.epoch);
        self.merged.get(&log).is_some_and(|ranges| {
            ranges
                .iter()
                .any(|(first, last)| *first <= batch.last_offset && batch.first_offset <= *last)
        })
    }
}

/// Every batch `files` belong to, and whether it is complete: all of its files are among them,
/// or a compacted file among them covers it (its missing files were merged). The one rule of
/// completeness readers, compaction and retention share.
pub fn completeness<'a>(files: impl IntoIterator<Item = &'a BatchFile>) -> BTreeMap<BatchId, bool> {
    let files: Vec<&BatchFile> = files.into_iter().collect();
    let coverage = Coverage::of(files.iter().copied());
    let mut batches: BTreeMap<BatchId, (usize, BTreeSet<usize>)> = BTreeMap::new();
    for file in files {
        let entry = batches
            .entry(file.batch())
            .or_insert((file.count, BTreeSet::new()));
        entry.1.insert(file.index);
    }
    batches
        .into_iter()
        .map(|(id, (count, present))| {
            let complete = present.len() >= count || coverage.covers(&id);
            (id, complete)
        })
        .collect()
}

/// The batch file named by `path`'s last component, if it is one.
fn parse(path: &Path) -> Option<BatchFile> {
    BatchFile::parse(path.file_name()?.to_str()?)
}

/// Of `paths`, those a compacted file in the same directory supersedes: same topic, partition and
/// epoch, a range within the compacted file's, and not that file itself (nor a compacted file
/// of the very same range).
pub fn superseded(paths: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut by_dir: BTreeMap<&Path, Vec<(&PathBuf, BatchFile)>> = BTreeMap::new();
    for path in paths {
        if let (Some(dir), Some(file)) = (path.parent(), parse(path)) {
            by_dir.entry(dir).or_default().push((path, file));
        }
    }
    let mut out = BTreeSet::new();
    for files in by_dir.values() {
        let coverage = Coverage::of(files.iter().map(|(_, f)| f));
        if coverage.merged.is_empty() {
            continue;
        }
        for (path, file) in files {
            let Some(ranges) = coverage.merged.get(&log_of(file)) else {
                continue;
            };
            let within = ranges.iter().any(|(first, last)| {
                let contains = *first <= file.first_offset && file.last_offset <= *last;
                let itself =
                    file.compacted && (*first, *last) == (file.first_offset, file.last_offset);
                contains && !itself
            });
            if within {
                out.insert((*path).clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(partition: i32, first: i64, last: i64, place: Option<(usize, usize)>) -> String {
        BatchFile {
            topic: "requests".into(),
            partition,
            epoch: 0,
            first_offset: first,
            last_offset: last,
            index: place.map_or(1, |p| p.0),
            count: place.map_or(1, |p| p.1),
            compacted: place.is_none(),
        }
        .file_name()
    }

    #[test]
    fn a_compacted_file_supersedes_what_it_spans_in_its_own_directory_only() {
        let a = PathBuf::from("out/requests/date=2026-01-01/experiment=a");
        let b = PathBuf::from("out/requests/date=2026-01-01/experiment=b");
        let merged = a.join(name(3, 0, 99, None));
        let inside = a.join(name(3, 0, 49, Some((1, 2))));
        let last = a.join(name(3, 50, 99, Some((1, 1))));
        let later = a.join(name(3, 100, 149, Some((1, 1))));
        let other_partition = a.join(name(4, 0, 49, Some((1, 1))));
        let other_dir = b.join(name(3, 0, 49, Some((2, 2))));
        let all = vec![
            merged.clone(),
            inside.clone(),
            last.clone(),
            later,
            other_partition,
            other_dir.clone(),
        ];
        assert_eq!(superseded(&all), BTreeSet::from([inside, last]));

        // The batch 0..=49 lost its file in `a` to the merge; its file in `b` stays, and the
        // batch counts as complete.
        let coverage = Coverage::of_paths(&all);
        let batch = parse(&other_dir).unwrap().batch();
        assert!(coverage.covers(&batch));
        assert!(!coverage.covers(&BatchId {
            first_offset: 100,
            last_offset: 149,
            ..batch.clone()
        }));
        assert!(!coverage.covers(&BatchId {
            partition: 4,
            ..batch
        }));
    }

    #[test]
    fn a_wider_merge_supersedes_a_narrower_one_and_not_itself() {
        let dir = PathBuf::from("out/requests/date=2026-01-01/experiment=a");
        let narrow = dir.join(name(3, 0, 49, None));
        let wide = dir.join(name(3, 0, 99, None));
        assert_eq!(
            superseded(&[narrow.clone(), wide.clone()]),
            BTreeSet::from([narrow])
        );
        assert!(superseded(&[wide]).is_empty());
    }
}
