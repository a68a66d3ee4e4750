//! Where generated messages go: a Kafka producer, or JSON-lines files (one per topic) for producers
//! of one's own and for inspection.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use shiftright_schemas::Table;

use crate::error::{Error, Result};
use crate::generate::Message;

/// Topic names of the three event tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    /// Topic of request events. Default `requests`.
    pub requests: String,
    /// Topic of business events. Default `business`.
    pub business: String,
    /// Topic of exposure events. Default `exposures`.
    pub exposures: String,
}

impl Default for TopicNames {
    fn default() -> Self {
        TopicNames {
            requests: "requests".into(),
            business: "business".into(),
            exposures: "exposures".into(),
        }
    }
}

impl TopicNames {
    /// The topic of a table's events.
    pub fn of(&self, table: Table) -> &str {
        match table {
            Table::Requests => &self.requests,
            Table::Business => &self.business,
            Table::Exposures | Table::DeadLetters => &self.exposures,
        }
    }

    /// All three.
    pub fn all(&self) -> [&str; 3] {
        [&self.requests, &self.business, &self.exposures]
    }
}

/// Counts deliveries, so that a failed send is never silent.
#[derive(Debug, Default)]
pub struct DeliveryCounter {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// Produces raw messages to any topic, counting deliveries so that no failure is silent.
pub struct RawSink {
    producer: ThreadedProducer<DeliveryCounter>,
}

impl std::fmt::Debug for RawSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSink").finish_non_exhaustive()
    }
}

impl RawSink {
    /// A producer for `brokers`; `options` are extra librdkafka properties applied last.
    pub fn with_options(brokers: &str, options: &[(String, String)]) -> Result<Self> {
        let config = Self::client_config(brokers, options);
        let producer = config
            .create_with_context(DeliveryCounter::default())
            .map_err(|e| Error::Produce(format!("creating a producer for {brokers}: {e}")))?;
        Ok(RawSink { producer })
    }

    /// The producer's librdkafka configuration: its own settings, then `options` (see
    /// `shiftright_schemas::kafka`).
    pub fn client_config(brokers: &str, options: &[(String, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.extend(shiftright_schemas::kafka::client_properties(
            brokers,
            "shiftright-produce",
            &[
                ("linger.ms", "5"),
                ("queue.buffering.max.messages", "200000"),
                ("message.timeout.ms", "60000"),
            ],
            options,
        ));
        config
    }

    /// A producer with default settings.
    pub fn new(brokers: &str) -> Result<Self> {
        Self::with_options(brokers, &[])
    }

    /// Queues one message, waiting while librdkafka's queue is full.
    pub fn send(&self, topic: &str, key: Option<&str>, payload: &[u8]) -> Result<()> {
        loop {
            let mut record = BaseRecord::<str, [u8]>::to(topic).payload(payload);
            if let Some(key) = key {
                record = record.key(key);
            }
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(Error::Produce(format!("sending to {topic}: {e}"))),
            }
        }
    }

    /// Waits until every queued message is delivered; fails if any was not.
    pub fn finish(self, timeout: Duration) -> Result<u64> {
        self.producer
            .flush(timeout)
            .map_err(|e| Error::Produce(format!("flushing: {e}")))?;
        let context = self.producer.context();
        let failed = context.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = context
                .first_error
                .lock()
                .ok()
                .and_then(|f| f.clone())
                .unwrap_or_default();
            return Err(Error::Produce(format!(
                "{failed} messages were not delivered; the first error: {first}"
            )));
        }
        Ok(context.delivered.load(Ordering::Relaxed))
    }
}

/// Produces generated messages to Kafka, keyed by user.
pub struct KafkaSink {
    raw: RawSink,
    topics: TopicNames,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topics", &self.topics)
            .finish()
    }
}

impl KafkaSink {
    /// A producer for `brokers`; `options` are extra librdkafka properties applied last.
    pub fn new(brokers: &str, topics: TopicNames, options: &[(String, String)]) -> Result<Self> {
        Ok(KafkaSink {
            raw: RawSink::with_options(brokers, options)?,
            topics,
        })
    }

