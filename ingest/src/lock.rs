//! One ingest group per output directory. Two groups on one `--out` would each read every message
//! and write every row twice, and nothing downstream could tell which copy to trust; so every
//! ingest process holds a lock on the output for its whole life:
//! - `OUT/_ingest_locks/group-<hash>.lock` holds the group id, locked *shared* by each member of
//!   that group (several processes of one group split the partitions and may run together);
//! - at start, under the exclusive `registry.lock`, a process tries every other group's file
//!   exclusively: if that fails, the group is running and the process stops, naming it.
//!
//! These are advisory locks (`flock`), released by the kernel when a process dies however it
//! dies, so a crash never leaves the output locked. They hold on local filesystems; on NFS they
//! depend on the server's lock support.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock directory under the output root. Readers never list it.
pub const LOCK_DIR: &str = "_ingest_locks";

/// Held for as long as the ingest runs; dropping it releases the lock.
#[derive(Debug)]
pub struct OutputLock {
    _group: File,
    /// The group's lock file.
    pub path: PathBuf,
}

/// Locks `out_dir` for `group_id`, or fails naming the other group that holds it.
pub fn lock_output(out_dir: &Path, group_id: &str) -> Result<OutputLock> {
    let dir = out_dir.join(LOCK_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "creating the lock directory", e))?;
    let registry_path = dir.join("registry.lock");
    let registry = open(&registry_path)?;
    registry
        .lock()
        .map_err(|e| Error::io(&registry_path, "locking the output", e))?;
    let own_name = format!(
        "group-{}.lock",
        shiftright_schemas::keys::key_hash(group_id)
    );
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, "listing the locks", e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("group-") || !name.ends_with(".lock") || name == own_name {
            continue;
        }
        let path = entry.path();
        let mut other = open(&path)?;
        match other.try_lock() {
            Ok(()) => {
                // Stale: its group is not running. Released when `other` is dropped.
            }
            Err(TryLockError::WouldBlock) => {
                let mut group = String::new();
                let _ = other.read_to_string(&mut group);
                return Err(Error::OutputInUse {
                    out: out_dir.to_path_buf(),
                    group: group.trim().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, "checking a lock", e)),
        }
    }
    let path = dir.join(own_name);
    let mut own = open(&path)?;
    let mut recorded = String::new();
    let _ = own.read_to_string(&mut recorded);
    if recorded != group_id {
        own.set_len(0)
            .and_then(|()| own.write_all(group_id.as_bytes()))
            .and_then(|()| own.sync_all())
            .map_err(|e| Error::io(&path, "writing the group lock", e))?;
    }
    own.try_lock_shared().map_err(|e| match e {
        TryLockError::WouldBlock => Error::io(
            &path,
            "locking the output",
            std::io::ErrorKind::WouldBlock.into(),
        ),
        TryLockError::Error(e) => Error::io(&path, "locking the output", e),
    })?;
    drop(registry);
    Ok(OutputLock { _group: own, path })
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, "opening a lock file", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_group_at_a_time_and_its_members_together() {
        let out = tempfile::tempdir().unwrap();
        let first = lock_output(out.path(), "group-a").unwrap();
        let second_member = lock_output(out.path(), "group-a").unwrap();
        let err = lock_output(out.path(), "group-b").unwrap_err().to_string();
        assert!(err.contains("\"group-a\""), "{err}");
        drop(first);
        assert!(
            lock_output(out.path(), "group-b").is_err(),
            "a member of group-a still runs"
        );
        drop(second_member);
        let _b = lock_output(out.path(), "group-b").expect("group-a stopped");
    }
}
