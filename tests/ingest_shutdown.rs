//! SIGTERM with rows still buffered: the process flushes them into Parquet, commits their offsets
//! and exits 0. And a partition read to its end makes its rows durable without waiting out the
//! flush interval.

mod common;

use std::time::{Duration, Instant};

use common::{produce_requests, request_ids, IngestProcess};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const EVENTS: u64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_buffered_rows_and_commits() {
    tokio::time::timeout(Duration::from_secs(180), run())
        .await
        .expect("took over 3 minutes");
}

async fn run() {
    let (_broker, brokers) = common::embedded_broker(3);
    let b = brokers.clone();
    tokio::task::spawn_blocking(move || produce_requests(&b, "s", EVENTS, &[]))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Thresholds far away: everything stays buffered until the signal.
    let args = [
        "--flush-interval",
        "1h",
        "--flush-caught-up",
        "1h",
        "--flush-rows",
        "10000000",
    ];
    let process = IngestProcess::spawn(
        &brokers,
        &data,
        "term",
        &args,
        dir.path().join("ingest.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while process.consumed() < EVENTS {
        assert!(
            Instant::now() < deadline,
            "the ingest read {} of {EVENTS}",
            process.consumed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        process.metric("shiftright_files_written_total{table=\"requests\"}"),
        Some(0.0),
        "nothing flushed yet"
    );
    let log = process.log.clone();
    let status = process.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(request_ids(&data).await, (EVENTS, EVENTS));

    let committed = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "term")
            .create()
            .unwrap();
        let mut wanted = rdkafka::TopicPartitionList::new();
        for p in 0..3 {
            wanted.add_partition("requests", p);
        }
        let committed = consumer
            .committed_offsets(wanted, Duration::from_secs(10))
            .unwrap();
        let sum: i64 = committed
            .elements()
            .iter()
            .map(|e| e.offset().to_raw().unwrap_or(0))
            .sum();
        // Drop the list before the consumer (a live list hangs the consumer's drop).
        drop(committed);
        drop(consumer);
        sum
    })
    .await
    .unwrap();
    assert_eq!(
        committed, EVENTS as i64,
        "committed offsets cover every message"
    );
}

/// With an hour's flush interval, a partition read to the end of its log is still flushed as soon
/// as its oldest row is `--flush-caught-up` (500 ms) old: the tail of a backlog and a quiet
/// stream's last rows do not wait for the interval, or for more traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_read_to_its_end_is_flushed_without_waiting_out_the_interval() {
    let run = async {
        let (_broker, brokers) = common::embedded_broker(3);
        let b = brokers.clone();
        tokio::task::spawn_blocking(move || produce_requests(&b, "t", EVENTS, &[]))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let process = IngestProcess::spawn(
            &brokers,
            &data,
            "tail",
            &["--flush-interval", "1h", "--flush-rows", "10000000"],
            dir.path().join("ingest.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while request_ids(&data).await.0 < EVENTS && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            request_ids(&data).await,
            (EVENTS, EVENTS),
            "log:\n{}",
            process.log_text()
        );
        let status = process.terminate(Duration::from_secs(30));
        assert!(status.success(), "{status}");
    };
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("took over 3 minutes");
}
