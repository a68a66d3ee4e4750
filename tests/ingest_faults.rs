//! Broker faults on the embedded cluster: a broker down for several seconds mid-stream, then
//! injected errors on Fetch and OffsetCommit. The ingest recovers by itself and the output is
//! again exactly the input.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{produce_requests, request_ids, test_config};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use shiftright_ingest::IngestStats;
use shiftright_traffic::EmbeddedBroker;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_recovers_from_a_broker_outage_and_request_errors() {
    tokio::time::timeout(Duration::from_secs(300), run())
        .await
        .expect("took over 5 minutes");
}

async fn wait_for(stats: &IngestStats, written: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while stats.snapshot().written() < written {
        assert!(
            Instant::now() < deadline,
            "only {:?} written, expected {written}",
            stats.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run() {
    let broker = Arc::new(EmbeddedBroker::start(3).unwrap());
    broker.create_topic("requests", 6).unwrap();
    broker.create_topic("business", 1).unwrap();
    broker.create_topic("exposures", 1).unwrap();
    let brokers = broker.bootstrap_servers().to_string();
    let out = tempfile::tempdir().unwrap();
    let stats = Arc::new(IngestStats::default());
    let stop = CancellationToken::new();
    let ingest = tokio::spawn(shiftright_ingest::run(
        test_config(&brokers, out.path(), "faults"),
        stop.clone(),
        stats.clone(),
    ));

    let b = brokers.clone();
    tokio::task::spawn_blocking(move || produce_requests(&b, "a", 20_000, &[]))
        .await
        .unwrap();
    wait_for(&stats, 10_000, Duration::from_secs(60)).await;

    // A broker leading some of the partitions goes away for five seconds.
    broker.broker_down(2).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    broker.broker_up(2).unwrap();
    wait_for(&stats, 20_000, Duration::from_secs(90)).await;

    // Then fetches and offset commits fail for a while.
    use RDKafkaRespErr::*;
    let fetch_errors = [
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    ];
    broker.push_request_errors(RDKafkaApiKey::Fetch, &fetch_errors.repeat(4));
    let commit_errors = [
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
    ];
    broker.push_request_errors(RDKafkaApiKey::OffsetCommit, &commit_errors.repeat(4));
    let b = brokers.clone();
    tokio::task::spawn_blocking(move || produce_requests(&b, "b", 30_000, &[]))
        .await
        .unwrap();
    wait_for(&stats, 50_000, Duration::from_secs(120)).await;

    stop.cancel();
    let summary = ingest.await.unwrap().unwrap();
    assert_eq!(summary.request_rows, 50_000);
    assert_eq!(request_ids(out.path()).await, (50_000, 50_000));
}
