//! The one loop of the ingest service: shutdown | flush tick | message, with rebalance events
//! drained after every poll. Flushes are awaited inline, so the consumer is not polled while a
//! flush is in progress and a revocation can never complete in the middle of one. Each message's
//! offset is checked against its partition's durable progress first (`continuity`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use shiftright_schemas::Table;
use tokio_util::sync::CancellationToken;

use crate::buffer::{Buffers, FlushPolicy, Position, TopicPartition};
use crate::config::IngestConfig;
use crate::consumer::{create_consumer, high_watermark, IngestConsumer, RebalanceEvent};
use crate::continuity::{Continuity, Verdict};
use crate::dead_letters::{DeadLetter, DeadLetterForwarder};
use crate::decode::{Decoder, RejectReason, Rejection};
use crate::error::{Error, Result};
use crate::lock::{lock_output, OutputLock};
use crate::stats::{IngestStats, IngestSummary};
use crate::writer::write_batch;
use shiftright_schemas::batch::message_fingerprint;

/// Under `--idle-exit`, how long at least a consumer that was never assigned a partition waits.
pub const FIRST_ASSIGNMENT_GRACE: Duration = Duration::from_secs(30);

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
    /// Each assigned partition's continuity with its durable files.
    continuity: HashMap<TopicPartition, Continuity>,
    /// Partitions stopped after a reset, with what was seen (once each, however often assigned).
    stopped: BTreeMap<TopicPartition, String>,
    /// Topics that had a partition assigned at some point.
    assigned_topics: BTreeSet<String>,
    /// Held while the ingest runs: no other group writes to the output.
    _lock: OutputLock,
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
    // The registry lock is a blocking flock (held for a moment by a starting instance): taken off
    // the runtime's threads so the metrics endpoint and signals are served meanwhile.
    let lock = {
        let (out_dir, group_id) = (config.out_dir.clone(), config.group_id.clone());
        tokio::task::spawn_blocking(move || lock_output(&out_dir, &group_id)).await??
    };
    let consumer = create_consumer(&config, stats.clone())?;
    let policy = FlushPolicy {
        rows: config.flush_rows,
        bytes: config.flush_bytes,
        age: config.flush_interval,
        caught_up: config.flush_caught_up,
        budget: config.max_buffer_bytes,
    };
    tracing::info!(
        brokers = %config.brokers, group = %config.group_id, topics = ?config.topics(),
        out = %config.out_dir.display(), "ingest started"
    );
    let forwarder = match &config.dead_letter_topic {
        Some(topic) => Some(DeadLetterForwarder::new(
            &config.brokers,
            topic,
            &config.kafka_options,
        )?),
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
        continuity: HashMap::new(),
        stopped: BTreeMap::new(),
        assigned_topics: BTreeSet::new(),
        _lock: lock,
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
        // Often enough that a caught-up buffer waits at most half its age again.
        let tick_every = self
            .config
            .flush_interval
            .min(self.config.flush_caught_up / 2)
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
                    for tp in self.buffers.aged(|tp| high_watermark(consumer, tp)) {
                        self.flush(consumer, &tp).await?;
                    }
                    if let Some(idle) = self.config.idle_exit {
                        // Joining a group can take a session timeout and a rebalance (after a
                        // crash, under load); a consumer never assigned anything waits that out.
                        let idle = if self.assigned_topics.is_empty() {
                            idle.max(FIRST_ASSIGNMENT_GRACE)
                        } else {
                            idle
                        };
                        if self.idle_since.elapsed() >= idle {
                            return Ok(Stop::Idle);
                        }
                    }
                }
                received = consumer.recv() => {
                    self.apply_rebalance_events(consumer)?;
                    match received {
                        Ok(message) => {
                            self.idle_since = Instant::now();
                            let tp = TopicPartition {
                                topic: message.topic().to_string(),
                                partition: message.partition(),
                            };
                            let state = self.continuity.entry(tp.clone()).or_default();
                            let at = Position {
                                offset: message.offset(),
                                epoch: state.epoch,
                                fingerprint: message_fingerprint(
                                    message.timestamp().to_millis(),
                                    message.key(),
                                    message.payload(),
                                ),
                            };
                            match state.check(at.offset, at.fingerprint) {
                                Verdict::Keep => self.buffer_message(&message, &tp, &at),
                                Verdict::Skip => continue,
                                Verdict::Reset(seen) => {
                                    drop(message);
                                    self.on_reset(consumer, &tp, seen).await?;
                                    continue;
                                }
                            }
                            drop(message);
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
                RebalanceEvent::Assigned(partitions) => {
                    self.idle_since = Instant::now();
                    for (tp, resume) in partitions {
                        self.assigned_topics.insert(tp.topic.clone());
                        self.continuity
                            .insert(tp, Continuity::resumed(resume.as_ref()));
                    }
                }
                RebalanceEvent::Revoked(partitions) => {
                    for tp in partitions {
                        if let Some(dropped) = self.buffers.take(&tp) {
                            tracing::info!(
                                partition = %tp, messages = dropped.messages,
                                "partition revoked: dropping its unwritten rows; the next owner reads them again"
                            );
                        }
                        self.durable.remove(&tp);
                        self.continuity.remove(&tp);
                        self.stats.forget(&tp);
                    }
                }
                RebalanceEvent::Failed(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Decodes a message read at `at` into the buffers.
    fn buffer_message(
        &mut self,
        message: &BorrowedMessage<'_>,
        tp: &TopicPartition,
        at: &Position,
    ) {
        self.stats.message();
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
            Ok(event) => self.buffers.push_event(tp, table, at, event),
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
                self.buffers.push_dead_letter(tp, table, at, letter);
            }
        }
    }

    /// A partition's log was found reset (`seen` says how). Its buffered rows were read before
    /// the reset and are written first; then the partition either starts its next offset epoch
    /// at the log's start (`--accept-offset-reset`) or is paused and reported.
    async fn on_reset(
        &mut self,
        consumer: &IngestConsumer,
        tp: &TopicPartition,
        seen: String,
    ) -> Result<()> {
        self.flush(consumer, tp).await?;
        let state = self.continuity.entry(tp.clone()).or_default();
        if self.config.accept_offset_reset {
            state.next_epoch();
            tracing::warn!(
                partition = %tp, %seen, epoch = state.epoch,
                "the partition's log was reset; --accept-offset-reset: reading it from its start into a new offset epoch (the old files are kept)"
            );
            self.stats.offset_reset(tp, true);
            consumer
                .seek(
                    &tp.topic,
                    tp.partition,
                    Offset::Beginning,
                    Duration::from_secs(10),
                )
                .map_err(|source| Error::Kafka {
                    context: format!("seeking {tp} to the start of its new log"),
                    source,
                })?;
        } else {
            state.stopped = true;
            tracing::error!(
                partition = %tp, %seen,
                "the partition's log was reset below the durable offsets: stopping this partition; nothing past the reset is written (see --accept-offset-reset)"
            );
            self.stats.offset_reset(tp, false);
            let mut paused = TopicPartitionList::new();
            paused.add_partition(&tp.topic, tp.partition);
            if let Err(e) = consumer.pause(&paused) {
                tracing::warn!(partition = %tp, error = %e, "cannot pause the partition; its messages are dropped unread");
            }
            self.stopped.insert(tp.clone(), seen);
        }
        Ok(())
    }

    /// Under `--idle-exit`: a partition still waiting to re-read its last durable message may sit
    /// on a log that ends below it (reset, and nothing produced since), which no message would
    /// reveal; the watermarks do. And a topic that never had a partition assigned was never read.
    async fn idle_checks(&mut self, consumer: &IngestConsumer) -> Result<()> {
        let waiting: Vec<(TopicPartition, i64)> = self
            .continuity
            .iter()
            .filter(|(_, c)| !c.stopped)
            .filter_map(|(tp, c)| Some((tp.clone(), c.verifying()?)))
            .collect();
        for (tp, at) in waiting {
            match consumer.fetch_watermarks(&tp.topic, tp.partition, Duration::from_secs(5)) {
                Ok((_, high)) if high <= at => {
                    let seen = format!(
                        "the log ends at offset {high}, below the durable offset {}",
                        at + 1
                    );
                    self.on_reset(consumer, &tp, seen).await?;
                }
                Ok(_) => {
                    tracing::warn!(partition = %tp, offset = at, "the last durable message was not read again before the idle exit; the log was not checked")
                }
                Err(e) => {
                    tracing::warn!(partition = %tp, error = %e, "cannot read the watermarks; the log was not checked")
                }
            }
        }
        Ok(())
    }

    /// Under `--idle-exit`, the topics never read, if any, as an error that says why.
    fn unread_topics(&self, consumer: &IngestConsumer) -> Option<Error> {
        let unread: Vec<&str> = self
            .config
            .topics()
            .into_iter()
            .filter(|t| !self.assigned_topics.contains(*t))
            .collect();
        if unread.is_empty() {
            return None;
        }
        let idle = humanize(
            self.config
                .idle_exit
                .unwrap_or_default()
                .max(FIRST_ASSIGNMENT_GRACE),
        );
        if self.assigned_topics.is_empty() {
            return Some(Error::NotAssigned {
                topics: unread.join(", "),
                why: format!(
                    "no partition was assigned to this consumer in {idle}; check that the broker at {} is reachable and that the topics exist (or, in a group with more members than partitions, that this member was meant to idle)",
                    self.config.brokers
                ),
            });
        }
        // Others were read: a topic unread here may be another group member's, or missing.
        let missing: Vec<&str> = unread
            .into_iter()
            .filter(
                |topic| match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
                    Ok(metadata) => metadata
                        .topics()
                        .iter()
                        .all(|t| t.error().is_some() || t.partitions().is_empty()),
                    Err(_) => true,
                },
            )
            .collect();
        (!missing.is_empty()).then(|| Error::NotAssigned {
            topics: missing.join(", "),
            why: format!(
                "the broker at {} does not know them; create them, or name the right ones (--requests-topic, --business-topic, --exposures-topic)",
                self.config.brokers
            ),
        })
    }

    /// Writes a partition's buffer durably, then commits its offset.
    async fn flush(&mut self, consumer: &IngestConsumer, tp: &TopicPartition) -> Result<()> {
        let Some(buffer) = self.buffers.take(tp) else {
            return Ok(());
        };
        if !consumer.context().holds(tp) {
            // Cannot happen while revocations are applied before every flush; if it did, writing
            // could put rows beside the partition's new owner's.
            tracing::error!(partition = %tp, messages = buffer.messages, "not writing a partition this process does not hold; its next owner reads the rows again");
            return Ok(());
        }
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
        if stop == Stop::Idle {
            self.idle_checks(consumer).await?;
        }
        let pending = self.buffers.total_messages();
        tracing::info!(reason = ?stop, buffered_messages = pending, "stopping: flushing every buffer");
        for tp in self.buffers.partitions() {
            self.flush(consumer, &tp).await?;
        }
        let durable: Vec<(TopicPartition, i64)> = self.durable.drain().collect();
        self.commit(consumer, &durable, CommitMode::Sync);
        let summary = self.stats.snapshot();
        tracing::info!(?summary, "ingest stopped");
        if !self.stopped.is_empty() {
            return Err(Error::OffsetReset {
                count: self.stopped.len(),
                partitions: self
                    .stopped
                    .iter()
                    .map(|(tp, seen)| format!("{tp}: {seen}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        if stop == Stop::Idle {
            if let Some(error) = self.unread_topics(consumer) {
                return Err(error);
            }
        }
        Ok(summary)
    }
}

fn humanize(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
