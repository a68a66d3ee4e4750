//! Exactly once under crashes: a separate `shiftright ingest` process is killed with SIGKILL at
//! random moments, ten times, while it consumes 200,000 events over 16 partitions, and restarted
//! each time. Afterwards every event_id is in the Parquet output exactly once.

mod common;

use std::time::{Duration, Instant};

use common::{produce_requests, request_ids, IngestProcess, Lcg};

const EVENTS: u64 = 200_000;
const KILLS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ten_times_loses_nothing_and_duplicates_nothing() {
    tokio::time::timeout(Duration::from_secs(600), run())
        .await
        .expect("the crash test took over 10 minutes");
}

async fn run() {
    // 16 partitions keep each under the mock cluster's ~5 MB retention for 200,000 events.
    let (_broker, brokers) = common::embedded_broker(16);
    let producer_brokers = brokers.clone();
    tokio::task::spawn_blocking(move || produce_requests(&producer_brokers, "c", EVENTS, &[]))
        .await
        .unwrap();

    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("ingest.log");
    let data = out.path().join("data");
    // Small, frequent flush batches, so that kills land before, during and after renames.
    let args = [
        "--flush-rows",
        "3000",
        "--flush-interval",
        "200ms",
        "--kafka-option",
        "session.timeout.ms=6000",
    ];
    let mut rng = Lcg::from_clock();
    for kill in 0..KILLS {
        let process = IngestProcess::spawn(&brokers, &data, "crash", &args, log.clone());
        let target = 2_000 + rng.below(25_000);
        let deadline = Instant::now() + Duration::from_secs(30);
        while process.consumed() < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5 + rng.below(20))).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
        let consumed = process.consumed();
        process.kill();
        let (rows, distinct) = request_ids(&data).await;
        eprintln!(
            "kill {}: the process had read {consumed}; durable rows {rows}, distinct {distinct}",
            kill + 1
        );
        assert_eq!(
            rows,
            distinct,
            "a duplicate appeared after kill {}",
            kill + 1
        );
    }
    // The group waits out the killed member's session (6 s) before it assigns partitions again, so
    // the last process may start reading ~10 s after it starts; idleness counts from its assignment.
    let mut last = IngestProcess::spawn(
        &brokers,
        &data,
        "crash",
        &["--idle-exit", "30s"],
        log.clone(),
    );
    let status = last.wait(Duration::from_secs(240));
    assert!(
        status.success(),
        "the last ingest failed: {status}; log:\n{}",
        last.log_text()
    );
    let (rows, distinct) = request_ids(&data).await;
    assert_eq!(
        (rows, distinct),
        (EVENTS, EVENTS),
        "log:\n{}",
        last.log_text()
    );
    // No temporary file survives a restart.
    let leftovers = walk(&data)
        .into_iter()
        .filter(|p| p.ends_with(".tmp"))
        .count();
    assert_eq!(leftovers, 0);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}
