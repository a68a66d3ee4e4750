//! The Kafka consumer and its context. The rebalance callback does two things only: on assignment
//! it sets each partition's start offset from the durable files (see `offsets`), and on revocation
//! it records which partitions were taken away. The pipeline drains those records after every poll,
//! before it flushes anything, so it never writes rows of a partition it no longer owns.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use shiftright_schemas::kafka;

use crate::buffer::TopicPartition;
use crate::config::IngestConfig;
use crate::error::{Error, Result};
use crate::offsets::{recover_partition, Resume};
use crate::partition_lock::{self, PartitionLocks};
use crate::stats::IngestStats;

/// The consumer type the pipeline runs.
pub type IngestConsumer = StreamConsumer<IngestContext>;

/// What happened in a rebalance, for the pipeline to act on.
#[derive(Debug)]
pub enum RebalanceEvent {
    /// Partitions assigned, with where each resumes (None: the group's committed offset, or the
    /// earliest when there is none). A partition with a recorded last message is sought one
    /// before its resume offset, so that the pipeline reads that message again and checks that
    /// the log still holds it.
    Assigned(Vec<(TopicPartition, Option<Resume>)>),
    /// Partitions taken away: their buffered rows must be dropped, not written.
    Revoked(Vec<TopicPartition>),
    /// A partition's durable progress could not be read; the pipeline stops rather than guess.
    Failed(Error),
}

/// Consumer context: shares rebalance events with the pipeline.
#[derive(Debug)]
pub struct IngestContext {
    out_dir: PathBuf,
    events: Mutex<Vec<RebalanceEvent>>,
    stats: Arc<IngestStats>,
    /// Held from before a partition's recovery until its revocation (`partition_lock`).
    locks: Mutex<PartitionLocks>,
}

impl IngestContext {
    /// Takes the rebalance events recorded since the last call.
    pub fn drain(&self) -> Vec<RebalanceEvent> {
        match self.events.lock() {
            Ok(mut events) => std::mem::take(&mut *events),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    /// Whether this process holds `tp`'s write lock.
    pub fn holds(&self, tp: &TopicPartition) -> bool {
        self.locks().holds(tp)
    }

    fn locks(&self) -> std::sync::MutexGuard<'_, PartitionLocks> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, partitions: &[TopicPartition]) {
        let mut locks = self.locks();
        for tp in partitions {
            locks.release(tp);
        }
    }

    fn record(&self, event: RebalanceEvent) {
        match self.events.lock() {
            Ok(mut events) => events.push(event),
            Err(poisoned) => poisoned.into_inner().push(event),
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition {
            topic: e.topic().to_string(),
            partition: e.partition(),
        })
        .collect()
}

impl ClientContext for IngestContext {
    /// librdkafka's periodic statistics carry each partition's consumer lag.
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in statistics.topics {
            for (partition, p) in topic.partitions {
                // Partition -1 is librdkafka's internal "unassigned" entry; lag is -1 until known.
                if partition >= 0 && p.desired && p.consumer_lag >= 0 {
                    self.stats.set_lag(
                        TopicPartition {
                            topic: name.clone(),
                            partition,
                        },
                        p.consumer_lag,
                    );
                }
            }
        }
    }
}

impl ConsumerContext for IngestContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut assigned = Vec::new();
                // One wait for all: a frozen previous owner holds all of its partitions.
                let deadline = std::time::Instant::now() + partition_lock::WAIT;
                for tp in partitions(tpl) {
                    // Before recovery: a previous owner still writing must finish first.
                    let wait = deadline.saturating_duration_since(std::time::Instant::now());
                    if let Err(e) = self.locks().acquire(&tp, wait) {
                        // The pipeline stops on it before it writes anything.
                        self.record(RebalanceEvent::Failed(e));
                        break;
                    }
                    match recover_partition(&self.out_dir, &tp.topic, tp.partition) {
                        Ok(recovery) => {
                            self.stats.quarantined(recovery.quarantined.len() as u64);
                            let resume = recovery.resume;
                            if let Some(resume) = &resume {
                                let seek = if resume.last_message.is_some() {
                                    resume.next_offset - 1
                                } else {
                                    resume.next_offset
                                };
                                if let Err(e) = tpl.set_partition_offset(
                                    &tp.topic,
                                    tp.partition,
                                    Offset::Offset(seek),
                                ) {
                                    tracing::error!(partition = %tp, error = %e, "cannot set the resume offset");
                                }
                            }
                            tracing::info!(
                                partition = %tp, resume_at = ?resume.as_ref().map(|r| r.next_offset),
                                epoch = resume.as_ref().map_or(0, |r| r.epoch), "partition assigned"
                            );
                            assigned.push((tp, resume));
                        }
                        Err(e) => self.record(RebalanceEvent::Failed(e)),
                    }
                }
                self.record(RebalanceEvent::Assigned(assigned));
                if let Err(e) = consumer.assign(tpl) {
                    self.record(RebalanceEvent::Failed(Error::Kafka {
                        context: "assigning partitions".into(),
                        source: e,
                    }));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked = partitions(tpl);
                tracing::info!(partitions = ?revoked, "partitions revoked");
                // Their buffers are dropped before any flush (the pipeline applies revocations
                // first), so the next owner may start at once.
                self.release(&revoked);
                self.record(RebalanceEvent::Revoked(revoked));
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; dropping the assignment");
                let dropped = partitions(tpl);
                self.release(&dropped);
                self.record(RebalanceEvent::Revoked(dropped));
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign failed");
                }
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // Not fatal: the durable files, not the group's commits, decide where a restart resumes.
            tracing::warn!(error = %e, offsets = ?partitions(offsets), "offset commit failed");
        }
    }
}

