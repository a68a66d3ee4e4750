//! What the ingest counts (`exposition` renders it for Prometheus): messages consumed; rows, bytes and files
//! written per table; dead letters by reason; flush durations; and per partition the last durable
//! offset and the consumer lag. Updated from the pipeline and the consumer's statistics callback,
//! read by the metrics endpoint, the demo and the tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use shiftright_schemas::Table;

use crate::buffer::TopicPartition;
use crate::decode::RejectReason;

/// Upper bounds (seconds) of the flush-duration histogram buckets.
pub(crate) const FLUSH_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub(crate) const TABLES: [Table; 4] = [
    Table::Requests,
    Table::Business,
    Table::Exposures,
    Table::DeadLetters,
];

fn table_index(table: Table) -> usize {
    TABLES.iter().position(|t| *t == table).unwrap_or(3)
}

/// Per-partition gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionGauges {
    /// One past the last offset in durable files (what a restart resumes from).
    pub next_durable_offset: Option<i64>,
    /// High watermark minus the committed offset, from librdkafka's statistics.
    pub lag: Option<i64>,
    /// Whether the partition is stopped because its log was found reset.
    pub stopped: bool,
}

/// Live counters; cheap to update from the pipeline and to read from anywhere.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub(crate) messages: AtomicU64,
    pub(crate) rows: [AtomicU64; 4],
    pub(crate) bytes: [AtomicU64; 4],
    pub(crate) files: [AtomicU64; 4],
    pub(crate) dead_letters: [AtomicU64; RejectReason::ALL.len()],
    pub(crate) flushes: AtomicU64,
    pub(crate) flush_micros: AtomicU64,
    pub(crate) flush_buckets: [AtomicU64; FLUSH_BUCKETS.len()],
    partitions: Mutex<BTreeMap<TopicPartition, PartitionGauges>>,
    pub(crate) quarantined: AtomicU64,
    /// Offset resets found: [stopped, accepted].
    pub(crate) offset_resets: [AtomicU64; 2],
}

/// A copy of the main counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Kafka messages read (rows + dead letters, including ones buffered but not yet written).
    pub messages: u64,
    /// Rows written to `requests`.
    pub request_rows: u64,
    /// Rows written to `business`.
    pub business_rows: u64,
    /// Rows written to `exposures`.
    pub exposure_rows: u64,
    /// Dead letters written.
    pub dead_letters: u64,
    /// Parquet files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Flush batches written.
    pub flushes: u64,
}

impl IngestSummary {
    /// Rows written to all event tables.
    pub fn rows(&self) -> u64 {
        self.request_rows + self.business_rows + self.exposure_rows
    }

    /// Messages written, as rows or dead letters.
    pub fn written(&self) -> u64 {
        self.rows() + self.dead_letters
    }
}

/// What one durable flush wrote, for the counters.
#[derive(Debug, Clone, Default)]
pub struct FlushRecord {
    /// Rows per table (dead letters under `Table::DeadLetters`).
    pub rows: Vec<(Table, u64)>,
    /// Bytes per table.
    pub bytes: Vec<(Table, u64)>,
    /// Files per table.
    pub files: Vec<(Table, u64)>,
    /// Dead letters by reason.
    pub dead_letters: Vec<(RejectReason, u64)>,
    /// How long writing took.
    pub duration: Duration,
}

