//! Retention: removes the dates of the ingest's tables (the dead letters included) that lie past
//! a horizon, and says what it removed.
//!
//! Whole `date=` directories go, with one exception that keeps every count right: readers and
//! the ingest's recovery judge a flush batch by all of its files, so no file goes while a file
//! tied to it stays. Files are tied when they belong to one batch (a flush can write a late
//! event's row to an old date beside today's rows), or when one is a compacted file whose range
//! spans the other's (its batch counts as complete because of that merge). A date with such a
//! file is removed, but for those files, once everything tied to them is past the horizon too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::stored::{remove_all, Listing, Stored};

/// What retention removed (or, dry, would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetainSummary {
    /// `table/date=` directories removed whole, as `dead_letters/date=2026-01-01`.
    pub dates: Vec<String>,
    /// Files removed.
    pub files: usize,
    /// Bytes removed.
    pub bytes: u64,
    /// Files past the horizon kept because a file tied to them is not (see the module docs).
    pub kept: usize,
}

/// Removes every file under `out_dir` whose date is before `horizon` (`YYYY-MM-DD`), but those tied
/// to a file that stays.
pub fn retain(out_dir: &Path, horizon: &str, dry_run: bool) -> Result<RetainSummary> {
    if !out_dir.is_dir() {
        return Err(Error::NotAnOutput(out_dir.to_path_buf()));
    }
    let listing = Listing::of(out_dir)?;
    let files = &listing.files;
    let past = |f: &Stored| f.date.as_deref().is_some_and(|d| d < horizon);
    let components = tied(files);
    // A component goes only when all of it is past the horizon.
    let mut staying: BTreeSet<usize> = BTreeSet::new();
    for (i, file) in files.iter().enumerate() {
        if !past(file) {
            staying.insert(components.find(i));
        }
    }
    let mut summary = RetainSummary::default();
    let mut removed: Vec<PathBuf> = Vec::new();
    let mut dirs_with_kept: BTreeSet<PathBuf> = BTreeSet::new();
    for (i, file) in files.iter().enumerate() {
        if !past(file) {
            continue;
        }
        if staying.contains(&components.find(i)) {
            summary.kept += 1;
            tracing::info!(path = %file.path.display(), "kept past the horizon: its flush batch has files on later dates");
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
    for file in files.iter().filter(|f| past(f)) {
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
