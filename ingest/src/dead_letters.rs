//! Rejected messages, kept with their provenance so that nothing is silently dropped: they are
//! written in the same flush batch as the good rows of their partition, to
//! `OUT/_dead_letters/date=YYYY-MM-DD/`, and queryable as the `dead_letters` table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::record_batch::RecordBatch;
use shiftright_schemas::Table;

use crate::decode::{day_of, Rejection};
use crate::error::{Error, Result};

/// One rejected Kafka message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The broker's timestamp of the message, if any.
    pub kafka_ts_ms: Option<i64>,
    /// When the ingest read it.
    pub received_at_ms: i64,
    /// Why it was rejected.
    pub rejection: Rejection,
    /// The message key, as sent.
    pub key: Option<Vec<u8>>,
    /// The payload, as sent.
    pub payload: Option<Vec<u8>>,
}

impl DeadLetter {
    /// The `date=` partition: the day the ingest read it (the payload's own time may be unreadable).
    pub fn date(&self) -> String {
        day_of(self.received_at_ms)
    }

    /// About how many bytes it takes in memory.
    pub fn approx_bytes(&self) -> usize {
        128 + self.topic.len()
            + self.rejection.detail.len()
            + self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, Vec::len)
    }
}

/// Builds a batch of the `dead_letters` table.
pub fn dead_letters_to_batch(letters: &[DeadLetter]) -> Result<RecordBatch> {
    let n = letters.len();
    let mut topic = StringBuilder::with_capacity(n, n * 8);
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut kafka_ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut received_at = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut reason = StringBuilder::with_capacity(n, n * 12);
    let mut detail = StringBuilder::with_capacity(n, n * 48);
    let mut key = BinaryBuilder::with_capacity(n, 0);
    let mut payload = BinaryBuilder::with_capacity(n, 0);
    for l in letters {
        topic.append_value(&l.topic);
        partition.append_value(l.partition);
        offset.append_value(l.offset);
        kafka_ts.append_option(l.kafka_ts_ms);
        received_at.append_value(l.received_at_ms);
        reason.append_value(l.rejection.reason.code());
        detail.append_value(&l.rejection.detail);
        key.append_option(l.key.as_deref());
        payload.append_option(l.payload.as_deref());
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(kafka_ts.finish()),
        Arc::new(received_at.finish()),
        Arc::new(reason.finish()),
        Arc::new(detail.finish()),
        Arc::new(key.finish()),
        Arc::new(payload.finish()),
    ];
    RecordBatch::try_new(Table::DeadLetters.schema(), arrays).map_err(|source| Error::Arrow {
        table: Table::DeadLetters.name(),
        source,
    })
}

/// Copies dead letters to a Kafka topic, for teams that alert or replay from Kafka. The copy is
/// sent and acknowledged *before* the batch is written to Parquet, so it is at least once: a crash
/// after sending and before the write re-reads the messages and sends them again (the headers carry
/// the source topic, partition and offset to deduplicate on). A failed send fails the flush; the
/// ingest then stops without committing and nothing is lost.
pub struct DeadLetterForwarder {
    producer: rdkafka::producer::FutureProducer,
    topic: String,
}

impl std::fmt::Debug for DeadLetterForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterForwarder")
            .field("topic", &self.topic)
            .finish()
    }
}

impl DeadLetterForwarder {
    /// A producer for `topic` on `brokers`, with the ingest's `--kafka-option`s (TLS, SASL: the
    /// same as its consumer's, so it reaches the same secure broker).
    pub fn new(brokers: &str, topic: &str, options: &[(String, String)]) -> Result<Self> {
        let producer = Self::client_config(brokers, options)
            .create()
            .map_err(|source| Error::Kafka {
                context: format!("creating the dead-letter producer for {brokers}"),
                source,
            })?;
        Ok(DeadLetterForwarder {
            producer,
            topic: topic.to_string(),
        })
    }

    /// The producer's librdkafka configuration (see `shiftright_schemas::kafka`).
    pub fn client_config(brokers: &str, options: &[(String, String)]) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.extend(shiftright_schemas::kafka::client_properties(
            brokers,
            "shiftright-dead-letters",
            &[("message.timeout.ms", "30000")],
            options,
        ));
        config
    }

    /// Sends `letters` and waits until every one is acknowledged.
    pub async fn forward<'a>(
        &self,
        letters: impl Iterator<Item = &'a DeadLetter>,
    ) -> Result<usize> {
        use rdkafka::message::{Header, OwnedHeaders};
        use rdkafka::producer::FutureRecord;
        let mut pending = Vec::new();
        for l in letters {
            let partition = l.partition.to_string();
            let offset = l.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "shiftright.reason",
                    value: Some(l.rejection.reason.code()),
                })
                .insert(Header {
                    key: "shiftright.detail",
                    value: Some(&l.rejection.detail),
                })
                .insert(Header {
                    key: "shiftright.source_topic",
                    value: Some(&l.topic),
                })
                .insert(Header {
                    key: "shiftright.source_partition",
                    value: Some(&partition),
                })
                .insert(Header {
                    key: "shiftright.source_offset",
                    value: Some(&offset),
                });
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
            if let Some(key) = &l.key {
                record = record.key(key.as_slice());
            }
            if let Some(payload) = &l.payload {
                record = record.payload(payload.as_slice());
            }
            let delivery =
                self.producer
                    .send_result(record)
                    .map_err(|(source, _)| Error::Kafka {
                        context: format!("queueing a dead letter for {}", self.topic),
                        source,
                    })?;
            pending.push(delivery);
        }
        let sent = pending.len();
        for delivery in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((source, _))) => {
                    return Err(Error::Kafka {
                        context: format!("sending a dead letter to {}", self.topic),
                        source,
                    })
                }
                Err(_) => {
                    return Err(Error::Config(format!(
                        "the dead-letter producer for {} shut down",
                        self.topic
                    )))
                }
            }
        }
        Ok(sent)
    }
}
