//! Runs one command as a child process and measures it the way `/usr/bin/time -v` would: wall
//! time, and the peak resident set size the kernel recorded for that child alone (`wait4`'s
//! rusage), so that ours and DuckDB's figures come from the same measurement.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// What one measured run took.
#[derive(Debug, Clone)]
pub struct Measured {
    /// From spawn to exit.
    pub wall: Duration,
    /// Peak resident set size of the child, bytes.
    pub peak_rss_bytes: u64,
    /// CPU time of the child, user and system.
    pub cpu: Duration,
    /// Exit code (None: killed by a signal).
    pub exit_code: Option<i32>,
    /// Everything it printed on standard output.
    pub stdout: String,
}

impl Measured {
    /// Peak RSS in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_bytes as f64 / (1 << 20) as f64
    }

    /// Cores kept busy on average: CPU time over wall time.
    pub fn cores_busy(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs `command` to its end, measuring it. Its standard error is kept in a temporary file and its
/// end is shown if the exit code is not one of `ok_codes`.
pub fn run_measured(mut command: Command, ok_codes: &[i32]) -> Result<Measured> {
    let what = format!("{command:?}");
    let mut stderr_file = tempfile::tempfile()
        .map_err(|e| Error::io("creating a temporary file in", std::env::temp_dir(), e))?;
    let stderr_handle = stderr_file
        .try_clone()
        .map_err(|e| Error::io("duplicating the handle of", std::env::temp_dir(), e))?;
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr_handle));
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| Error::Child {
        what: what.clone(),
        detail: format!("cannot start it: {e}"),
    })?;
    let pid = child.id() as libc::pid_t;
    // Read stdout on a thread so that a child printing much never blocks on a full pipe.
    let mut out = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(out) = out.as_mut() {
            let _ = out.read_to_string(&mut text);
        }
        text
    });
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped (std's Child is never waited on below), and
    // both pointers are to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if reaped != pid {
        return Err(Error::Child {
            what,
            detail: format!("wait4 failed: {}", std::io::Error::last_os_error()),
        });
    }
    // The child is reaped; forget the handle so that nothing waits on the pid again.
    std::mem::forget(child);
    let stdout = reader.join().unwrap_or_default();
    let exit_code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    if !exit_code.is_some_and(|c| ok_codes.contains(&c)) {
        let mut err = String::new();
        use std::io::Seek;
        let _ = stderr_file.seek(std::io::SeekFrom::Start(0));
        let _ = stderr_file.read_to_string(&mut err);
        let tail: String = err
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Error::Child {
            what,
            detail: format!(
                "exit status {status:#x} (code {exit_code:?}); its last lines:\n{tail}"
            ),
        });
    }
    Ok(Measured {
        wall,
        // Linux reports ru_maxrss in KiB.
        peak_rss_bytes: (usage.ru_maxrss as u64) * 1024,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        exit_code,
        stdout,
    })
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child_that_allocates() {
        // python3 is on every machine this project runs on (.ci/run installs it).
        let mut cmd = Command::new("python3");
        cmd.args(["-c", "b = bytearray(200 * 1024 * 1024); print(len(b))"]);
        let m = run_measured(cmd, &[0]).unwrap();
        assert_eq!(m.stdout.trim(), (200 * 1024 * 1024).to_string());
        assert!(m.peak_rss_bytes >= 200 << 20, "{}", m.peak_rss_bytes);
        assert!(m.peak_rss_bytes < 1 << 30, "{}", m.peak_rss_bytes);
    }

    #[test]
    fn reports_a_failing_child_with_its_stderr() {
        let mut cmd = Command::new("python3");
        cmd.args([
            "-c",
            "import sys; sys.stderr.write('the reason\\n'); sys.exit(5)",
        ]);
        let err = run_measured(cmd, &[0]).unwrap_err().to_string();
        assert!(err.contains("the reason"), "{err}");
        assert!(err.contains("Some(5)"), "{err}");
    }
}
