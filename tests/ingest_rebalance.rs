//! Two ingest processes in one consumer group split the partitions; one is stopped and the other
//! takes over; the union of their output is exactly the input. On the embedded broker served to
//! both processes, and on tansu.

mod common;

use std::time::{Duration, Instant};

use common::{produce_requests, request_ids, required, IngestProcess, Tansu};
use shiftright_traffic::EmbeddedBroker;

async fn two_processes_then_one(brokers: &str, events: u64, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = vec![
        "--flush-rows",
        "2000",
        "--flush-interval",
        "300ms",
        "--kafka-option",
        "session.timeout.ms=6000",
    ];
    args.extend_from_slice(extra);
    let a = IngestProcess::spawn(brokers, &data, "pair", &args, dir.path().join("a.log"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut b_args = args.clone();
    b_args.extend_from_slice(&["--idle-exit", "10s"]);
    let mut b = IngestProcess::spawn(brokers, &data, "pair", &b_args, dir.path().join("b.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.consumed() + b.consumed() < events / 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (a_read, b_read) = (a.consumed(), b.consumed());
    eprintln!("before stopping A: A read {a_read}, B read {b_read}");
    let a_log = a.log.clone();
    let status = a.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "A: {status}\n{}",
        std::fs::read_to_string(a_log).unwrap_or_default()
    );
    let status = b.wait(Duration::from_secs(180));
    assert!(status.success(), "B: {status}\n{}", b.log_text());
    assert_eq!(
        request_ids(&data).await,
        (events, events),
        "B's log:\n{}",
        b.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_on_the_embedded_broker_keeps_exactly_once() {
    let broker = EmbeddedBroker::start(1).unwrap();
    broker.create_topic("requests", 6).unwrap();
    broker.create_topic("business", 1).unwrap();
    broker.create_topic("exposures", 1).unwrap();
    let brokers = broker.bootstrap_servers().to_string();
    let b = brokers.clone();
    tokio::task::spawn_blocking(move || produce_requests(&b, "r", 60_000, &[]))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(300),
        two_processes_then_one(&brokers, 60_000, &[]),
    )
    .await
    .expect("took over 5 minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_on_tansu_keeps_exactly_once() {
    let Some(binary) = Tansu::binary() else {
        assert!(
            !required("SHIFTRIGHT_REQUIRE_TANSU"),
            "tansu is required here (.ci/run installs it)"
        );
        eprintln!("skipping: tansu is not installed");
        return;
    };
    let tansu = common::start_tansu(binary, 4);
    let brokers = tansu.bootstrap_servers().to_string();
    // tansu loses messages when a consumer resumes in the middle of a producer batch, and this test
    // resumes consumers on purpose: one message per batch avoids its fault (DEVELOPERS.md).
    let b = brokers.clone();
    tokio::task::spawn_blocking(move || {
        produce_requests(&b, "t", 20_000, &[("batch.num.messages", "1")])
    })
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(300),
        two_processes_then_one(&brokers, 20_000, &[]),
    )
    .await
    .expect("took over 5 minutes");
}
