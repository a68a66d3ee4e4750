//! One writer per partition, among the processes of a group on one machine.
//!
//! A group member frozen past its session timeout (a VM pause, SIGSTOP, a disk stalled for
//! minutes) loses its partitions to another member; thawed, it runs its flush timer before it
//! next polls Kafka and learns of the loss, and writes the rows it had buffered, beside the
//! new owner's files of the same offsets: every row twice. So each partition has a lock file
//! (`OUT/_ingest_locks/partitions/<topic>.<partition>.lock`), locked exclusively (`flock`) from
//! before the partition's recovery until its revocation is handled. A new owner waits for it:
//! once the frozen member thaws it writes what it holds, sees the revocation and lets go, and
//! the new owner's recovery then resumes after that write. A member that never thaws holds it
//! until it dies (the kernel releases a dead process's locks); past [`WAIT`] the new owner stops
//! with an error naming the holder, rather than write beside it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::buffer::TopicPartition;
use crate::error::{Error, Result};
use crate::lock::LOCK_DIR;

/// How long a new owner waits for a partition's previous owner to let go.
pub const WAIT: Duration = Duration::from_secs(120);

/// The partition locks this process holds.
#[derive(Debug)]
pub struct PartitionLocks {
    dir: PathBuf,
    held: HashMap<TopicPartition, File>,
}

impl PartitionLocks {
    /// Locks kept under `out_dir`.
    pub fn new(out_dir: &Path) -> PartitionLocks {
        PartitionLocks {
            dir: out_dir.join(LOCK_DIR).join("partitions"),
            held: HashMap::new(),
        }
    }

    /// Locks `tp`, waiting up to `wait` for another process to release it.
    pub fn acquire(&mut self, tp: &TopicPartition, wait: Duration) -> Result<()> {
        if self.held.contains_key(tp) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(&self.dir, "creating the partition lock directory", e))?;
        let path = self.dir.join(format!("{}.{}.lock", tp.topic, tp.partition));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, "opening a partition lock", e))?;
        let started = Instant::now();
        let mut warned = started;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file);
                    if started.elapsed() >= wait {
                        return Err(Error::PartitionHeld {
                            partition: tp.to_string(),
                            holder,
                            waited: wait,
                        });
                    }
                    if warned.elapsed() >= Duration::from_secs(5) || warned == started {
                        tracing::warn!(partition = %tp, holder = %holder, "waiting for the partition's previous owner to let go of it (frozen or stalled; it writes what it holds first)");
                        warned = Instant::now();
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::io(&path, "locking a partition", e));
                }
            }
        }
        // Who holds it, for the error another process may have to print.
        let me = format!("pid {}", std::process::id());
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()));
        self.held.insert(tp.clone(), file);
        Ok(())
    }

    /// Releases `tp` (dropping the file releases the lock).
    pub fn release(&mut self, tp: &TopicPartition) {
        self.held.remove(tp);
    }

    /// Whether this process holds `tp`'s lock: it writes `tp`'s batches only then.
    pub fn holds(&self, tp: &TopicPartition) -> bool {
        self.held.contains_key(tp)
    }
}

fn read_holder(file: &mut File) -> String {
    let mut holder = String::new();
    let _ = file
        .rewind()
        .and_then(|()| file.read_to_string(&mut holder));
    if holder.trim().is_empty() {
        "another process".into()
    } else {
        holder.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_has_one_holder_and_the_next_waits_for_it() {
        let out = tempfile::tempdir().unwrap();
        let tp = TopicPartition {
            topic: "requests".into(),
            partition: 2,
        };
        let mut first = PartitionLocks::new(out.path());
        first.acquire(&tp, WAIT).unwrap();
        assert!(first.holds(&tp));
        let mut second = PartitionLocks::new(out.path());
        let err = second
            .acquire(&tp, Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(!second.holds(&tp));
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            first.release(&tp);
        });
        let tp = TopicPartition {
            topic: "requests".into(),
            partition: 2,
        };
        second.acquire(&tp, Duration::from_secs(10)).unwrap();
        assert!(second.holds(&tp));
        releaser.join().unwrap();
    }
}
