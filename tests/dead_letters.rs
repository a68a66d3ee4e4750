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
    request_at(id, &chrono::Utc::now().timestamp_millis().to_string())
}

/// A good request event whose `ts` is the JSON text `ts`.
fn request_at(id: &str, ts: &str) -> String {
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
    for topic in ["requests", "business", "exposures", "rejects"] {
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
    let mut config = common::test_config(broker.bootstrap_servers(), out.path(), "dl");
    config.dead_letter_topic = Some("rejects".into());
    let summary = ingest_until(config, 6, Duration::from_secs(60)).await;
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

    // The copies sent to the dead-letter topic carry the payload and the provenance.
    let brokers = broker.bootstrap_servers().to_string();
    let copies = tokio::task::spawn_blocking(move || read_topic(&brokers, "rejects", 2))
        .await
        .unwrap();
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0].0, payloads[2]);
    assert_eq!(
        copies[0].1.get("shiftright.reason").map(String::as_str),
        Some("invalid_json")
    );
    assert_eq!(
        copies[1]
            .1
            .get("shiftright.source_offset")
            .map(String::as_str),
        Some("4")
    );
}

/// Reads `n` messages (payload, headers) from partition 0 of `topic`.
fn read_topic(
    brokers: &str,
    topic: &str,
    n: usize,
) -> Vec<(Vec<u8>, std::collections::BTreeMap<String, String>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    drop(tpl);
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((m.payload().unwrap_or_default().to_vec(), headers));
        }
    }
    out
}

/// Every class of bad input, mixed with good events: good ones land, bad ones are dead letters with
/// the right reason, and the counts add up to what was produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_class_of_bad_input_has_its_reason() {
    tokio::time::timeout(Duration::from_secs(120), every_class())
        .await
        .expect("took over 2 minutes");
}

async fn every_class() {
    use std::collections::BTreeMap;

    let broker = EmbeddedBroker::start(1).unwrap();
    for topic in ["requests", "business", "exposures"] {
        broker.create_topic(topic, 2).unwrap();
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .create()
        .unwrap();
    let good = request("good");
    let big = request("big").replace("\"x\"", &format!("\"{}\"", "x".repeat(8_000)));
    let cases: Vec<(Option<Vec<u8>>, &str)> = vec![
        (None, "empty"),
        (Some(Vec::new()), "empty"),
        (Some(big.into_bytes()), "too_large"),
        (Some(vec![0xc3, 0x28, b'{', b'}']), "invalid_utf8"),
        (Some(b"{\"event_id\":".to_vec()), "invalid_json"),
        (
            Some(good.replace("3.5", "1e999").into_bytes()),
            "invalid_json",
        ),
        (Some(b"\"just a string\"".to_vec()), "not_an_object"),
        (
            Some(good.replace("\"user_id\":\"u-good\",", "").into_bytes()),
            "missing_field",
        ),
        (
            Some(
                good.replace("\"status\":200", "\"status\":\"200\"")
                    .into_bytes(),
            ),
            "wrong_type",
        ),
        (
            Some(good.replace("3.5", "-3.5").into_bytes()),
            "invalid_value",
        ),
        (
            Some(
                good.replace("\"status\":200", "\"status\":700")
                    .into_bytes(),
            ),
            "invalid_value",
        ),
        (
            Some(
                good.replace("\"status\":200", "\"status\":200,\"mode\":\"replay\"")
                    .into_bytes(),
            ),
            "invalid_value",
        ),
        (
            Some(request_at("t1", "\"yesterday\"").into_bytes()),
            "invalid_timestamp",
        ),
        (
            Some(request_at("t2", "1.5").into_bytes()),
            "invalid_timestamp",
        ),
        (
            Some(request_at("t3", "1000").into_bytes()),
            "timestamp_out_of_range",
        ),
        (
            Some(request_at("t4", "\"2999-01-01T00:00:00Z\"").into_bytes()),
            "timestamp_out_of_range",
        ),
    ];
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    let mut good_count = 0;
    for (i, (payload, reason)) in cases.iter().enumerate() {
        for (j, p) in [
            Some(request(&format!("g{i}")).into_bytes()),
            payload.clone(),
        ]
        .iter()
        .enumerate()
        {
            let key = format!("k{i}-{j}");
            let mut record = FutureRecord::<String, Vec<u8>>::to("requests").key(&key);
            if let Some(p) = p {
                record = record.payload(p);
            }
            producer
                .send(record, Duration::from_secs(10))
                .await
                .expect("delivered");
        }
        good_count += 1;
        *expected.entry(*reason).or_default() += 1;
    }
    drop(producer);

    let out = tempfile::tempdir().unwrap();
    let mut config = common::test_config(broker.bootstrap_servers(), out.path(), "classes");
    config.max_message_bytes = 4_096;
    let total = 2 * cases.len() as u64;
    let summary = ingest_until(config, total, Duration::from_secs(60)).await;
    assert_eq!(summary.request_rows, good_count);
    assert_eq!(summary.dead_letters, cases.len() as u64);

    let batches = shiftright_analyze::query(
        out.path(),
        "SELECT reason, COUNT(*) AS n FROM dead_letters GROUP BY reason",
    )
    .await
    .unwrap();
    let mut found: BTreeMap<String, u64> = BTreeMap::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            found.insert(
                b.column(0).as_string::<i32>().value(i).to_string(),
                b.column(1).as_primitive::<Int64Type>().value(i) as u64,
            );
        }
    }
    let expected: BTreeMap<String, u64> = expected
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(found, expected);
}