    /// Queues one message, waiting while librdkafka's queue is full.
    pub fn send(&self, message: &Message) -> Result<()> {
        self.raw.send(
            self.topics.of(message.table),
            Some(&message.key),
            &message.payload,
        )
    }

    /// Waits until every queued message is delivered; fails if any was not.
    pub fn finish(self, timeout: Duration) -> Result<u64> {
        self.raw.finish(timeout)
    }
}

/// Writes messages as JSON lines, one file per topic: `DIR/<topic>.jsonl`. Malformed payloads are
/// written as they are, one per line (a payload with a newline would span lines: they are counted,
/// not re-read).
#[derive(Debug)]
pub struct JsonLinesSink {
    dir: PathBuf,
    files: Vec<(Table, BufWriter<File>)>,
    topics: TopicNames,
}

impl JsonLinesSink {
    /// Creates `dir` and one file per topic in it.
    pub fn new(dir: &Path, topics: TopicNames) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        for table in Table::EVENTS {
            let path = dir.join(format!("{}.jsonl", topics.of(table)));
            let file = File::create(&path).map_err(|source| Error::Io { path, source })?;
            files.push((table, BufWriter::new(file)));
        }
        Ok(JsonLinesSink {
            dir: dir.to_path_buf(),
            files,
            topics,
        })
    }

    /// Appends one message to its topic's file.
    pub fn send(&mut self, message: &Message) -> Result<()> {
        let path = self
            .dir
            .join(format!("{}.jsonl", self.topics.of(message.table)));
        let (_, file) = self
            .files
            .iter_mut()
            .find(|(t, _)| *t == message.table)
            .ok_or_else(|| Error::Produce(format!("no file for table {}", message.table)))?;
        file.write_all(&message.payload)
            .and_then(|()| file.write_all(b"\n"))
            .map_err(|source| Error::Io { path, source })
    }

    /// Flushes every file.
    pub fn finish(mut self) -> Result<()> {
        for (table, file) in &mut self.files {
            let path = self.dir.join(format!("{}.jsonl", self.topics.of(*table)));
            file.flush().map_err(|source| Error::Io { path, source })?;
        }
        Ok(())
    }
}

/// Produces `scenario` to Kafka, never more than `window` messages ahead of `consumed()` (the
/// consumer's count). librdkafka's mock cluster keeps only about 5 MB per partition and deletes
/// older messages, so the demo and the tests must not let the producer run far ahead of the ingest;
/// a real broker does not need this, and `window = u64::MAX` turns it off.
pub fn produce_paced(
    brokers: &str,
    topics: TopicNames,
    options: &[(String, String)],
    scenario: &crate::Scenario,
    now_ms: i64,
    consumed: &dyn Fn() -> u64,
    window: u64,
) -> Result<crate::GenerationSummary> {
    let sink = KafkaSink::new(brokers, topics, options)?;
    let mut sent: u64 = 0;
    let summary = crate::generate(scenario, now_ms, &mut |m| {
        sink.send(&m)?;
        sent += 1;
        if window != u64::MAX && sent % 1000 == 0 {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while consumed().saturating_add(window) < sent {
                if std::time::Instant::now() > deadline {
                    return Err(Error::Produce(format!(
                        "the consumer read {} of {sent} messages and made no progress for 60 s",
                        consumed()
                    )));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    })?;
    sink.finish(Duration::from_secs(120))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `produce` and `generate` build their producer here, with the user's options last.
    #[test]
    fn the_event_producer_takes_the_secure_options() {
        let options = vec![
            (
                "security.protocol".to_string(),
                "sasl_plaintext".to_string(),
            ),
            ("sasl.mechanism".to_string(), "SCRAM-SHA-512".to_string()),
            ("linger.ms".to_string(), "50".to_string()),
        ];
        let client = RawSink::client_config("broker:9093", &options);
        assert_eq!(client.get("bootstrap.servers"), Some("broker:9093"));
        assert_eq!(client.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(client.get("linger.ms"), Some("50"));
        assert_eq!(client.get("message.timeout.ms"), Some("60000"));
    }
}
