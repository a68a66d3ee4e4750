//! The one loop of the ingest service: shutdown | flush tick | message, with rebalance events
//! drained after every poll. Flushes are awaited inline, so the consumer is not polled while a
//! flush is in progress and a revocation can never complete in the middle of one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use shiftright_schemas::Table;
use tokio_util::sync::CancellationToken;

use crate::buffer::{Buffers, FlushPolicy, TopicPartition};
use crate::config::IngestConfig;
use crate::consumer::{create_consumer, IngestConsumer, RebalanceEvent};
use crate::dead_letters::{DeadLetter, DeadLetterForwarder};
use crate::decode::{Decoder, RejectReason, Rejection};
use crate::error::{Error, Result};
use crate::stats::{IngestStats, IngestSummary};
use crate::writer::write_batch;

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Shutdown,
    Idle,
}

/// The loop's state. The consumer is kept apart so that a received message (which borrows it) can
/// be decoded into the buffers without copying.
struct Pipeline {
    config: IngestConfig,
    decoder: Decoder,
    buffers: Buffers,
    stats: Arc<IngestStats>,
    /// Copies dead letters to Kafka, when configured.
    forwarder: Option<DeadLetterForwarder>,
    /// Offsets made durable and not yet committed synchronously at shutdown.
    durable: HashMap<TopicPartition, i64>,
    /// Last message or assignment: `--idle-exit` counts from here.
    idle_since: Instant,
}

/// Runs the ingest until `shutdown` is cancelled (or, with `idle_exit`, until no message came for
/// that long), then flushes every buffer, commits, and returns the counters.
pub async fn run(
    config: IngestConfig,
    shutdown: CancellationToken,
    stats: Arc<IngestStats>,
) -> Result<IngestSummary> {
    config.validate()?;
    std::fs::create_dir_all(&config.out_dir)
        .map_err(|e| Error::io(&config.out_dir, "creating the output directory", e))?;
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Error::Config(format!(
                "cannot serve metrics on {addr}: {e}; pass another --metrics-addr, or `off`"
            ))
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io(".", "reading the metrics address", e))?;
        tracing::info!(addr = %local, "serving Prometheus metrics at http://{local}/metrics");
        tokio::spawn(crate::metrics::serve(
            listener,
            stats.clone(),
            shutdown.clone(),
        ));
    }
    let consumer = create_consumer(&config, stats.clone())?;
    let policy = FlushPolicy {
        rows: config.flush_rows,
        bytes: config.flush_bytes,
        age: config.flush_interval,
        budget: config.max_buffer_bytes,
    };
    tracing::info!(
        brokers = %config.brokers, group = %config.group_id, topics = ?config.topics(),
        out = %config.out_dir.display(), "ingest started"
    );
    let forwarder = match &config.dead_letter_topic {
        Some(topic) => Some(DeadLetterForwarder::new(&config.brokers, topic)?),
        None => None,
    };
    let mut pipeline = Pipeline {
        forwarder,
        decoder: Decoder::new(&config),
        buffers: Buffers::new(policy),
        config,
        stats,
        durable: HashMap::new(),
        idle_since: Instant::now(),
    };
    let stop = pipeline.run_loop(&consumer, &shutdown).await?;
    pipeline.finish(&consumer, stop).await
}

