//! A Ballista cluster on this machine for the analysis benchmark's cluster row: a `shiftright
//! scheduler` and N `shiftright executor`s as child processes on free loopback ports, their peak
//! RSS and CPU read from `/proc` before they are stopped; and the comparison of two JSON reports
//! that says whether the cluster gave the local answer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shiftright_traffic::tansu::free_port;

use crate::error::{Error, Result};

/// A scheduler and its executors, stopped when dropped.
#[derive(Debug)]
pub struct LocalCluster {
    /// `df://127.0.0.1:PORT`, for `--cluster`.
    pub address: String,
    scheduler: Child,
    executors: Vec<Child>,
}

/// What the cluster's processes used, summed over them.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterUsage {
    /// The sum of each process's peak RSS.
    pub peak_rss_bytes: u64,
    /// User + system CPU time of all of them.
    pub cpu: Duration,
}

impl LocalCluster {
    /// Starts a scheduler and `executors` executors of `threads` task slots and `memory_limit`
    /// bytes each, with their work directories and logs under `work_dir`; returns once every port
    /// listens.
    pub fn start(
        shiftright: &Path,
        executors: usize,
        threads: usize,
        memory_limit: u64,
        work_dir: &Path,
    ) -> Result<LocalCluster> {
        let port = free_port()?;
        let address = format!("df://127.0.0.1:{port}");
        let log = work_dir.join("scheduler.log");
        let scheduler = spawn(
            shiftright,
            &["scheduler", "--bind", &format!("127.0.0.1:{port}")],
            &log,
        )?;
        let mut cluster = LocalCluster {
            address,
            scheduler,
            executors: Vec::new(),
        };
        wait_for_port(port, &mut cluster.scheduler, &log)?;
        for i in 0..executors {
            let (flight, grpc) = (free_port()?, free_port()?);
            let dir: PathBuf = work_dir.join(format!("executor-{i}"));
            let log = work_dir.join(format!("executor-{i}.log"));
            let child = spawn(
                shiftright,
                &[
                    "executor",
                    "--scheduler",
                    &cluster.address,
                    "--flight-port",
                    &flight.to_string(),
                    "--grpc-port",
                    &grpc.to_string(),
                    "--threads",
                    &threads.to_string(),
                    "--memory-limit",
                    &memory_limit.to_string(),
                    "--work-dir",
                    &dir.display().to_string(),
                ],
                &log,
            )?;
            cluster.executors.push(child);
            let child = cluster.executors.last_mut().expect("just pushed");
            wait_for_port(flight, child, &log)?;
            wait_for_port(grpc, child, &log)?;
        }
        Ok(cluster)
    }

    /// Whether every process still runs; else which exited, and how.
    pub fn check_running(&mut self) -> std::result::Result<(), String> {
        let processes = std::iter::once(("scheduler".to_string(), &mut self.scheduler)).chain(
            self.executors
                .iter_mut()
                .enumerate()
                .map(|(i, c)| (format!("executor {i}"), c)),
        );
        for (name, child) in processes {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the {name} exited ({status})"));
            }
        }
        Ok(())
    }

    /// Peak RSS and CPU of the scheduler and executors so far.
    pub fn usage(&self) -> ClusterUsage {
        let mut usage = ClusterUsage::default();
        for child in std::iter::once(&self.scheduler).chain(&self.executors) {
            let (rss, cpu) = proc_usage(child.id());
            usage.peak_rss_bytes += rss;
            usage.cpu += cpu;
        }
        usage
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in self
            .executors
            .iter_mut()
            .chain(std::iter::once(&mut self.scheduler))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(shiftright: &Path, args: &[&str], log: &Path) -> Result<Child> {
    let file = std::fs::File::create(log).map_err(|e| Error::io("creating", log, e))?;
    Command::new(shiftright)
        .args(args)
        .env("SHIFTRIGHT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| Error::Child {
            what: format!("shiftright {}", args[0]),
            detail: format!("cannot start it: {e}"),
        })
}

/// Waits until `child` listens on `port`; the end of its log when it exits or never listens.
fn wait_for_port(port: u16, child: &mut Child, log: &Path) -> Result<()> {
    let start = Instant::now();
    let failed = |why: String| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(10).collect();
        Error::Child {
            what: "the benchmark's cluster".into(),
            detail: format!(
                "{why}; the end of {}:\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        }
    };
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(failed(format!(
                "a process exited ({status}) before listening on {port}"
            )));
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(failed(format!(
                "nothing listened on port {port} within 60 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Peak RSS (`VmHWM`) and user + system CPU of a live process, from `/proc`; zeros elsewhere.
fn proc_usage(pid: u32) -> (u64, Duration) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state.
            [11, 12]
                .iter()
                .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (
        rss_kib * 1024,
        Duration::from_secs_f64(ticks as f64 / per_second),
    )
}

/// The first place two JSON values differ, numbers compared within `tolerance` relative; None
/// when they agree.
pub fn json_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    tolerance: f64,
) -> Option<String> {
    difference_at(a, b, "$", tolerance)
}

fn difference_at(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &str,
    tolerance: f64,
) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64()?, y.as_f64()?);
            let scale = x.abs().max(y.abs()).max(f64::MIN_POSITIVE);
            ((x - y).abs() / scale > tolerance).then(|| format!("{path}: {x} against {y}"))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (x, y))| difference_at(x, y, &format!("{path}[{i}]"), tolerance)),
        (Value::Array(x), Value::Array(y)) => {
            Some(format!("{path}: {} items against {}", x.len(), y.len()))
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(x), Some(y)) => difference_at(x, y, &format!("{path}.{k}"), tolerance),
                _ => Some(format!("{path}.{k}: present on one side only")),
            })
        }
        (x, y) => (x != y).then(|| format!("{path}: {x} against {y}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_reports_agree_within_the_tolerance_and_name_the_first_difference() {
        let a = json!([{"verdict": "ROLLBACK", "p": 0.5, "v": [1, 2]}]);
        assert_eq!(json_difference(&a, &a, 1e-9), None);
        let close = json!([{"verdict": "ROLLBACK", "p": 0.5 * (1.0 + 1e-12), "v": [1, 2]}]);
        assert_eq!(json_difference(&a, &close, 1e-9), None);
        let far = json!([{"verdict": "ROLLBACK", "p": 0.51, "v": [1, 2]}]);
        assert_eq!(
            json_difference(&a, &far, 1e-9).as_deref(),
            Some("$[0].p: 0.5 against 0.51")
        );
        let other = json!([{"verdict": "PROMOTE", "p": 0.5, "v": [1]}]);
        assert!(json_difference(&a, &other, 1e-9).is_some());
        let missing = json!([{"verdict": "ROLLBACK", "p": 0.5}]);
        assert_eq!(
            json_difference(&a, &missing, 1e-9).as_deref(),
            Some("$[0].v: present on one side only")
        );
    }

    #[test]
    fn a_live_process_has_usage() {
        let (rss, _) = proc_usage(std::process::id());
        assert!(rss > 0);
    }
}
