//! `shiftright demo`: the whole pipeline with no setup. An embedded broker, a generated day of two
//! 95/5 canaries (one regressed: 3× errors, 2× p99; one healthy), the real ingest into Parquet, the
//! real analysis, and the verdicts, with the commands to look further.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use shiftright_analyze::{ExperimentsFile, ReportFormat, Verdict};
use shiftright_ingest::{IngestConfig, IngestStats};
use shiftright_traffic::{produce_paced, EmbeddedBroker, Scenario, TopicNames};
use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;

const PARTITIONS: i32 = 3;

/// How far (in messages) the producer may run ahead of the ingest.
const PACING_WINDOW: u64 = 20_000;

/// The experiments file the demo writes next to its data: the canaries' expected 95/5 split (which
/// turns the SRM check on) and a traffic cap a careful SRE would set on a 5% canary.
const EXPERIMENTS_TOML: &str = r#"# Written by `shiftright demo`. Thresholds not set here take their defaults:
# error_rate_ratio 2.0, p99_ratio 1.5, harm_budget 100, confidence 0.95, min_users 100.
[experiments.checkout-canary]
baseline = "v1"
weights = { v1 = 0.95, v2 = 0.05 }
traffic_cap = 0.06

[experiments.search-canary]
baseline = "v1"
weights = { v1 = 0.95, v2 = 0.05 }
traffic_cap = 0.06
"#;

fn default_out() -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    std::env::temp_dir().join(format!("shiftright-demo-{stamp}-{}", std::process::id()))
}

pub async fn run(args: DemoArgs, shutdown: CancellationToken) -> anyhow::Result<u8> {
    let started = Instant::now();
    let out = args.out.unwrap_or_else(default_out);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let experiments_path = out.join("experiments.toml");
    std::fs::write(&experiments_path, EXPERIMENTS_TOML)
        .with_context(|| format!("writing {}", experiments_path.display()))?;

    eprintln!("1/4 starting an embedded Kafka broker (librdkafka's mock cluster)…");
    let broker = EmbeddedBroker::start(1)?;
    let topics = TopicNames::default();
    for topic in topics.all() {
        broker.create_topic(topic, PARTITIONS)?;
    }
    let brokers = broker.bootstrap_servers().to_string();

    let scenario = Scenario::demo(args.users, args.seed);
    // The ingest runs while the traffic is produced, as it would in production (and because the
    // mock cluster keeps only about 5 MB per partition).
    let mut config = IngestConfig::new(&brokers, &out);
    config.group_id = "shiftright-demo".into();
    config.flush_interval = Duration::from_secs(2);
    let stats = Arc::new(IngestStats::default());
    let stop_ingest = shutdown.child_token();
    let ingest = tokio::spawn(shiftright_ingest::run(
        config,
        stop_ingest.clone(),
        stats.clone(),
    ));

    eprintln!(
        "2/4 producing {} users' traffic to {brokers} and ingesting it into Parquet under {}:\n    checkout-canary (v2 at 5%, 3× errors, 2× p99) and search-canary (v2 at 5%, healthy)…",
        scenario.users,
        out.display()
    );
    let now = chrono::Utc::now().timestamp_millis();
    let producer_brokers = brokers.clone();
    let producer_stats = stats.clone();
    let produced = tokio::task::spawn_blocking(move || {
        let consumed = || producer_stats.snapshot().messages;
        produce_paced(
            &producer_brokers,
            topics,
            &[],
            &scenario,
            now,
            &consumed,
            PACING_WINDOW,
        )
    })
    .await??;

    eprintln!(
        "3/4 produced {} messages; waiting for the ingest to make them durable…",
        produced.messages
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.snapshot().messages < produced.messages {
        if ingest.is_finished() || shutdown.is_cancelled() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_ingest.cancel();
    let summary = ingest.await.context("the ingest task failed")??;
    if shutdown.is_cancelled() {
        bail!("interrupted");
    }
    if summary.written() != produced.messages {
        bail!(
            "the ingest wrote {} of {} messages within the time limit; see {}",
            summary.written(),
            produced.messages,
            out.display()
        );
    }
    eprintln!(
        "    {} request, {} business and {} exposure rows, {} dead letters (the malformed messages), {} files",
        summary.request_rows, summary.business_rows, summary.exposure_rows, summary.dead_letters, summary.files
    );
    drop(broker);

    eprintln!("4/4 analysing…\n");
    let experiments = ExperimentsFile::load(&experiments_path)?;
    let reports = shiftright_analyze::analyze(&out, &experiments, &[]).await?;
    print!(
        "{}",
        shiftright_analyze::render(&reports, ReportFormat::Table)?
    );

    let verdict_of = |name: &str| {
        reports
            .iter()
            .find(|r| r.experiment == name)
            .map(|r| r.verdict)
    };
    let bad = verdict_of("checkout-canary");
    let healthy = verdict_of("search-canary");
    println!(
        "The regressed canary: {}. The healthy canary: {}.",
        fmt(bad),
        fmt(healthy)
    );
    println!(
        "Demo finished in {:.0} s. Its files are in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    println!("Look further:");
    println!(
        "  shiftright analyze --data {} --experiments {} --format markdown",
        out.display(),
        experiments_path.display()
    );
    println!("  shiftright query --data {} \"SELECT variant, COUNT(*) AS requests FROM requests GROUP BY variant\"", out.display());
    println!(
        "  shiftright query --data {} --name dead_letters_by_reason",
        out.display()
    );
    println!(
        "  shiftright report --data {} --experiments {} --out {}   # today's pages: open index.html",
        out.display(),
        experiments_path.display(),
        out.join("pages").display()
    );
    if bad != Some(Verdict::Rollback) || healthy == Some(Verdict::Rollback) {
        bail!("the demo's verdicts are not the expected ones (ROLLBACK for checkout-canary, no rollback for search-canary)");
    }
    Ok(0)
}

fn fmt(v: Option<Verdict>) -> String {
    v.map_or_else(|| "missing".into(), |v| v.to_string())
}
