//! Compaction against crashes: `shiftright compact` runs over and over (and is itself SIGKILLed
//! at random points) while an ingest of the same output is SIGKILLed and restarted. Then an
//! ingest writes the rest; every event_id is there exactly once, a last compaction merges the
//! small files, and the analysis reports what it reported before that merge.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{produce_requests, request_ids, IngestProcess, Lcg};

const EVENTS: u64 = 60_000;
const USERS: u64 = 5_000;
const KILLS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_during_a_crashing_ingest_loses_and_repeats_nothing() {
    tokio::time::timeout(Duration::from_secs(600), run())
        .await
        .expect("the compaction test took over 10 minutes");
}

fn compact(data: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shiftright"));
    command
        .args(["compact", "--older-than", "0s", "--data"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `shiftright compact` again and again until `stop`, SIGKILLing every other run after a
/// random delay; counts the runs that finished.
fn compact_in_a_loop(data: std::path::PathBuf, stop: Arc<AtomicBool>, finished: Arc<AtomicU64>) {
    let mut rng = Lcg::from_clock();
    while !stop.load(Ordering::Relaxed) {
        // Small targets, so that merges are merged again; replaced files go after 2 s.
        let mut child = compact(&data, &["--target-size", "64KiB", "--keep-replaced", "2s"])
            .spawn()
            .expect("start shiftright compact");
        if rng.below(2) == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(150)));
            let _ = child.kill();
            let _ = child.wait();
        } else {
            let output = child.wait_with_output().expect("compact");
            // Refused while the previous run's lock is still being released is fine; a failure
            // is not.
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success() || stderr.contains("another `shiftright compact`"),
                "compact failed: {stderr}"
            );
            finished.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(rng.below(100)));
    }
}

fn produce_exposures(brokers: &str) {
    let sink = shiftright_traffic::RawSink::new(brokers).expect("producer");
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..USERS {
        let user = format!("user-{i}");
        let payload = format!(
            r#"{{"event_id":"x{i}","ts":{now},"user_id":"{user}","experiment":"crash","variant":"v{}"}}"#,
            i % 2
        );
        sink.send("exposures", Some(&user), payload.as_bytes())
            .expect("queued");
    }
    sink.finish(Duration::from_secs(120))
        .expect("all delivered");
}

fn analysis(data: &Path) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_shiftright"))
        .args(["analyze", "--no-history", "--format", "json", "--data"])
        .arg(data)
        .output()
        .expect("analyze");
    let mut report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "analyze printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    // When it ran is not part of what it found.
    if let Some(object) = report.as_object_mut() {
        object.remove("generated_at");
    }
    report
}

fn parquet_files(dir: &Path) -> usize {
    let mut count = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                count += 1;
            }
        }
    }
    count
}

async fn run() {
    let (_broker, brokers) = common::embedded_broker(8);
    let producer_brokers = brokers.clone();
    tokio::task::spawn_blocking(move || {
        produce_exposures(&producer_brokers);
        produce_requests(&producer_brokers, "c", EVENTS, &[]);
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ingest.log");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicU64::new(0));
    let compactor = {
        let (data, stop, finished) = (data.clone(), stop.clone(), finished.clone());
        std::thread::spawn(move || compact_in_a_loop(data, stop, finished))
    };

    // Small, frequent flush batches, so that there is much to merge and kills land mid-flush.
    let args = [
        "--flush-rows",
        "1500",
        "--flush-interval",
        "200ms",
        "--kafka-option",
        "session.timeout.ms=6000",
    ];
    let mut rng = Lcg::from_clock();
    for kill in 0..KILLS {
        let process = IngestProcess::spawn(&brokers, &data, "compact", &args, log.clone());
        let target = 3_000 + rng.below(15_000);
        let deadline = Instant::now() + Duration::from_secs(30);
        while process.consumed() < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5 + rng.below(20))).await;
        }
        process.kill();
        let (rows, distinct) = request_ids(&data).await;
        eprintln!(
            "kill {}: durable rows {rows}, distinct {distinct}",
            kill + 1
        );
        assert_eq!(
            rows,
            distinct,
            "a duplicate appeared after kill {}",
            kill + 1
        );
    }
    // The last ingest writes the rest without a compaction beside it, so that the last
    // compaction below has small files to merge.
    stop.store(true, Ordering::Relaxed);
    compactor.join().expect("the compaction loop");
    assert!(
        finished.load(Ordering::Relaxed) > 0,
        "no compaction ran to its end"
    );
    let mut last = IngestProcess::spawn(
        &brokers,
        &data,
        "compact",
        &[&args[..4], &["--idle-exit", "20s"]].concat(),
        log.clone(),
    );
    let status = last.wait(Duration::from_secs(240));
    assert!(
        status.success(),
        "the last ingest failed: {status}; log:\n{}",
        last.log_text()
    );
    assert_eq!(request_ids(&data).await, (EVENTS, EVENTS));

    let before = analysis(&data);
    let files_before = parquet_files(&data.join("requests"));
    let output = compact(&data, &["--keep-replaced", "0s"])
        .output()
        .expect("compact");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    let files_after = parquet_files(&data.join("requests"));
    // One merged file per partition is left (all rows lie on one date of one experiment).
    assert!(
        files_after <= 8 && files_after < files_before,
        "{files_before} request files before the last compaction, {files_after} after"
    );
    assert_eq!(request_ids(&data).await, (EVENTS, EVENTS));
    assert_eq!(analysis(&data), before);
}
