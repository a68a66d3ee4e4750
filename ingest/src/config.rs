//! Ingest configuration: every knob with its default, validated once before anything starts.

use std::path::PathBuf;
use std::time::Duration;

use shiftright_schemas::batch::MAX_TOPIC_BYTES;
use shiftright_schemas::Table;

use crate::error::{Error, Result};

/// Where to read, where to write, and when to flush.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Kafka bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Consumer group id. Instances with the same id split the partitions. Default `shiftright-ingest`.
    pub group_id: String,
    /// Topic of request events. Default `requests`.
    pub requests_topic: String,
    /// Topic of business events. Default `business`.
    pub business_topic: String,
    /// Topic of exposure events. Default `exposures`.
    pub exposures_topic: String,
    /// Output root: tables are written under `OUT/<table>/date=YYYY-MM-DD/experiment=<key>/`.
    pub out_dir: PathBuf,
    /// Flush a partition's buffer when it holds this many rows. Default 100,000.
    pub flush_rows: usize,
    /// Flush a partition's buffer when its rows take about this many bytes. Default 64 MiB.
    pub flush_bytes: usize,
    /// Flush a partition's buffer when its oldest row is this old. Default 10 s.
    pub flush_interval: Duration,
    /// Flush a partition's buffer when its oldest row is this old and the partition has been read
    /// to its end (its last offset is the log's, by the high watermark the client has): the fresh
    /// rows of a steady stream and the tail of a backlog wait this long, not `flush_interval`.
    /// Default 500 ms.
    pub flush_caught_up: Duration,
    /// Memory budget for all buffered rows: past it, the largest buffer is flushed early. Default 256 MiB.
    pub max_buffer_bytes: usize,
    /// Messages larger than this are dead letters (`too_large`). Default 1 MiB.
    pub max_message_bytes: usize,
    /// Events older than this (by `ts`) are dead letters (`timestamp_out_of_range`). Default 30 days.
    pub max_event_age: Duration,
    /// Events further than this in the future are dead letters. Default 1 hour.
    pub max_event_future: Duration,
    /// User-id prefixes that mark a user as synthetic. Default `synthetic-`, `test-`.
    pub synthetic_prefixes: Vec<String>,
    /// Stop after this long without a message since the start or the last partition assignment (for
    /// batch runs and scripts). Default: never.
    pub idle_exit: Option<Duration>,
    /// Extra librdkafka consumer properties, `key=value`, applied last.
    pub kafka_options: Vec<(String, String)>,
    /// Where to serve Prometheus metrics (`/metrics`); None: not served. The library default is
    /// None; the command line's is 127.0.0.1:9464.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Also send every dead letter to this Kafka topic (at least once); None: Parquet only.
    pub dead_letter_topic: Option<String>,
    /// When a partition's log is found reset (its offsets went below what the files hold: a topic
    /// recreated, a broker that lost its log), start a new offset epoch at the log's start instead
    /// of stopping the partition. The old files stay as they are. Default false.
    pub accept_offset_reset: bool,
}

impl IngestConfig {
    /// A configuration with every default, reading from `brokers` and writing to `out_dir`.
    pub fn new(brokers: impl Into<String>, out_dir: impl Into<PathBuf>) -> Self {
        IngestConfig {
            brokers: brokers.into(),
            group_id: "shiftright-ingest".into(),
            requests_topic: "requests".into(),
            business_topic: "business".into(),
            exposures_topic: "exposures".into(),
            out_dir: out_dir.into(),
            flush_rows: 100_000,
            flush_bytes: 64 << 20,
            flush_interval: Duration::from_secs(10),
            flush_caught_up: Duration::from_millis(500),
            max_buffer_bytes: 256 << 20,
            max_message_bytes: 1 << 20,
            max_event_age: Duration::from_secs(30 * 24 * 3600),
            max_event_future: Duration::from_secs(3600),
            synthetic_prefixes: vec!["synthetic-".into(), "test-".into()],
            idle_exit: None,
            kafka_options: Vec::new(),
            metrics_addr: None,
            dead_letter_topic: None,
            accept_offset_reset: false,
        }
    }

    /// The event table a topic feeds, if it is one of ours.
    pub fn table_of(&self, topic: &str) -> Option<Table> {
        if topic == self.requests_topic {
            Some(Table::Requests)
        } else if topic == self.business_topic {
            Some(Table::Business)
        } else if topic == self.exposures_topic {
            Some(Table::Exposures)
        } else {
            None
        }
    }

    /// The topics to subscribe to.
    pub fn topics(&self) -> [&str; 3] {
        [
            &self.requests_topic,
            &self.business_topic,
            &self.exposures_topic,
        ]
    }

    /// Checks the settings against each other; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.brokers.trim().is_empty() {
            return bad("brokers is empty: pass --brokers host:port".into());
        }
        if self.group_id.trim().is_empty() {
            return bad("group id is empty".into());
        }
        let topics = self.topics();
        for (i, topic) in topics.iter().enumerate() {
            if topic.is_empty() {
                return bad("a topic name is empty".into());
            }
            if topic.len() > MAX_TOPIC_BYTES {
                return bad(format!(
                    "topic {topic:?} is {} bytes; the ingest names its files after the topic and takes at most {MAX_TOPIC_BYTES}",
                    topic.len()
                ));
            }
            if topics[..i].contains(topic) {
                return bad(format!(
                    "topic {topic:?} is configured for two tables; each table needs its own topic"
                ));
            }
        }
        if let Some(dlt) = &self.dead_letter_topic {
            if topics.contains(&dlt.as_str()) {
                return bad(format!("the dead-letter topic {dlt:?} is also an event topic; it would read its own rejects"));
            }
        }
        if self.flush_rows == 0 {
            return bad("flush rows must be at least 1".into());
        }
        if self.flush_bytes == 0 || self.max_buffer_bytes == 0 {
            return bad("flush bytes and the buffer budget must be positive".into());
        }
        if self.max_buffer_bytes < self.max_message_bytes {
            return bad(format!(
                "the buffer budget ({} bytes) is smaller than one message may be ({} bytes)",
                self.max_buffer_bytes, self.max_message_bytes
            ));
        }
        if self.flush_interval.is_zero() || self.flush_caught_up.is_zero() {
            return bad("flush intervals must be positive".into());
        }
        Ok(())
    }
}
