//! Helpers shared by the integration tests: brokers (embedded and tansu), producing a scenario,
//! running the ingest until every message is written, and reading the output back.

#![allow(dead_code)]

pub mod serve;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shiftright_ingest::{IngestConfig, IngestStats, IngestSummary};
pub use shiftright_traffic::Tansu;
use shiftright_traffic::{produce_paced, GenerationSummary, Scenario, TopicNames};
use tokio_util::sync::CancellationToken;

/// Runs the `shiftright` binary to its end, without the caller's log filter.
pub fn shiftright(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shiftright"))
        .args(args)
        .env_remove("SHIFTRIGHT_LOG")
        .output()
        .expect("run shiftright")
}

/// A command's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

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
    shiftright_traffic::tansu::free_port().expect("free port")
}

/// The embedded broker with the event topics: `requests_partitions` for requests, one each for
/// business and exposures; and its bootstrap servers.
pub fn embedded_broker(requests_partitions: i32) -> (shiftright_traffic::EmbeddedBroker, String) {
    let broker = shiftright_traffic::EmbeddedBroker::start(1).expect("mock cluster");
    broker
        .create_topic("requests", requests_partitions)
        .expect("requests topic");
    broker.create_topic("business", 1).expect("business topic");
    broker
        .create_topic("exposures", 1)
        .expect("exposures topic");
    let brokers = broker.bootstrap_servers().to_string();
    (broker, brokers)
}

/// tansu, with the event topics created; see `shiftright_traffic::Tansu`.
pub fn start_tansu(binary: PathBuf, partitions: u32) -> Tansu {
    Tansu::start(binary, &TopicNames::default().all(), partitions).expect("start tansu")
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

/// The Parquet output, read back through SQL, holds every produced message exactly once.
pub async fn assert_output_matches(out: &Path, produced: &GenerationSummary) {
    let expected = [
        ("requests", produced.requests),
        ("exposures", produced.exposures),
        ("business", produced.business),
        ("dead_letters", produced.malformed),
    ];
    for (table, rows) in expected {
        assert_eq!(count_rows(out, table).await, rows, "{table} rows");
    }
}

/// Every variant's counts in `report` equal the generator's ground truth.
pub fn assert_report_matches_truth(
    report: &shiftright_analyze::Report,
    produced: &GenerationSummary,
) {
    for v in &report.variants {
        let truth = &produced.truth[&(report.experiment.clone(), v.name.clone())];
        let at = format!("{} {}", report.experiment, v.name);
        assert_eq!(v.users, truth.users, "{at}: users");
        assert_eq!(v.requests, truth.requests, "{at}: requests");
        assert_eq!(v.errors, truth.errors, "{at}: errors");
        assert_eq!(v.conversions, truth.converted_users, "{at}: conversions");
        let tolerance = 1e-6 * truth.revenue.max(1.0);
        assert!(
            (v.revenue - truth.revenue).abs() < tolerance,
            "{at}: revenue {} vs {}",
            v.revenue,
            truth.revenue
        );
        let synthetic = report
            .data_quality
            .synthetic_users
            .get(&v.name)
            .copied()
            .unwrap_or(0);
        assert_eq!(synthetic, truth.synthetic_users, "{at}: synthetic users");
        let checks = report.synthetic_checks.iter().find(|c| c.variant == v.name);
        assert_eq!(
            checks.map_or((0, 0, 0), |c| (c.users, c.checks, c.failures)),
            (
                truth.synthetic_users,
                truth.synthetic_checks,
                truth.synthetic_failures
            ),
            "{at}: synthetic checks"
        );
        let shadow = report
            .shadow_traffic
            .iter()
            .find(|s| s.variant == v.name && s.mode == "shadow");
        assert_eq!(
            shadow.map_or((0, 0), |s| (s.requests, s.mismatches)),
            (truth.shadow_calls, truth.shadow_mismatches),
            "{at}: shadow calls"
        );
    }
}

/// A `shiftright ingest` process, with its metrics endpoint on a port of its own and its log in a
/// file (printed when a test fails).
pub struct IngestProcess {
    child: Child,
    metrics_port: u16,
    pub log: PathBuf,
}

impl IngestProcess {
    /// Starts `shiftright ingest` against `brokers`, writing to `out`, with extra `args`.
    pub fn spawn(
        brokers: &str,
        out: &Path,
        group: &str,
        args: &[&str],
        log: PathBuf,
    ) -> IngestProcess {
        let metrics_port = free_port();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_shiftright"))
            .args([
                "--log",
                "info",
                "ingest",
                "--brokers",
                brokers,
                "--group-id",
                group,
            ])
            .arg("--out")
            .arg(out)
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start shiftright ingest");
        IngestProcess {
            child,
            metrics_port,
            log,
        }
    }

    /// A metric's value from the process's Prometheus endpoint (None while it is not up).
    pub fn metric(&self, sample: &str) -> Option<f64> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    /// Messages the process has read so far.
    pub fn consumed(&self) -> u64 {
        self.metric("shiftright_messages_consumed_total")
            .unwrap_or(0.0) as u64
    }

    /// The port of the process's metrics endpoint.
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no flush, no commit, no goodbye.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit (at most `limit`).
    pub fn terminate(mut self, limit: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait(limit)
    }

    /// Waits for the process to exit by itself (at most `limit`, then kills it and fails).
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "shiftright ingest did not exit within {limit:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for IngestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Produces `count` request events with ids `{prefix}{i}` (keys spread over 5,000 users) and
/// returns when all are delivered. `options` are producer properties (e.g. batch.num.messages=1).
pub fn produce_requests(brokers: &str, prefix: &str, count: u64, options: &[(&str, &str)]) {
    let options: Vec<(String, String)> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sink = shiftright_traffic::RawSink::with_options(brokers, &options).expect("producer");
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..count {
        let user = format!("user-{}", i % 5000);
        let payload = format!(
            r#"{{"event_id":"{prefix}{i}","ts":{now},"user_id":"{user}","experiment":"crash","variant":"v{}","status":200,"latency_ms":{}.5}}"#,
            i % 2,
            i % 300
        );
        sink.send("requests", Some(&user), payload.as_bytes())
            .expect("queued");
    }
    sink.finish(Duration::from_secs(120))
        .expect("all delivered");
}

/// (rows, distinct event ids) of the requests table; (0, 0) before the first file is written (a
/// process killed before its first flush leaves no table at all).
pub async fn request_ids(out: &Path) -> (u64, u64) {
    let batches = match shiftright_analyze::query(
        out,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS d FROM requests",
    )
    .await
    {
        Err(shiftright_analyze::Error::NoData { .. }) => return (0, 0),
        other => other.expect("count"),
    };
    let col = |i: usize| {
        batches[0]
            .column(i)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("i64")
            .value(0) as u64
    };
    (col(0), col(1))
}

/// A tiny deterministic generator for kill times, seeded from the clock and printed.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn from_clock() -> Lcg {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        eprintln!("random seed {seed}");
        Lcg(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}
