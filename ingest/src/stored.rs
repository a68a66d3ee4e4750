//! The durable files of an output as compaction and retention see them: every file of the tables
//! the ingest writes, with its flush batch (parsed from its name), date directory, size and age,
//! and which batches are complete. Both commands must never take part of a batch whose other
//! files readers and recovery still count on, so they judge from one listing made here.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use shiftright_schemas::batch::BatchId;
use shiftright_schemas::coverage;
use shiftright_schemas::{BatchFile, Table};

use crate::error::{Error, Result};
use crate::lock::LOCK_DIR;
use crate::offsets::walk;

/// What a compaction names its file while writing it: hidden, no `.parquet` ending (so no reader
/// lists it), and unlike the ingest's temporary names, not one the ingest's recovery removes.
pub(crate) const COMPACTING_PREFIX: &str = ".compacting-";

/// One file of the output.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub path: PathBuf,
    /// The table it belongs to.
    pub table: Table,
    /// Its flush batch; None for a file the ingest did not name (an outside tool's).
    pub batch: Option<BatchFile>,
    /// The `date=` directory it lies under, if any.
    pub date: Option<String>,
    pub bytes: u64,
    pub modified: SystemTime,
}

/// Every durable file of `out_dir`'s tables, and the temporary files a crashed compaction left.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub files: Vec<Stored>,
    pub compacting: Vec<PathBuf>,
}

impl Listing {
    pub fn of(out_dir: &Path) -> Result<Listing> {
        let mut listing = Listing::default();
        for table in Table::WRITTEN {
            let root = out_dir.join(table.dir_name());
            walk(&root, &mut |path, name| {
                if name.starts_with(COMPACTING_PREFIX) && name.ends_with(".tmp") {
                    listing.compacting.push(path.to_path_buf());
                    return Ok(());
                }
                if name.starts_with('.') || !name.ends_with(".parquet") {
                    return Ok(());
                }
                let meta = std::fs::metadata(path)
                    .map_err(|e| Error::io(path, "reading a file's size and age", e))?;
                let date = path
                    .strip_prefix(&root)
                    .ok()
                    .and_then(|rel| {
                        rel.components()
                            .filter_map(|c| c.as_os_str().to_str())
                            .find_map(|c| c.strip_prefix("date="))
                    })
                    .map(str::to_owned);
                listing.files.push(Stored {
                    path: path.to_path_buf(),
                    table,
                    batch: BatchFile::parse(name),
                    date,
                    bytes: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
                Ok(())
            })?;
        }
        listing.files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(listing)
    }

    /// The batches all of whose files are present, or whose missing files a compaction merged.
    /// A batch the ingest is still renaming into place is not among them.
    pub fn complete_batches(&self) -> BTreeSet<BatchId> {
        coverage::completeness(self.files.iter().filter_map(|f| f.batch.as_ref()))
            .into_iter()
            .filter_map(|(id, complete)| complete.then_some(id))
            .collect()
    }

    /// The files a compacted file beside them supersedes (their rows are in it).
    pub fn superseded(&self) -> BTreeSet<PathBuf> {
        let paths: Vec<PathBuf> = self.files.iter().map(|f| f.path.clone()).collect();
        coverage::superseded(&paths)
    }
}

/// Removes `paths` (those already gone are fine), then fsyncs each directory once, so that a
/// removal reported survives a crash.
pub(crate) fn remove_all<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> Result<()> {
    let mut dirs = BTreeSet::new();
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, "removing a file", e)),
        }
        if let Some(dir) = path.parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    for dir in dirs {
        crate::writer::sync_dir(&dir)?;
    }
    Ok(())
}

/// Takes the output's maintenance lock (`compact`, `--retain`), or fails when another run holds
/// it.
pub(crate) fn lock_maintenance(out_dir: &Path) -> Result<File> {
    let dir = out_dir.join(LOCK_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "creating the lock directory", e))?;
    let path = dir.join("compact.lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, "opening the compaction lock", e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::CompactionRunning {
            out: out_dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => {
            Err(Error::io(&path, "locking the output for compaction", e))
        }
    }
}
