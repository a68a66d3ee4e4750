//! The ingest's `/metrics` exposition, written by `prometheus-client` rather than by hand.
//!
//! The pipeline counts in [`IngestStats`]' atomics, updated on its hot path without a lock; a
//! [`Collector`] reads them at each scrape and hands them to the client library as constant
//! metrics, so the text format (escaping, `_total` suffixes, histogram buckets, `# EOF`) is the
//! library's. The metric names are the ones the ingest has always exposed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::decode::RejectReason;
use crate::stats::{IngestStats, PartitionGauges, FLUSH_BUCKETS, TABLES};

/// The content type of the OpenMetrics text format, which Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition of `stats` now.
pub fn render(stats: &Arc<IngestStats>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(Arc::clone(stats))));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Scrape(Arc<IngestStats>);

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// One family: its descriptor, then one sample per label set.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One family of a single sample without labels.
fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: M,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter(value: u64) -> ConstCounter<u64> {
    ConstCounter::new(value)
}

type Labels = Vec<(&'static str, String)>;

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let c = MetricType::Counter;
        single(
            &mut e,
            "shiftright_messages_consumed",
            "Kafka messages read.",
            counter(get(&s.messages)),
        )?;
        let per_table = |values: &[AtomicU64; 4]| {
            TABLES
                .iter()
                .zip(values)
                .map(|(t, v)| (vec![("table", t.name().to_string())], counter(get(v))))
                .collect::<Vec<_>>()
        };
        family(
            &mut e,
            "shiftright_rows_written",
            "Rows made durable, per table.",
            c,
            per_table(&s.rows),
        )?;
        family(
            &mut e,
            "shiftright_bytes_written",
            "Parquet bytes made durable, per table.",
            c,
            per_table(&s.bytes),
        )?;
        family(
            &mut e,
            "shiftright_files_written",
            "Parquet files made durable, per table.",
            c,
            per_table(&s.files),
        )?;
        let reasons = RejectReason::ALL
            .iter()
            .zip(&s.dead_letters)
            .map(|(r, n)| (vec![("reason", r.code().to_string())], counter(get(n))));
        family(
            &mut e,
            "shiftright_dead_letters",
            "Rejected messages made durable, by reason.",
            c,
            reasons,
        )?;
        {
            let flushes = get(&s.flushes);
            let mut buckets: Vec<(f64, u64)> = FLUSH_BUCKETS
                .iter()
                .zip(&s.flush_buckets)
                .map(|(bound, n)| (*bound, get(n)))
                .collect();
            let bounded: u64 = buckets.iter().map(|(_, n)| n).sum();
            buckets.push((f64::INFINITY, flushes.saturating_sub(bounded)));
            let sum = get(&s.flush_micros) as f64 / 1e6;
            let mut histogram = e.encode_descriptor(
                "shiftright_flush_duration_seconds",
                "Time to make one flush batch durable.",
                None,
                MetricType::Histogram,
            )?;
            histogram.encode_histogram::<Labels>(sum, flushes, &buckets, None)?;
        }
        let partitions = s.partitions();
        let gauge = |pick: fn(&PartitionGauges) -> Option<i64>| {
            partitions
                .iter()
                .filter_map(|(tp, g)| {
                    let labels = vec![
                        ("topic", tp.topic.clone()),
                        ("partition", tp.partition.to_string()),
                    ];
                    pick(g).map(|v| (labels, ConstGauge::new(v)))
                })
                .collect::<Vec<_>>()
        };
        let g = MetricType::Gauge;
        family(
            &mut e,
            "shiftright_next_durable_offset",
            "One past the last offset in durable files, per partition.",
            g,
            gauge(|g| g.next_durable_offset),
        )?;
        family(
            &mut e,
            "shiftright_consumer_lag",
            "High watermark minus committed offset, per partition.",
            g,
            gauge(|g| g.lag),
        )?;
        family(
            &mut e,
            "shiftright_partition_stopped",
            "1 for a partition stopped because its log went below the durable offsets.",
            g,
            gauge(|g| g.stopped.then_some(1)),
        )?;
        let resets = ["stopped", "accepted"]
            .iter()
            .zip(&s.offset_resets)
            .map(|(action, n)| (vec![("action", action.to_string())], counter(get(n))));
        family(
            &mut e,
            "shiftright_offset_resets",
            "Partition logs found reset below the durable offsets, by what was done.",
            c,
            resets,
        )?;
        single(
            &mut e,
            "shiftright_batches_quarantined",
            "Damaged flush batches moved to _quarantine/ at recovery (their rows are read again).",
            counter(get(&s.quarantined)),
        )
    }
}
