//! Writes a generated scenario straight to Parquet, with no Kafka in between: the analysis
//! benchmark needs 10⁸ request events, which no broker on this machine holds, and must read files
//! laid out exactly as the ingest lays them out.
//!
//! So every message goes through the ingest's own decoder, partition buffers and writer: the files,
//! their names, row groups and encodings are those a real `shiftright ingest` run would write, as
//! if each table's topic had `partitions` partitions keyed by user.

use std::path::Path;
use std::time::{Duration, Instant};

use shiftright_ingest::buffer::{Buffers, FlushPolicy, Position, TopicPartition};
use shiftright_ingest::dead_letters::DeadLetter;
use shiftright_ingest::writer::write_batch;
use shiftright_ingest::{Decoder, IngestConfig};
use shiftright_schemas::batch::message_fingerprint;
use shiftright_schemas::Table;
use shiftright_traffic::{generate, Scenario, TopicNames};

use crate::error::{Error, Result};

/// What was written (also kept beside the data, so a later run can reuse it).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Written {
    /// Request rows.
    pub requests: u64,
    /// Business rows.
    pub business: u64,
    /// Exposure rows.
    pub exposures: u64,
    /// Dead letters (the scenario's malformed messages).
    pub dead_letters: u64,
    /// Parquet files.
    pub files: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Time taken.
    pub elapsed: Duration,
    /// The share of request events sent twice (data written before it was recorded had none).
    #[serde(default)]
    pub duplicate_share: f64,
}

/// The share of request events the benchmark's producers send twice, as retrying producers do.
pub const DUPLICATE_SHARE: f64 = 0.01;

/// The benchmark's scenario: the demo's two 95/5 canaries (one regressed, one healthy) over enough
/// users for about `requests` live request events (each user makes about 5 requests in each),
/// [`DUPLICATE_SHARE`] of them resent.
pub fn scenario_for(requests: u64, seed: u64) -> Scenario {
    let users = (requests / 10).max(100) as usize;
    Scenario {
        duplicate_share: DUPLICATE_SHARE,
        ..Scenario::demo(users, seed)
    }
}

/// Generates `scenario` ending at `now_ms` and writes it under `out` as the ingest would, with
/// `partitions` partitions per topic and the ingest's default flush size. Calls `progress` with
/// the messages done so far every million.
pub fn write_scenario(
    scenario: &Scenario,
    now_ms: i64,
    out: &Path,
    partitions: u32,
    progress: &mut dyn FnMut(u64),
) -> Result<Written> {
    let started = Instant::now();
    let config = IngestConfig::new("unused", out);
    std::fs::create_dir_all(out).map_err(|e| Error::io("creating", out, e))?;
    let decoder = Decoder::new(&config);
    let mut buffers = Buffers::new(FlushPolicy {
        rows: config.flush_rows,
        bytes: config.flush_bytes,
        age: Duration::MAX,
        caught_up: Duration::MAX,
        budget: config.max_buffer_bytes,
    });
    // Every (table, partition) once, with its next offset: no allocation per message.
    let topics = TopicNames::default();
    let partitions = partitions.max(1);
    let mut sources: Vec<(TopicPartition, i64)> =
        [Table::Requests, Table::Business, Table::Exposures]
            .iter()
            .flat_map(|table| {
                let topic = topics.of(*table).to_string();
                (0..partitions as i32).map(move |partition| {
                    let tp = TopicPartition {
                        topic: topic.clone(),
                        partition,
                    };
                    (tp, 0)
                })
            })
            .collect();
    let table_index = |table: Table| match table {
        Table::Requests => 0,
        Table::Business => 1,
        _ => 2,
    };
    let mut written = Written::default();
    let mut messages = 0u64;
    let flush = |buffers: &mut Buffers, tp: &TopicPartition, written: &mut Written| {
        if let Some(buffer) = buffers.take(tp) {
            let outcome = write_batch(out, &buffer)?;
            written.files += outcome.files.len() as u64;
            written.bytes += outcome.bytes;
            written.dead_letters += outcome.dead_letters as u64;
            for (table, rows) in &outcome.record.rows {
                match table {
                    Table::Requests => written.requests += rows,
                    Table::Business => written.business += rows,
                    Table::Exposures => written.exposures += rows,
                    Table::DeadLetters => {}
                }
            }
        }
        Ok::<(), Error>(())
    };
    generate(scenario, now_ms, &mut |message| {
        let partition = (fnv1a(message.key.as_bytes()) % u64::from(partitions)) as usize;
        let (tp, next) = &mut sources[table_index(message.table) * partitions as usize + partition];
        let this = *next;
        *next += 1;
        let tp: &TopicPartition = tp;
        let at = Position {
            offset: this,
            epoch: 0,
            fingerprint: message_fingerprint(
                Some(now_ms),
                Some(message.key.as_bytes()),
                Some(&message.payload),
            ),
        };
        match decoder.decode(message.table, Some(&message.payload), now_ms) {
            Ok(event) => buffers.push_event(tp, message.table, &at, event),
            Err(rejection) => buffers.push_dead_letter(
                tp,
                message.table,
                &at,
                DeadLetter {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: this,
                    kafka_ts_ms: Some(now_ms),
                    received_at_ms: now_ms,
                    rejection,
                    key: Some(message.key.into_bytes()),
                    payload: Some(message.payload),
                },
            ),
        }
        if buffers.is_full(tp) {
            flush(&mut buffers, tp, &mut written)?;
        }
        while buffers.over_budget() {
            let Some(largest) = buffers.largest() else {
                break;
            };
            flush(&mut buffers, &largest, &mut written)?;
        }
        messages += 1;
        if messages % 1_000_000 == 0 {
            progress(messages);
        }
        Ok::<(), Error>(())
    })?;
    for tp in buffers.partitions() {
        flush(&mut buffers, &tp, &mut written)?;
    }
    written.elapsed = started.elapsed();
    written.duplicate_share = scenario.duplicate_share;
    Ok(written)
}

/// FNV-1a: a stable key hash, so the same scenario always lands in the same partitions.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_the_generator_made_in_the_ingest_layout() {
        let dir = tempfile::tempdir().unwrap();
        let scenario = scenario_for(20_000, 3);
        let now = chrono::Utc::now().timestamp_millis();
        let mut counted = shiftright_traffic::GenerationSummary::default();
        // The same scenario, counted by the generator alone.
        generate(&scenario, now, &mut |_| Ok::<(), Error>(()))
            .map(|s| counted = s)
            .unwrap();
        let written = write_scenario(&scenario, now, dir.path(), 3, &mut |_| {}).unwrap();
        assert_eq!(written.requests, counted.requests);
        assert_eq!(written.business, counted.business);
        assert_eq!(written.exposures, counted.exposures);
        assert_eq!(written.dead_letters, counted.malformed);
        assert!(written.requests > 15_000, "{}", written.requests);
        // Hive layout: requests/date=…/experiment=…/<file>.parquet
        let experiments = std::fs::read_dir(dir.path().join("requests"))
            .unwrap()
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("experiment=")
            })
            .count();
        assert!(experiments >= 2, "{experiments}");
    }
}