impl Pipeline {
    async fn run_loop(
        &mut self,
        consumer: &IngestConsumer,
        shutdown: &CancellationToken,
    ) -> Result<Stop> {
        let tick_every = self
            .config
            .flush_interval
            .min(Duration::from_millis(500))
            .max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(Stop::Shutdown),
                _ = tick.tick() => {
                    self.apply_rebalance_events(consumer)?;
                    for tp in self.buffers.aged() {
                        self.flush(consumer, &tp).await?;
                    }
                    if let Some(idle) = self.config.idle_exit {
                        if self.idle_since.elapsed() >= idle {
                            return Ok(Stop::Idle);
                        }
                    }
                }
                received = consumer.recv() => {
                    self.apply_rebalance_events(consumer)?;
                    match received {
                        Ok(message) => {
                            let tp = self.buffer_message(&message);
                            drop(message);
                            self.idle_since = Instant::now();
                            if self.buffers.is_full(&tp) {
                                self.flush(consumer, &tp).await?;
                            }
                            while self.buffers.over_budget() {
                                let Some(largest) = self.buffers.largest() else { break };
                                tracing::debug!(partition = %largest, "memory budget reached; flushing early");
                                self.flush(consumer, &largest).await?;
                            }
                        }
                        Err(e) => {
                            // librdkafka retries by itself (broker down, request errors); say so and go on.
                            tracing::warn!(error = %e, "Kafka reported an error; the client retries");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        }
    }

    /// Acts on what the rebalance callback recorded.
    fn apply_rebalance_events(&mut self, consumer: &IngestConsumer) -> Result<()> {
        for event in consumer.context().drain() {
            match event {
                // Joining a group can take a session timeout after a crash; idleness counts from
                // the assignment, so `--idle-exit` never stops a consumer that has not started.
                RebalanceEvent::Assigned(_) => self.idle_since = Instant::now(),
                RebalanceEvent::Revoked(partitions) => {
                    for tp in partitions {
                        if let Some(dropped) = self.buffers.take(&tp) {
                            tracing::info!(
                                partition = %tp, messages = dropped.messages,
                                "partition revoked: dropping its unwritten rows; the next owner reads them again"
                            );
                        }
                        self.durable.remove(&tp);
                        self.stats.forget(&tp);
                    }
                }
                RebalanceEvent::Failed(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Decodes a message into the buffers; returns its partition.
    fn buffer_message(&mut self, message: &BorrowedMessage<'_>) -> TopicPartition {
        self.stats.message();
        let tp = TopicPartition {
            topic: message.topic().to_string(),
            partition: message.partition(),
        };
        let now_ms = now_ms();
        let table = self.config.table_of(&tp.topic);
        let decoded = match table {
            Some(table) => self.decoder.decode(table, message.payload(), now_ms),
            None => Err(Rejection {
                reason: RejectReason::UnknownTopic,
                detail: format!("no table is configured for topic {:?}", tp.topic),
            }),
        };
        let table = table.unwrap_or(Table::DeadLetters);
        match decoded {
            Ok(event) => self.buffers.push_event(&tp, table, message.offset(), event),
            Err(rejection) => {
                tracing::debug!(partition = %tp, offset = message.offset(), reason = %rejection.reason, detail = %rejection.detail, "dead letter");
                let letter = DeadLetter {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: message.offset(),
                    kafka_ts_ms: message.timestamp().to_millis(),
                    received_at_ms: now_ms,
                    rejection,
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec),
                };
                self.buffers.push_dead_letter(&tp, table, letter);
            }
        }
        tp
    }

    /// Writes a partition's buffer durably, then commits its offset.
    async fn flush(&mut self, consumer: &IngestConsumer, tp: &TopicPartition) -> Result<()> {
        let Some(buffer) = self.buffers.take(tp) else {
            return Ok(());
        };
        if let Some(forwarder) = &self.forwarder {
            forwarder
                .forward(buffer.dead_letters.values().flatten())
                .await?;
        }
        let out_dir: PathBuf = self.config.out_dir.clone();
        let started = Instant::now();
        let (buffer, written) = tokio::task::spawn_blocking(move || {
            let written = write_batch(&out_dir, &buffer);
            (buffer, written)
        })
        .await?;
        let outcome = written?;
        self.stats.flushed(tp, outcome.next_offset, &outcome.record);
        tracing::debug!(
            partition = %tp, first = buffer.first_offset, last = buffer.last_offset, rows = outcome.rows,
            dead_letters = outcome.dead_letters, files = outcome.files.len(), bytes = outcome.bytes,
            elapsed_ms = started.elapsed().as_millis() as u64, "flushed"
        );
        self.durable.insert(tp.clone(), outcome.next_offset);
        self.commit(
            consumer,
            &[(tp.clone(), outcome.next_offset)],
            CommitMode::Async,
        );
        Ok(())
    }

    fn commit(
        &self,
        consumer: &IngestConsumer,
        offsets: &[(TopicPartition, i64)],
        mode: CommitMode,
    ) {
        if offsets.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, next) in offsets {
            if let Err(e) = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))
            {
                tracing::warn!(partition = %tp, error = %e, "cannot build the commit");
            }
        }
        if let Err(e) = consumer.commit(&tpl, mode) {
            // The durable files decide where a restart resumes; a failed commit only delays lag tools.
            tracing::warn!(error = %e, "offset commit failed");
        }
    }

    async fn finish(mut self, consumer: &IngestConsumer, stop: Stop) -> Result<IngestSummary> {
        self.apply_rebalance_events(consumer)?;
        let pending = self.buffers.total_messages();
        tracing::info!(reason = ?stop, buffered_messages = pending, "stopping: flushing every buffer");
        for tp in self.buffers.partitions() {
            self.flush(consumer, &tp).await?;
        }
        let durable: Vec<(TopicPartition, i64)> = self.durable.drain().collect();
        self.commit(consumer, &durable, CommitMode::Sync);
        let summary = self.stats.snapshot();
        tracing::info!(?summary, "ingest stopped");
        Ok(summary)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
