//! Helpers shared by the integration tests: brokers (embedded and tansu), producing a scenario,
//! running the ingest until every message is written, and reading the output back.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shiftright_ingest::{IngestConfig, IngestStats, IngestSummary};
use shiftright_traffic::{produce_paced, GenerationSummary, Scenario, TopicNames};
use tokio_util::sync::CancellationToken;

/// Whether a test that needs an outside tool must fail (rather than skip) when the tool is missing.
/// `.ci/run` sets it, so CI never skips.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// Runs the ingest while `scenario` is produced to `brokers` (paced to the ingest, since the mock
/// cluster keeps only about 5 MB per partition), until every produced message is durable (rows +
/// dead letters); then stops it. Completeness is judged by what was written, never by watermarks.
pub async fn produce_and_ingest(
    config: IngestConfig,
    scenario: Scenario,
    producer_options: Vec<(String, String)>,
    limit: Duration,
) -> (GenerationSummary, IngestSummary) {
    let brokers = config.brokers.clone();
    let stats = Arc::new(IngestStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(shiftright_ingest::run(config, stop.clone(), stats.clone()));
    let producer_stats = stats.clone();
    let produced = tokio::task::spawn_blocking(move || {
        let now = chrono::Utc::now().timestamp_millis();
        let consumed = || producer_stats.snapshot().messages;
        produce_paced(
            &brokers,
            TopicNames::default(),
            &producer_options,
            &scenario,
            now,
            &consumed,
            20_000,
        )
        .expect("every message produced")
    })
    .await
    .expect("producer task");
    let summary = finish_when(task, stop, &stats, produced.messages, limit).await;
    (produced, summary)
}

/// Runs the ingest until `expected` messages are durable, then stops it.
pub async fn ingest_until(config: IngestConfig, expected: u64, limit: Duration) -> IngestSummary {
    let stats = Arc::new(IngestStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(shiftright_ingest::run(config, stop.clone(), stats.clone()));
    finish_when(task, stop, &stats, expected, limit).await
}

async fn finish_when(
    task: tokio::task::JoinHandle<shiftright_ingest::Result<IngestSummary>>,
    stop: CancellationToken,
    stats: &IngestStats,
    expected: u64,
    limit: Duration,
) -> IngestSummary {
    let deadline = Instant::now() + limit;
    while stats.snapshot().messages < expected && Instant::now() < deadline && !task.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let summary = task.await.expect("ingest task").expect("ingest ran");
    assert_eq!(
        summary.written(),
        expected,
        "ingest wrote {summary:?}, expected {expected} messages"
    );
    summary
}

/// An ingest configuration with quick flushes, for tests.
pub fn test_config(brokers: &str, out: &Path, group: &str) -> IngestConfig {
    let mut config = IngestConfig::new(brokers, out);
    config.group_id = group.into();
    config.flush_interval = Duration::from_millis(500);
    config
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A tansu broker (an independently written Kafka implementation) on loopback, killed on drop.
pub struct Tansu {
    child: Child,
    pub bootstrap: String,
    binary: PathBuf,
}

impl Tansu {
    /// Finds the tansu binary: $TANSU_BIN, then PATH, then ~/.cargo/bin.
    pub fn binary() -> Option<PathBuf> {
        if let Ok(p) = std::env::var("TANSU_BIN") {
            return Some(PathBuf::from(p));
        }
        let on_path = std::env::var_os("PATH")
            .map(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("tansu"))
                    .find(|p| p.is_file())
            })
            .unwrap_or_default();
        on_path.or_else(|| {
            let home = std::env::var_os("HOME")?;
            let p = PathBuf::from(home).join(".cargo/bin/tansu");
            p.is_file().then_some(p)
        })
    }

    /// Starts tansu with in-memory storage and creates the event topics.
    pub fn start(binary: PathBuf, partitions: u32) -> Tansu {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let tansu = Tansu {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            binary,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        for topic in TopicNames::default().all() {
            let status = Command::new(&tansu.binary)
                .args([
                    "topic",
                    "create",
                    topic,
                    "--partitions",
                    &partitions.to_string(),
                    "--broker",
                    &url,
                ])
                .stdout(Stdio::null())
                .status()
                .expect("tansu topic create");
            assert!(status.success(), "tansu topic create {topic} failed");
        }
        tansu
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rows per table in the Parquet output, read with `shiftright query`'s library.
pub async fn count_rows(out: &Path, table: &str) -> u64 {
    let batches = shiftright_analyze::query(out, &format!("SELECT COUNT(*) AS n FROM {table}"))
        .await
        .expect("count");
    let column = batches[0].column(0).clone();
    let values = column
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("count is i64");
    values.value(0) as u64
}
