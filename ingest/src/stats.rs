//! Counters of the ingest's progress, shared with whoever started it (the demo waits on them, a
//! Prometheus endpoint can export them) and summed up when it stops.

use std::sync::atomic::{AtomicU64, Ordering};

use shiftright_schemas::Table;

/// Live counters; cheap to update from the pipeline and to read from anywhere.
#[derive(Debug, Default)]
pub struct IngestStats {
    messages: AtomicU64,
    rows: [AtomicU64; 3],
    dead_letters: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
    flushes: AtomicU64,
}

/// A copy of the counters at one moment.
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

fn table_index(table: Table) -> Option<usize> {
    match table {
        Table::Requests => Some(0),
        Table::Business => Some(1),
        Table::Exposures => Some(2),
        Table::DeadLetters => None,
    }
}

impl IngestStats {
    /// A message was read.
    pub fn message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    /// A flush batch was made durable.
    pub fn flushed(
        &self,
        table: Table,
        rows: usize,
        dead_letters: usize,
        files: usize,
        bytes: u64,
    ) {
        if let Some(i) = table_index(table) {
            self.rows[i].fetch_add(rows as u64, Ordering::Relaxed);
        }
        self.dead_letters
            .fetch_add(dead_letters as u64, Ordering::Relaxed);
        self.files.fetch_add(files as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> IngestSummary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IngestSummary {
            messages: get(&self.messages),
            request_rows: get(&self.rows[0]),
            business_rows: get(&self.rows[1]),
            exposure_rows: get(&self.rows[2]),
            dead_letters: get(&self.dead_letters),
            files: get(&self.files),
            bytes: get(&self.bytes),
            flushes: get(&self.flushes),
        }
    }
}
