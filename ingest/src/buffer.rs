//! Rows waiting to be written, per Kafka partition, and the rules for when to write them.
//!
//! A partition's buffer covers one contiguous run of its offsets. When it is flushed, every row and
//! dead letter of that run goes into one *flush batch* of files, recorded with the run's first and
//! last offset; that is what lets a restart resume exactly past the durable data.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use shiftright_schemas::{partition_value, Table};

use crate::dead_letters::DeadLetter;
use crate::decode::Event;

/// A Kafka topic-partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// Where a group of rows goes: `OUT/<table>/date=<date>/experiment=<key>/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// Hive-safe experiment key.
    pub experiment: String,
}

/// The buffered rows of one Kafka partition.
#[derive(Debug)]
pub struct PartitionBuffer {
    /// The Kafka partition.
    pub source: TopicPartition,
    /// The table its events belong to.
    pub table: Table,
    /// Offset of the first buffered message.
    pub first_offset: i64,
    /// Offset of the last buffered message.
    pub last_offset: i64,
    /// Fingerprint of the message at `last_offset` (`shiftright_schemas::batch::message_fingerprint`).
    pub last_message: u64,
    /// The partition's offset epoch, recorded in the batch's file names.
    pub epoch: u32,
    /// Good rows by output directory.
    pub rows: BTreeMap<PartitionKey, Vec<Event>>,
    /// Rejected messages by `date=`.
    pub dead_letters: BTreeMap<String, Vec<DeadLetter>>,
    /// Messages buffered (rows + dead letters).
    pub messages: usize,
    /// About how many bytes the buffer holds.
    pub bytes: usize,
    /// When the first message arrived.
    pub opened: Instant,
}

impl PartitionBuffer {
    fn new(source: TopicPartition, table: Table, offset: i64, epoch: u32) -> Self {
        PartitionBuffer {
            source,
            table,
            first_offset: offset,
            last_offset: offset,
            last_message: 0,
            epoch,
            rows: BTreeMap::new(),
            dead_letters: BTreeMap::new(),
            messages: 0,
            bytes: 0,
            opened: Instant::now(),
        }
    }

    fn note_offset(&mut self, at: &Position) {
        if at.offset >= self.last_offset {
            self.last_offset = at.offset;
            self.last_message = at.fingerprint;
        }
        self.messages += 1;
    }
}

/// Where a message was read: its offset, its partition's offset epoch, and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Kafka offset.
    pub offset: i64,
    /// The partition's offset epoch.
    pub epoch: u32,
    /// `shiftright_schemas::batch::message_fingerprint` of the message.
    pub fingerprint: u64,
}

/// When buffers are flushed.
#[derive(Debug, Clone, Copy)]
pub struct FlushPolicy {
    /// Rows per partition buffer.
    pub rows: usize,
    /// Bytes per partition buffer.
    pub bytes: usize,
    /// Age of a partition buffer's first row.
    pub age: Duration,
    /// Age of the first row at which a buffer whose partition has caught up with its log is
    /// flushed: nothing more is coming soon, so waiting out `age` only delays its rows.
    pub caught_up: Duration,
    /// Bytes across all buffers.
    pub budget: usize,
}

/// All partitions' buffers, with the totals that the memory budget is checked against.
#[derive(Debug)]
pub struct Buffers {
    policy: FlushPolicy,
    by_partition: HashMap<TopicPartition, PartitionBuffer>,
    total_bytes: usize,
}

impl Buffers {
    /// Empty buffers under `policy`.
    pub fn new(policy: FlushPolicy) -> Self {
        Buffers {
            policy,
            by_partition: HashMap::new(),
            total_bytes: 0,
        }
    }

    fn entry(
        &mut self,
        source: &TopicPartition,
        table: Table,
        at: &Position,
    ) -> &mut PartitionBuffer {
        self.by_partition
            .entry(source.clone())
            .or_insert_with(|| PartitionBuffer::new(source.clone(), table, at.offset, at.epoch))
    }

    /// Buffers a good row read at `at`. A buffer holds one epoch: the pipeline flushes a
    /// partition before it starts the next.
    pub fn push_event(
        &mut self,
        source: &TopicPartition,
        table: Table,
        at: &Position,
        event: Event,
    ) {
        let size = event.approx_bytes();
        let key = PartitionKey {
            date: event.date(),
            experiment: partition_value(event.experiment()),
        };
        let buffer = self.entry(source, table, at);
        buffer.note_offset(at);
        buffer.bytes += size;
        buffer.rows.entry(key).or_default().push(event);
        self.total_bytes += size;
    }

