//! shiftright's streaming ingest: a Kafka consumer group that validates request, business and
//! exposure events and writes them as Hive-partitioned Parquet under
//! `OUT/<table>/date=YYYY-MM-DD/experiment=<key>/`.
//!
//! # The guarantee
//! Every message of the subscribed topics ends as exactly one row of its table or one dead letter
//! (`OUT/_dead_letters/`), with no duplicates caused by the ingest itself:
//! - a partition's buffered messages are written as one *flush batch* of files, each written under
//!   a temporary name, fsynced, renamed, and its directory fsynced; a batch records its partition and
//!   offset range in its file names and Parquet metadata;
//! - on every assignment a partition resumes at one past the newest complete batch on disk, so a
//!   crash between writing and committing neither loses nor repeats rows; incomplete batches and
//!   temporary files are removed first;
//! - Kafka offsets are committed only after a batch is durable, so lag tools show the truth;
//! - on revocation a partition's unwritten rows are dropped, never written late: the next owner
//!   reads them again from the durable offset;
//! - a partition whose Kafka log went below its durable offsets (a topic recreated, a broker that
//!   lost its log) is stopped, never silently skipped (`continuity`);
//! - one ingest group at a time writes to an output directory (`lock`), and one process of it
//!   at a time to a partition, a frozen one that lost it included (`partition_lock`);
//! - `compact` merges small files and `retain` removes old dates without ever splitting what
//!   readers and recovery count as one batch.
//!
//! Duplicates *sent by producers* (a retry resending an `event_id`) are not removed here; the
//! analysis counts each `event_id` once.

pub mod buffer;
pub mod columns;
pub mod compact;
pub mod config;
pub mod consumer;
pub mod continuity;
pub mod dead_letters;
pub mod decode;
pub mod error;
pub mod exposition;
pub mod lock;
pub mod metrics;
pub mod offsets;
pub mod partition_lock;
pub mod pipeline;
pub mod retain;
pub mod stats;
mod stored;
pub mod writer;

pub use config::IngestConfig;
pub use decode::{Decoder, Event, RejectReason, Rejection};
pub use error::{Error, Result};
pub use pipeline::run;
pub use stats::{IngestStats, IngestSummary};
