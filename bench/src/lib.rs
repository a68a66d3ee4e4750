//! shiftright's benchmarks, as a library behind `shiftright bench`: each measures one half of the
//! pipeline against the machine's ceiling or the tool a user would pick instead, in the same run,
//! and prints Markdown for BENCHMARKS.md.
//!
//! - [`ingest_rate`]: a backlog on a broker into durable Parquet, against a bare consumer;
//! - [`analysis`]: `shiftright analyze` against DuckDB over the same generated Parquet, bare
//!   aggregates and the same answers ([`same_answers`] compares them);
//! - [`freshness`]: produce → queryable under a steady load;
//! - [`rollout`]: a canary end to end, events to ROLLBACK at `serve`'s endpoint and topic;
//! - [`cluster`]: a scheduler and executors on this machine, for the analysis' cluster row;
//! - [`parquet_gen`]: the generator that writes the analysis data without Kafka;
//! - [`measure`]: wall time and peak RSS of a child process;
//! - [`simulate`]: decision quality, simulated canaries through the real verdict code (`shiftright
//!   simulate`).
//!
//! The decode micro-benchmark is `benches/decode.rs` (criterion, `cargo bench`).

pub mod analysis;
pub mod cluster;
pub mod error;
pub mod freshness;
pub mod ingest_rate;
pub mod measure;
pub mod parquet_gen;
pub mod rollout;
pub mod same_answers;
pub mod simulate;

pub use error::{Error, Result};

use shiftright_traffic::{Tansu, TopicNames};

/// The broker a benchmark runs on: `brokers` when given (its topics must exist), else a tansu
/// started here with the three event topics of `partitions` partitions each, kept alive by the
/// returned handle.
pub(crate) fn broker(
    brokers: Option<&str>,
    partitions: u32,
    progress: &mut dyn FnMut(&str),
) -> Result<(String, Option<Tansu>)> {
    if let Some(brokers) = brokers {
        return Ok((brokers.to_string(), None));
    }
    let binary = Tansu::binary().ok_or_else(|| {
        Error::Incomplete(
            "tansu is not installed: `cargo install tansu --version 0.6.0 --locked --features dynostore`, or pass --brokers".into(),
        )
    })?;
    progress(&format!(
        "starting tansu ({}) with {partitions} partitions per topic",
        binary.display()
    ));
    let tansu = Tansu::start(binary, &TopicNames::default().all(), partitions)?;
    Ok((tansu.bootstrap_servers().to_string(), Some(tansu)))
}

/// The machine a figure came from, for the Markdown: CPU model, cores, memory, kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / (1024.0 * 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}
