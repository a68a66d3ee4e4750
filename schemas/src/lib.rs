//! The one place that says what shiftright's data looks like.
//!
//! Producers read the JSON Schemas in `schemas/events/`; the ingest writes, and the analysis reads,
//! Parquet tables whose Arrow schemas are defined here. The two are held equal, field by field, by
//! the tests at the bottom of this file, so a change to one that forgets the other fails the build.
//!
//! Table columns are the event fields with defaults applied (`mode` is never null, `synthetic` is
//! the resolved flag: the producer's field or a synthetic user-id prefix). Dead letters have their own
//! table with the provenance of each rejected message.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The JSON Schema of a request event, as shipped to producers.
pub const REQUEST_JSON_SCHEMA: &str = include_str!("../events/request.schema.json");
/// The JSON Schema of a business event, as shipped to producers.
pub const BUSINESS_JSON_SCHEMA: &str = include_str!("../events/business.schema.json");
/// The JSON Schema of an exposure event, as shipped to producers.
pub const EXPOSURE_JSON_SCHEMA: &str = include_str!("../events/exposure.schema.json");
/// The JSON Schema of the analysis report (`shiftright analyze --format json`).
pub const REPORT_JSON_SCHEMA: &str = include_str!("../report.schema.json");

/// Request modes: `live` served the user, `shadow` is a dark-launch call, `mirror` mirrored traffic.
pub const MODES: [&str; 3] = ["live", "shadow", "mirror"];

/// The largest `latency_ms` a request event may carry (24 hours); larger is a dead letter. The
/// JSON Schema says the same (`maximum`), and a test holds the two equal.
pub const MAX_LATENCY_MS: f64 = 86_400_000.0;

/// The largest magnitude a business event's `value` may have; larger is a dead letter. Squares of
/// values this size still sum without overflow over any realistic number of users.
pub const MAX_ABS_VALUE: f64 = 1e12;

/// Business kinds that count as a conversion.
pub const CONVERSION_KINDS: [&str; 2] = ["conversion", "purchase"];

pub mod keys;
pub use keys::{file_stem, key_hash, partition_value, NO_EXPERIMENT_PARTITION};

pub mod batch;
pub mod coverage;
pub mod history;
pub mod kafka;
pub use batch::{file_metadata, BatchFile};
pub use history::HistoryTable;

/// A table of the Parquet store, one directory under the output root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Request events.
    Requests,
    /// Business events.
    Business,
    /// Exposure events.
    Exposures,
    /// Messages the ingest rejected, with their reason and provenance.
    DeadLetters,
}

impl Table {
    /// The three event tables, in the order their topics are usually listed.
    pub const EVENTS: [Table; 3] = [Table::Requests, Table::Business, Table::Exposures];

    /// Every table the ingest writes: the event tables, then the dead letters.
    pub const WRITTEN: [Table; 4] = [
        Table::Requests,
        Table::Business,
        Table::Exposures,
        Table::DeadLetters,
    ];

    /// Name of the table in SQL, and of its directory under the output root.
    pub fn name(self) -> &'static str {
        match self {
            Table::Requests => "requests",
            Table::Business => "business",
            Table::Exposures => "exposures",
            Table::DeadLetters => "dead_letters",
        }
    }

    /// Directory of the table under the output root.
    pub fn dir_name(self) -> &'static str {
        match self {
            Table::DeadLetters => "_dead_letters",
            other => other.name(),
        }
    }

    /// Parses a table name as used in SQL or on the command line.
    pub fn from_name(name: &str) -> Option<Table> {
        [
            Table::Requests,
            Table::Business,
            Table::Exposures,
            Table::DeadLetters,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }

    /// The Arrow schema of the table's Parquet files.
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<[SchemaRef; 4]> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            [
                requests_schema(),
                business_schema(),
                exposures_schema(),
                dead_letters_schema(),
            ]
            .map(Arc::new)
        });
        let index = match self {
            Table::Requests => 0,
            Table::Business => 1,
            Table::Exposures => 2,
            Table::DeadLetters => 3,
        };
        all[index].clone()
    }

    /// The producer-facing JSON Schema of the table's events; dead letters have none.
    pub fn json_schema(self) -> Option<&'static str> {
        match self {
            Table::Requests => Some(REQUEST_JSON_SCHEMA),
            Table::Business => Some(BUSINESS_JSON_SCHEMA),
            Table::Exposures => Some(EXPOSURE_JSON_SCHEMA),
            Table::DeadLetters => None,
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Event timestamps: milliseconds since the epoch, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn common_fields() -> Vec<Field> {
    vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("ts", timestamp_type(), false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("synthetic", DataType::Boolean, false),
    ]
}

fn requests_schema() -> Schema {
    let mut fields = common_fields();
    fields.extend([
        Field::new("experiment", DataType::Utf8, false),
        Field::new("variant", DataType::Utf8, false),
        Field::new("status", DataType::Int32, false),
        Field::new("latency_ms", DataType::Float64, false),
        Field::new("service", DataType::Utf8, true),
        Field::new("endpoint", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("mode", DataType::Utf8, false),
        Field::new("shadow_match", DataType::Boolean, true),
    ]);
    Schema::new(fields)
}

fn business_schema() -> Schema {
    let mut fields = common_fields();
    fields.extend([
        Field::new("kind", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
        Field::new("experiment", DataType::Utf8, true),
        Field::new("variant", DataType::Utf8, true),
    ]);
    Schema::new(fields)
}

fn exposures_schema() -> Schema {
    let mut fields = common_fields();
    fields.extend([
        Field::new("experiment", DataType::Utf8, false),
        Field::new("variant", DataType::Utf8, false),
        // The allocation at assignment, as canonical JSON text (`{"v1":0.95,"v2":0.05}`).
        Field::new("weights", DataType::Utf8, true),
    ]);
    Schema::new(fields)
}

fn dead_letters_schema() -> Schema {
    Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("kafka_ts", timestamp_type(), true),
        Field::new("received_at", timestamp_type(), false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("key", DataType::Binary, true),
        Field::new("payload", DataType::Binary, true),
    ])
}

#[cfg(test)]
mod agreement_tests;