/// The high watermark (one past the log's last offset) of `tp` as librdkafka last heard it in a
/// fetch response; no request is made. None before the first fetch of the partition.
pub fn high_watermark(consumer: &IngestConsumer, tp: &TopicPartition) -> Option<i64> {
    let topic = std::ffi::CString::new(tp.topic.as_str()).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle lives as long as `consumer`, `topic` is a NUL-terminated string
    // that outlives the call, and librdkafka only writes the two offsets it is given.
    let err = unsafe {
        rdkafka_sys::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            tp.partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// The consumer's librdkafka configuration: its own settings, then the user's `--kafka-option`s
/// (see `shiftright_schemas::kafka`).
pub fn consumer_config(config: &IngestConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.extend(kafka::client_properties(
        &config.brokers,
        "shiftright-ingest",
        &[
            ("group.id", config.group_id.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("partition.assignment.strategy", "range,roundrobin"),
            ("session.timeout.ms", "10000"),
            // librdkafka's own prefetch is part of the memory budget: bound it.
            ("queued.max.messages.kbytes", "32768"),
            ("statistics.interval.ms", "5000"),
        ],
        &config.kafka_options,
    ));
    client
}

/// Creates the consumer and subscribes it to the three event topics.
pub fn create_consumer(config: &IngestConfig, stats: Arc<IngestStats>) -> Result<IngestConsumer> {
    let client = consumer_config(config);
    let context = IngestContext {
        out_dir: config.out_dir.clone(),
        events: Mutex::new(Vec::new()),
        stats,
        locks: Mutex::new(PartitionLocks::new(&config.out_dir)),
    };
    let consumer: IngestConsumer =
        client
            .create_with_context(context)
            .map_err(|source| Error::Kafka {
                context: format!("creating a consumer for {}", config.brokers),
                source,
            })?;
    consumer
        .subscribe(&config.topics())
        .map_err(|source| Error::Kafka {
            context: "subscribing to the event topics".into(),
            source,
        })?;
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letters::DeadLetterForwarder;

    /// Both clients of the ingest take the user's options, so a broker that requires TLS and SASL
    /// is reached by the dead-letter producer as well as by the consumer.
    #[test]
    fn the_consumer_and_the_dead_letter_producer_take_the_same_secure_options() {
        let mut config = IngestConfig::new("broker:9093", "/tmp/out");
        config.kafka_options = vec![
            ("security.protocol".into(), "sasl_ssl".into()),
            ("sasl.mechanism".into(), "PLAIN".into()),
            ("ssl.ca.location".into(), "/etc/kafka/ca.pem".into()),
            ("queued.max.messages.kbytes".into(), "1024".into()),
        ];
        let consumer = consumer_config(&config);
        let producer = DeadLetterForwarder::client_config(&config.brokers, &config.kafka_options);
        for client in [&consumer, &producer] {
            assert_eq!(client.get("bootstrap.servers"), Some("broker:9093"));
            assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
            assert_eq!(client.get("sasl.mechanism"), Some("PLAIN"));
            assert_eq!(client.get("ssl.ca.location"), Some("/etc/kafka/ca.pem"));
        }
        assert_eq!(consumer.get("queued.max.messages.kbytes"), Some("1024"));
        assert_eq!(consumer.get("group.id"), Some("shiftright-ingest"));
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(producer.get("client.id"), Some("shiftright-dead-letters"));
    }
}