impl IngestStats {
    /// A message was read.
    pub fn message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    /// A flush batch of `source` was made durable up to `next_offset`.
    pub fn flushed(&self, source: &TopicPartition, next_offset: i64, record: &FlushRecord) {
        for (table, n) in &record.rows {
            self.rows[table_index(*table)].fetch_add(*n, Ordering::Relaxed);
        }
        for (table, n) in &record.bytes {
            self.bytes[table_index(*table)].fetch_add(*n, Ordering::Relaxed);
        }
        for (table, n) in &record.files {
            self.files[table_index(*table)].fetch_add(*n, Ordering::Relaxed);
        }
        for (reason, n) in &record.dead_letters {
            let i = RejectReason::ALL
                .iter()
                .position(|r| r == reason)
                .unwrap_or(0);
            self.dead_letters[i].fetch_add(*n, Ordering::Relaxed);
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flush_micros
            .fetch_add(record.duration.as_micros() as u64, Ordering::Relaxed);
        let secs = record.duration.as_secs_f64();
        if let Some(i) = FLUSH_BUCKETS.iter().position(|b| secs <= *b) {
            self.flush_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.with_partitions(|p| {
            p.entry(source.clone()).or_default().next_durable_offset = Some(next_offset)
        });
    }

    /// Damaged flush batches were moved to the quarantine at recovery.
    pub fn quarantined(&self, batches: u64) {
        self.quarantined.fetch_add(batches, Ordering::Relaxed);
    }

    /// A partition's log was found reset; `accepted`: a new epoch was started, else the partition
    /// was stopped.
    pub fn offset_reset(&self, source: &TopicPartition, accepted: bool) {
        self.offset_resets[usize::from(accepted)].fetch_add(1, Ordering::Relaxed);
        if !accepted {
            self.with_partitions(|p| p.entry(source.clone()).or_default().stopped = true);
        }
    }

    /// Records the consumer lag of a partition (from librdkafka's statistics).
    pub fn set_lag(&self, source: TopicPartition, lag: i64) {
        self.with_partitions(|p| p.entry(source).or_default().lag = Some(lag));
    }

    /// Forgets a partition's gauges (it was revoked), but for `stopped`, which stays until the
    /// process ends (it exits 1 for it).
    pub fn forget(&self, source: &TopicPartition) {
        self.with_partitions(|p| {
            if p.get(source).is_some_and(|g| g.stopped) {
                p.insert(
                    source.clone(),
                    PartitionGauges {
                        stopped: true,
                        ..PartitionGauges::default()
                    },
                );
            } else {
                p.remove(source);
            }
        });
    }

    fn with_partitions<R>(
        &self,
        f: impl FnOnce(&mut BTreeMap<TopicPartition, PartitionGauges>) -> R,
    ) -> R {
        match self.partitions.lock() {
            Ok(mut p) => f(&mut p),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The per-partition gauges now.
    pub fn partitions(&self) -> BTreeMap<TopicPartition, PartitionGauges> {
        self.with_partitions(|p| p.clone())
    }

    /// Dead letters written so far, by reason.
    pub fn dead_letters_by_reason(&self) -> BTreeMap<RejectReason, u64> {
        RejectReason::ALL
            .iter()
            .zip(&self.dead_letters)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The main counters now.
    pub fn snapshot(&self) -> IngestSummary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IngestSummary {
            messages: get(&self.messages),
            request_rows: get(&self.rows[0]),
            business_rows: get(&self.rows[1]),
            exposure_rows: get(&self.rows[2]),
            dead_letters: get(&self.rows[3]),
            files: self.files.iter().map(get).sum(),
            bytes: self.bytes.iter().map(get).sum(),
            flushes: get(&self.flushes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_family_and_sample() {
        let stats = std::sync::Arc::new(IngestStats::default());
        stats.message();
        let tp = TopicPartition {
            topic: "requests".into(),
            partition: 2,
        };
        let record = FlushRecord {
            rows: vec![(Table::Requests, 5), (Table::DeadLetters, 1)],
            bytes: vec![(Table::Requests, 900)],
            files: vec![(Table::Requests, 1), (Table::DeadLetters, 1)],
            dead_letters: vec![(RejectReason::InvalidJson, 1)],
            duration: Duration::from_millis(30),
        };
        stats.flushed(&tp, 6, &record);
        stats.set_lag(tp.clone(), 42);
        stats.offset_reset(&tp, false);
        let text = crate::exposition::render(&stats);
        for line in [
            "shiftright_messages_consumed_total 1",
            "shiftright_rows_written_total{table=\"requests\"} 5",
            "shiftright_rows_written_total{table=\"dead_letters\"} 1",
            "shiftright_dead_letters_total{reason=\"invalid_json\"} 1",
            "shiftright_flush_duration_seconds_bucket{le=\"0.05\"} 1",
            "shiftright_flush_duration_seconds_count 1",
            "shiftright_next_durable_offset{topic=\"requests\",partition=\"2\"} 6",
            "shiftright_consumer_lag{topic=\"requests\",partition=\"2\"} 42",
            "# TYPE shiftright_flush_duration_seconds histogram",
            "shiftright_partition_stopped{topic=\"requests\",partition=\"2\"} 1",
            "shiftright_offset_resets_total{action=\"stopped\"} 1",
            "shiftright_batches_quarantined_total 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let summary = stats.snapshot();
        assert_eq!(
            (summary.request_rows, summary.dead_letters, summary.files),
            (5, 1, 2)
        );
    }
}
