//! `shiftright bench`: arguments → the benchmark library's configuration; Markdown out, with the
//! machine it ran on and the build it ran with, progress on standard error.

use anyhow::Context;
use shiftright_bench::{analysis, freshness, ingest_rate, rollout};

use crate::cli::BenchCommand;

fn progress(line: &str) {
    eprintln!("[{}] {line}", chrono::Utc::now().format("%H:%M:%S"));
}

fn header(what: &str) {
    let build = if cfg!(debug_assertions) {
        "debug build: figures are not comparable; use `cargo run --release -- bench …`"
    } else {
        "release build"
    };
    println!(
        "### {what}\n\nMachine: {}. shiftright {} ({build}), {}.\n",
        shiftright_bench::machine(),
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
}

pub async fn run(command: BenchCommand) -> anyhow::Result<u8> {
    match command {
        BenchCommand::Ingest(args) => {
            let temp;
            let out_dir = match args.out {
                Some(dir) => dir,
                None => {
                    temp = tempfile::Builder::new()
                        .prefix("shiftright-bench-ingest-")
                        .tempdir()
                        .context("creating a temporary output directory")?;
                    temp.path().to_path_buf()
                }
            };
            let config = ingest_rate::IngestBenchConfig {
                events: args.events,
                partitions: args.partitions,
                brokers: args.brokers,
                out_dir,
                seed: args.seed,
                timeout: args.timeout,
                instances: args.instances,
            };
            let result = ingest_rate::run(&config, &mut progress).await?;
            header("Ingest: backlog → durable Parquet, against a bare consumer");
            print!("{}", ingest_rate::to_markdown(&result));
        }
        BenchCommand::Analysis(args) => {
            let config = analysis::AnalysisBenchConfig {
                sizes: args.sizes,
                work_dir: args.work_dir,
                shiftright: std::env::current_exe().context("finding this binary")?,
                duckdb: !args.no_duckdb,
                duckdb_timeout: args.duckdb_timeout,
                generate_only: args.generate_only,
                threads: args
                    .threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                partitions: args.partitions,
                seed: args.seed,
                cluster_executors: args.cluster_executors,
            };
            let rows = tokio::task::spawn_blocking(move || analysis::run(&config, &mut progress))
                .await??;
            if !rows.is_empty() {
                header("Analysis: shiftright analyze against DuckDB over the same Parquet");
                print!("{}", analysis::to_markdown(&rows));
            }
        }
        BenchCommand::Freshness(args) => {
            let temp = tempfile::Builder::new()
                .prefix("shiftright-bench-freshness-")
                .tempdir()
                .context("creating a temporary output directory")?;
            let config = freshness::FreshnessConfig {
                rate: args.rate,
                duration: args.duration,
                partitions: args.partitions,
                brokers: args.brokers,
                out_dir: temp.path().to_path_buf(),
            };
            let result = freshness::run(&config, &mut progress).await?;
            header("Streaming freshness: produce → queryable");
            print!("{}", freshness::to_markdown(&result));
        }
        BenchCommand::Rollout(args) => {
            if args.interval.is_zero() {
                anyhow::bail!("--interval must be more than 0 (serve's default is 30s)");
            }
            let mut results = Vec::new();
            for regression in [args.regression, 1.0] {
                let temp = tempfile::Builder::new()
                    .prefix("shiftright-bench-rollout-")
                    .tempdir()
                    .context("creating a temporary output directory")?;
                let config = rollout::RolloutConfig {
                    rate: args.rate,
                    canary_share: args.canary_share,
                    baseline_errors: args.baseline_errors,
                    regression,
                    warm_up: args.warm_up,
                    limit: args.limit,
                    interval: args.interval,
                    out_dir: temp.path().to_path_buf(),
                };
                results.push(rollout::run(&config, &mut progress).await?);
            }
            header("A rollout end to end: regressed canary → ROLLBACK, healthy canary never");
            print!("{}", rollout::to_markdown(&results[0], &results[1]));
        }
    }
    Ok(0)
}
