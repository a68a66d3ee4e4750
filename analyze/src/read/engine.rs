//! How a command's DataFusion session runs: on how many threads, within how much memory, and
//! where it spills when that memory is not enough.
//!
//! - `threads` becomes `target_partitions`: file scans and aggregations are split across that
//!   many partitions (0: one per core);
//! - `memory_limit` is a `FairSpillPool`: each spilling operator (sort, hash aggregate,
//!   repartition) gets a fair share and spills to `spill_dir` past it, rather than the process
//!   growing without bound. Joins are planned as sort-merge joins, whose buffered side can spill
//!   (a hash join's build side cannot).
//!
//! The analysis is a plan too (`read`): its per-user aggregate reports its memory to the pool and
//! spills like any other, so the pool bounds the whole command.
//!
//! With `cluster` (`--cluster df://HOST:PORT`) the same session plans locally and runs on a
//! Ballista cluster: `collect` sends the plan to that scheduler, whose executors (`shiftright
//! executor`, so they know the analysis' functions) run it with their own memory and threads.

use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::extension::SessionStateExt;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SessionStateBuilder;

use crate::read::one_step::UserAggregateInOneStep;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, Result};

/// The default memory limit: 2 GiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 2 << 30;

/// Threads, memory and spill directory of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// Partitions to split scans and aggregations into; 0: one per core.
    pub threads: usize,
    /// Bytes DataFusion's operators may hold together before they spill.
    pub memory_limit: u64,
    /// Where spill files go (a temporary directory is made inside it); None: the system's
    /// temporary directory.
    pub spill_dir: Option<PathBuf>,
    /// A Ballista scheduler (`df://HOST:PORT`) to run the plans on; None: in this process.
    pub cluster: Option<String>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            threads: 0,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            spill_dir: None,
            cluster: None,
        }
    }
}

impl Engine {
    /// The partitions a session uses: `threads`, or the cores.
    pub fn partitions(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// A session context run as this engine says, with the information schema on.
    pub fn context(&self) -> Result<SessionContext> {
        let engine_error = |message: String| Error::Engine(message);
        if self.memory_limit == 0 {
            return Err(engine_error("--memory-limit must be positive".into()));
        }
        let mut runtime = RuntimeEnvBuilder::new().with_memory_pool(Arc::new(FairSpillPool::new(
            usize::try_from(self.memory_limit).unwrap_or(usize::MAX),
        )));
        if let Some(dir) = &self.spill_dir {
            // DataFusion makes its own directory inside, but not the parents.
            std::fs::create_dir_all(dir).map_err(|e| {
                engine_error(format!(
                    "cannot create the spill directory {}: {e}",
                    dir.display()
                ))
            })?;
            runtime = runtime.with_temp_file_path(dir);
        }
        let runtime = runtime
            .build_arc()
            .map_err(|e| engine_error(format!("cannot set up the query engine: {e}")))?;
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(self.partitions())
            .with_repartition_file_scans(true)
            .with_repartition_aggregations(true);
        config.options_mut().optimizer.prefer_hash_join = false;
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_physical_optimizer_rule(Arc::new(UserAggregateInOneStep))
            .build();
        let ctx = match &self.cluster {
            None => SessionContext::new_with_state(state),
            Some(url) => {
                let scheduler = scheduler_url(url).map_err(engine_error)?;
                let state = state
                    .upgrade_for_ballista(scheduler)
                    .map_err(|e| engine_error(format!("cannot plan for the cluster {url}: {e}")))?;
                SessionContext::new_with_state(state)
            }
        };
        crate::read::register_functions(&ctx);
        Ok(ctx)
    }
}

/// The gRPC address of the scheduler named by `df://HOST[:PORT]` (port 50050 by default).
pub fn scheduler_url(cluster: &str) -> std::result::Result<String, String> {
    let (host, port) = scheduler_address(cluster)?;
    Ok(format!("http://{host}:{port}"))
}

/// The host and port of `df://HOST[:PORT]`, or what is wrong with it.
pub fn scheduler_address(cluster: &str) -> std::result::Result<(String, u16), String> {
    let usage = "write the scheduler as df://HOST:PORT, e.g. df://127.0.0.1:50050 (the address \
                 `shiftright scheduler --bind` listens on)";
    let rest = cluster
        .strip_prefix("df://")
        .ok_or_else(|| format!("{cluster:?} is not a cluster address; {usage}"))?
        .trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => (
            host,
            port.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{cluster:?} has no valid port; {usage}"))?,
        ),
        _ => (rest, DEFAULT_SCHEDULER_PORT),
    };
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!("{cluster:?} names no host; {usage}"));
    }
    Ok((host.to_string(), port))
}

/// The port a scheduler listens on unless told otherwise (Ballista's).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// Parses a byte size: a number with an optional unit, `B`, `KiB`, `MiB`, `GiB`, `TiB` (powers of
/// 1024) or `KB`, `MB`, `GB`, `TB` (powers of 1000), case-insensitive; `2GiB`, `256MiB`, `1.5GB`.
pub fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. 2GiB, 256MiB or 1000000"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "t" => 1024.0f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
            ))
        }
    };
    let bytes = number * scale;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("{text:?} is not a positive size"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::{collect, ExecutionPlan};

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("256 MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("2 parsecs").is_err());
        assert!(parse_bytes("0").is_err());
    }

    #[test]
    fn cluster_addresses_are_df_urls() {
        assert_eq!(
            scheduler_url("df://10.0.0.5:50050").as_deref(),
            Ok("http://10.0.0.5:50050")
        );
        assert_eq!(
            scheduler_url("df://scheduler").as_deref(),
            Ok("http://scheduler:50050")
        );
        for bad in [
            "http://x:1",
            "df://",
            "df://x:port",
            "df://x:99999",
            "10.0.0.5:50050",
        ] {
            let error = scheduler_url(bad).unwrap_err();
            assert!(error.contains("df://HOST:PORT"), "{bad}: {error}");
        }
    }

    fn spills(plan: &Arc<dyn ExecutionPlan>) -> usize {
        plan.metrics().and_then(|m| m.spill_count()).unwrap_or(0)
            + plan.children().into_iter().map(spills).sum::<usize>()
    }

    /// A grouped aggregate far larger than the limit completes by spilling, with the right
    /// answer; the same query is refused when it may not spill.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_larger_than_the_memory_limit_spills_and_completes() {
        let spill = tempfile::tempdir().unwrap();
        let sql = "SELECT COUNT(*) AS groups, SUM(n) AS rows FROM \
                   (SELECT value % 400000 AS k, COUNT(*) AS n FROM generate_series(1, 2000000) GROUP BY value % 400000)";
        let engine = Engine {
            threads: 2,
            memory_limit: 24 << 20,
            spill_dir: Some(spill.path().join("spill")),
            cluster: None,
        };
        let ctx = engine.context().unwrap();
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let batches = collect(plan.clone(), ctx.task_ctx()).await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(
            text.contains("400000") && text.contains("2000000"),
            "{text}"
        );
        assert!(
            spills(&plan) > 0,
            "the aggregate should have spilled under 24 MiB"
        );
    }
}
