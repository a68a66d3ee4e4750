//! A malformed message lands in the dead letters with its topic, partition, offset, reason and raw
//! bytes, while the good messages around it land in Parquet.

mod common;

use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use common::ingest_until;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use shiftright_traffic::EmbeddedBroker;

fn request(id: &str) -> String {
    let ts = chrono::Utc::now().timestamp_millis();
    format!(
        r#"{{"event_id":"{id}","ts":{ts},"user_id":"u-{id}","experiment":"x","variant":"v1","status":200,"latency_ms":3.5}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_become_dead_letters_with_their_offsets() {
    tokio::time::timeout(Duration::from_secs(120), run())
        .await
        .expect("took over 2 minutes");
}

async fn run() {
    let broker = EmbeddedBroker::start(1).unwrap();
    for topic in ["requests", "business", "exposures"] {
        broker.create_topic(topic, 1).unwrap();
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .create()
        .unwrap();
    let payloads: Vec<Vec<u8>> = vec![
        request("a").into_bytes(),
        request("b").into_bytes(),
        b"{\"event_id\": oops".to_vec(), // offset 2: invalid JSON
        request("c").into_bytes(),
        request("d")
            .replace("\"status\":200", "\"status\":\"200\"")
            .into_bytes(), // offset 4: wrong type
        request("e").into_bytes(),
    ];
    for (i, payload) in payloads.iter().enumerate() {
        let key = format!("k{i}");
        let delivered = producer
            .send(
                FutureRecord::to("requests")
                    .key(&key)
                    .payload(payload)
                    .partition(0),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
        assert_eq!((delivered.partition, delivered.offset), (0, i as i64));
    }
    drop(producer);

    let out = tempfile::tempdir().unwrap();
    let summary = ingest_until(
        common::test_config(broker.bootstrap_servers(), out.path(), "dl"),
        6,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!((summary.request_rows, summary.dead_letters), (4, 2));

    let batches = shiftright_analyze::query(
        out.path(),
        "SELECT topic, \"partition\", \"offset\", reason, detail, payload FROM dead_letters ORDER BY \"offset\"",
    )
    .await
    .unwrap();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let rows = |b: &RecordBatch| b.num_rows();
    assert_eq!(rows(&batch), 2);
    let offsets: Vec<i64> = batch
        .column(2)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    assert_eq!(offsets, vec![2, 4]);
    let partitions: Vec<i32> = batch
        .column(1)
        .as_primitive::<Int32Type>()
        .values()
        .to_vec();
    assert_eq!(partitions, vec![0, 0]);
    let reasons: Vec<&str> = batch
        .column(3)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(reasons, vec!["invalid_json", "wrong_type"]);
    let detail = batch.column(4).as_string::<i32>().value(1);
    assert!(
        detail.contains("status"),
        "the detail names the field: {detail}"
    );
    let payload = batch.column(5).as_binary::<i32>().value(0);
    assert_eq!(
        payload,
        payloads[2].as_slice(),
        "raw bytes are kept as sent"
    );

    let ids = shiftright_analyze::query(
        out.path(),
        "SELECT event_id FROM requests ORDER BY event_id",
    )
    .await
    .unwrap();
    let ids: Vec<String> = ids
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids, vec!["a", "b", "c", "e"]);
}
