//! Retention: removes the dates of the ingest's tables (the dead letters included) that lie past
//! a horizon, and says what it removed.
//!
//! Whole `date=` directories go, with one exception that keeps every count right: readers and
//! the ingest's recovery judge a flush batch by all of its files, so no file goes while a file
//! tied to it stays. Files are tied when they belong to one batch (a flush can write a late
//! event's row to an old date beside today's rows), or when one is a compacted file whose range
//! spans the other's (its batch counts as complete because of that merge). A date with such a
//! file is removed, but for those files, once everything tied to them is past the horizon too.
//! A file of a batch that is not complete yet (the ingest may be renaming its other files into
//! place right now, on a later date) or younger than `min_age` stays for the same reason. It
//! runs under the maintenance lock, so never beside a compaction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::stored::{lock_maintenance, remove_all, Listing, Stored};

/// What retention removed (or, dry, would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetainSummary {
    /// `table/date=` directories removed whole, as `dead_letters/date=2026-01-01`.
    pub dates: Vec<String>,
    /// Files removed.
    pub files: usize,
    /// Bytes removed.
    pub bytes: u64,
    /// Files past the horizon kept: a file tied to them is not past it, their batch is not
    /// complete yet, or they are younger than `min_age` (see the module docs).
    pub kept: usize,
}

/// Removes every file under `out_dir` whose date is before `horizon` (`YYYY-MM-DD`), but those tied
/// to a file that stays, those of incomplete batches and those younger than `min_age`.
pub fn retain(
    out_dir: &Path,
    horizon: &str,
    min_age: Duration,
    dry_run: bool,
) -> Result<RetainSummary> {
    if !out_dir.is_dir() {
        return Err(Error::NotAnOutput(out_dir.to_path_buf()));
    }
    let _lock = lock_maintenance(out_dir)?;
    let listing = Listing::of(out_dir)?;
    let files = &listing.files;
    let complete = listing.complete_batches();
    let settled = SystemTime::now()
        .checked_sub(min_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let old = |f: &Stored| f.date.as_deref().is_some_and(|d| d < horizon);
    let free = |f: &Stored| {
        old(f)
            && f.modified <= settled
            && f.batch
                .as_ref()
                .is_none_or(|b| complete.contains(&b.batch()))
    };
    let components = tied(files);
    // A component goes only when all of it is free to go.
    let mut staying: BTreeSet<usize> = BTreeSet::new();
    for (i, file) in files.iter().enumerate() {
        if !free(file) {
            staying.insert(components.find(i));
        }
    }
    let mut summary = RetainSummary::default();
    let mut removed: Vec<PathBuf> = Vec::new();
    let mut dirs_with_kept: BTreeSet<PathBuf> = BTreeSet::new();
    for (i, file) in files.iter().enumerate() {
        if !old(file) {
            continue;
        }
        if staying.contains(&components.find(i)) {
            summary.kept += 1;
            tracing::info!(path = %file.path.display(), "kept past the horizon: its flush batch has files on later dates, is not complete yet, or was written moments ago");
            if let Some(dir) = date_dir(out_dir, file) {
                dirs_with_kept.insert(dir);
            }
            continue;
        }
        summary.files += 1;
        summary.bytes += file.bytes;
        removed.push(file.path.clone());
    }
    let mut date_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for file in files.iter().filter(|f| old(f)) {
        if let Some(dir) = date_dir(out_dir, file) {
            if !dirs_with_kept.contains(&dir) {
                date_dirs.insert(dir);
            }
        }
    }
    summary.dates = date_dirs
        .iter()
        .map(|d| d.strip_prefix(out_dir).unwrap_or(d).display().to_string())
        .collect();
    if dry_run {
        return Ok(summary);
    }
    remove_all(removed.iter())?;
    for dir in &date_dirs {
        // Only now-empty directories below the date go (an outside tool's other files stay).
        remove_empty_dirs(dir)?;
    }
    Ok(summary)
}

/// The `table/date=…` directory `file` lies in.
fn date_dir(out_dir: &Path, file: &Stored) -> Option<PathBuf> {
    let date = file.date.as_ref()?;
    Some(
        out_dir
            .join(file.table.dir_name())
            .join(format!("date={date}")),
    )
}

/// Removes `dir` and the directories below it that hold no file.
fn remove_empty_dirs(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, "listing a date directory", e)),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                crate::writer::sync_dir(parent)?;
            }
            Ok(())
        }
        // Not empty: something else lives there.
        Err(_) => Ok(()),
    }
}

/// Union-find over `files`: one component per set of files tied together (module docs).
struct Components(Vec<usize>);

impl Components {
    fn find(&self, mut i: usize) -> usize {
        while self.0[i] != i {
            i = self.0[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

fn tied(files: &[Stored]) -> Components {
    let mut components = Components((0..files.len()).collect());
    let mut by_batch: BTreeMap<_, usize> = BTreeMap::new();
    let mut by_log: BTreeMap<(String, i32, u32), Vec<usize>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let Some(batch) = &file.batch else { continue };
        match by_batch.get(&batch.batch()) {
            Some(&first) => components.union(first, i),
            None => {
                by_batch.insert(batch.batch(), i);
            }
        }
        by_log
            .entry((batch.topic.clone(), batch.partition, batch.epoch))
            .or_default()
            .push(i);
    }
    for members in by_log.values() {
        for &c in members {
            let merged = files[c].batch.as_ref().expect("indexed batch files");
            if !merged.compacted {
                continue;
            }
            for &f in members {
                let b = files[f].batch.as_ref().expect("indexed batch files");
                if merged.first_offset <= b.first_offset && b.last_offset <= merged.last_offset {
                    components.union(c, f);
                }
            }
        }
    }
    components
}