    /// Buffers a dead letter read at `at`.
    pub fn push_dead_letter(
        &mut self,
        source: &TopicPartition,
        table: Table,
        at: &Position,
        letter: DeadLetter,
    ) {
        let size = letter.approx_bytes();
        let buffer = self.entry(source, table, at);
        buffer.note_offset(at);
        buffer.bytes += size;
        buffer
            .dead_letters
            .entry(letter.date())
            .or_default()
            .push(letter);
        self.total_bytes += size;
    }

    /// Whether the partition's buffer has reached its row or byte threshold.
    pub fn is_full(&self, source: &TopicPartition) -> bool {
        self.by_partition
            .get(source)
            .is_some_and(|b| b.messages >= self.policy.rows || b.bytes >= self.policy.bytes)
    }

    /// Whether all buffers together are over the memory budget.
    pub fn over_budget(&self) -> bool {
        self.total_bytes >= self.policy.budget
    }

    /// Partitions to flush for their age: those whose first row is older than the flush
    /// interval, and those older than the caught-up age whose last buffered offset is the last
    /// of the log as far as `next_offset` (the high watermark the client knows) says.
    pub fn aged(
        &self,
        next_offset: impl Fn(&TopicPartition) -> Option<i64>,
    ) -> Vec<TopicPartition> {
        let FlushPolicy { age, caught_up, .. } = self.policy;
        self.by_partition
            .values()
            .filter(|b| {
                let old = b.opened.elapsed();
                old >= age
                    || (old >= caught_up
                        && next_offset(&b.source).is_some_and(|next| b.last_offset + 1 >= next))
            })
            .map(|b| b.source.clone())
            .collect()
    }

    /// The partition holding the most bytes.
    pub fn largest(&self) -> Option<TopicPartition> {
        self.by_partition
            .values()
            .max_by_key(|b| b.bytes)
            .map(|b| b.source.clone())
    }

    /// Every buffered partition.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.by_partition.keys().cloned().collect()
    }

    /// Takes a partition's buffer out, to be written (or dropped on revocation).
    pub fn take(&mut self, source: &TopicPartition) -> Option<PartitionBuffer> {
        let buffer = self.by_partition.remove(source)?;
        self.total_bytes -= buffer.bytes;
        Some(buffer)
    }

    /// Bytes buffered across all partitions.
    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Messages buffered across all partitions.
    pub fn total_messages(&self) -> usize {
        self.by_partition.values().map(|b| b.messages).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Common, Event};

    fn buffers(age: Duration, caught_up: Duration) -> Buffers {
        Buffers::new(FlushPolicy {
            rows: 1_000,
            bytes: 1 << 20,
            age,
            caught_up,
            budget: 1 << 30,
        })
    }

    fn push(buffers: &mut Buffers, tp: &TopicPartition, offset: i64) {
        let event = Event::Exposure {
            common: Common {
                event_id: format!("e{offset}"),
                ts_ms: 0,
                user_id: "u".into(),
                synthetic: false,
            },
            experiment: "x".into(),
            variant: "v".into(),
            weights: None,
        };
        let at = Position {
            offset,
            epoch: 0,
            fingerprint: 0,
        };
        buffers.push_event(tp, Table::Exposures, &at, event);
    }

    #[test]
    fn a_caught_up_partition_flushes_at_the_caught_up_age_others_at_the_interval() {
        let tp = |partition| TopicPartition {
            topic: "exposures".into(),
            partition,
        };
        let mut b = buffers(Duration::from_secs(3600), Duration::from_millis(20));
        push(&mut b, &tp(0), 9); // the log's last message: the watermark is 10
        push(&mut b, &tp(1), 9); // 90 more to read
        push(&mut b, &tp(2), 9); // no fetch response yet: no watermark
        let watermark = |t: &TopicPartition| match t.partition {
            0 => Some(10),
            1 => Some(100),
            _ => None,
        };
        assert!(
            b.aged(watermark).is_empty(),
            "younger than the caught-up age"
        );
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.aged(watermark), vec![tp(0)]);

        let mut b = buffers(Duration::from_millis(20), Duration::from_millis(10));
        push(&mut b, &tp(1), 9);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            b.aged(watermark),
            vec![tp(1)],
            "the interval applies to all"
        );
    }
}
