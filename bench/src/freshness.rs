//! Streaming freshness: how long from an event's produce to its row being queryable, with the
//! ingest at its default flush settings while a producer keeps up a steady load.
//!
//! Each event carries its send time as `ts`. A watcher lists the output every 25 ms; a file is
//! queryable the moment it appears under its final name (the ingest renames a fully written,
//! fsynced file into place), so each of its rows' freshness is the time the watcher first saw the
//! file minus the row's `ts`. The watcher's own period adds up to 25 ms.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, TimestampMillisecondArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use shiftright_ingest::{IngestConfig, IngestStats};
use shiftright_traffic::{RawSink, TopicNames};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct FreshnessConfig {
    /// Request events per second.
    pub rate: u64,
    /// How long to produce.
    pub duration: Duration,
    /// Partitions of the requests topic.
    pub partitions: u32,
    /// An existing broker; None: start tansu.
    pub brokers: Option<String>,
    /// Where the ingest writes.
    pub out_dir: PathBuf,
}

/// The figures.
#[derive(Debug, Clone)]
pub struct FreshnessResult {
    /// Events produced.
    pub produced: u64,
    /// Rows seen in queryable files.
    pub seen: u64,
    /// The producer's achieved rate.
    pub achieved_rate: f64,
    /// Freshness quantiles, milliseconds: p50, p90, p99, max.
    pub quantiles_ms: [i64; 4],
    /// Flush settings in force.
    pub flush: String,
    /// Request files and their bytes as the ingest wrote them, and after `shiftright compact`.
    pub files: [(usize, u64); 2],
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Produces `rate` events a second for `duration`, each stamped with its send time.
fn produce_steady(brokers: &str, rate: u64, duration: Duration, stop: &AtomicBool) -> Result<u64> {
    let sink = RawSink::new(brokers)?;
    let topic = TopicNames::default().requests;
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration && !stop.load(Ordering::Relaxed) {
        // Catch up to where a steady producer would be now, then sleep a tick.
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let user = format!("user-{:07}", sent % 100_000);
            let payload = format!(
                r#"{{"event_id":"fresh-{sent}","ts":{},"user_id":"{user}","experiment":"freshness","variant":"v1","status":200,"latency_ms":12.5,"endpoint":"GET /"}}"#,
                now_ms()
            );
            sink.send(&topic, Some(&user), payload.as_bytes())?;
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    sink.finish(Duration::from_secs(60))?;
    Ok(sent)
}

/// Parquet files under `dir`, recursively.
fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            parquet_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
}

/// The `ts` column of a file, epoch milliseconds.
fn timestamps(path: &Path) -> Result<Vec<i64>> {
    let parquet_err = |source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let index = builder
        .schema()
        .index_of("ts")
        .map_err(|e| parquet_err(parquet::errors::ParquetError::ArrowError(e.to_string())))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let reader = builder.with_projection(mask).build().map_err(parquet_err)?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch
            .map_err(|e| parquet_err(parquet::errors::ParquetError::ArrowError(e.to_string())))?;
        if let Some(ts) = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
        {
            out.extend(ts.iter().flatten());
        }
    }
    Ok(out)
}

/// Files seen so far, and the freshness of each of their rows.
struct Watcher {
    dir: PathBuf,
    known: HashSet<PathBuf>,
    freshness_ms: Vec<i64>,
}

impl Watcher {
    /// Lists the output; every new file's rows are as fresh as now minus their `ts`.
    fn scan(&mut self) -> Result<()> {
        let seen_at = now_ms();
        let mut files = Vec::new();
        parquet_files(&self.dir, &mut files);
        for file in files {
            if !self.known.contains(&file) {
                let ts = timestamps(&file)?;
                self.freshness_ms
                    .extend(ts.into_iter().map(|ts| seen_at - ts));
                self.known.insert(file);
            }
        }
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.freshness_ms.len() as u64
    }
}

/// Runs the benchmark.
pub async fn run(
    config: &FreshnessConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<FreshnessResult> {
    let (brokers, tansu) = crate::broker(config.brokers.as_deref(), config.partitions, progress)?;
    let ingest = IngestConfig::new(&brokers, &config.out_dir);
    let flush = format!(
        "{} rows or {} MiB per partition, or {} s, or {} ms once read to the end of the log",
        ingest.flush_rows,
        ingest.flush_bytes >> 20,
        ingest.flush_interval.as_secs(),
        ingest.flush_caught_up.as_millis()
    );
    let shutdown = CancellationToken::new();
    let stats = Arc::new(IngestStats::default());
    let task = tokio::spawn(shiftright_ingest::run(
        ingest,
        shutdown.clone(),
        stats.clone(),
    ));
    let outcome = watch(config, progress, &brokers, &flush, &stats, &task).await;
    shutdown.cancel();
    let stopped = task
        .await
        .map_err(|e| Error::Incomplete(format!("the ingest task: {e}")));
    drop(tansu);
    let mut result = outcome?;
    stopped??;
    // What readers list, as written and once compaction has merged it.
    let out = config.out_dir.clone();
    result.files = tokio::task::spawn_blocking(move || -> Result<[(usize, u64); 2]> {
        let before = file_sizes(&out.join("requests"));
        let options = shiftright_ingest::compact::CompactOptions {
            older_than: Duration::ZERO,
            ..Default::default()
        };
        shiftright_ingest::compact::compact(&out, &options)?;
        Ok([before, file_sizes(&out.join("requests"))])
    })
    .await
    .map_err(|e| Error::Incomplete(format!("the compaction task: {e}")))??;
    Ok(result)
}

/// Parquet files under `dir` and their bytes.
fn file_sizes(dir: &Path) -> (usize, u64) {
    let mut files = Vec::new();
    parquet_files(dir, &mut files);
    let bytes = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    (files.len(), bytes)
}

/// Produces the load while watching the output, until every produced row is queryable.
async fn watch(
    config: &FreshnessConfig,
    progress: &mut dyn FnMut(&str),
    brokers: &str,
    flush: &str,
    stats: &IngestStats,
    task: &tokio::task::JoinHandle<shiftright_ingest::Result<shiftright_ingest::IngestSummary>>,
) -> Result<FreshnessResult> {
    // Start the load once the ingest consumes, so the group join is not counted: one business
    // event (not watched) shows that it has joined and holds every partition.
    let warm_up = RawSink::new(brokers)?;
    let payload = format!(
        r#"{{"event_id":"warm-up","ts":{},"user_id":"user-0","kind":"engagement"}}"#,
        now_ms()
    );
    warm_up.send(
        &TopicNames::default().business,
        Some("user-0"),
        payload.as_bytes(),
    )?;
    warm_up.finish(Duration::from_secs(30))?;
    let join_deadline = Instant::now() + Duration::from_secs(60);
    while stats.snapshot().messages == 0 {
        if Instant::now() > join_deadline || task.is_finished() {
            return Err(Error::Incomplete(
                "the ingest got no partitions within 60 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    progress(&format!(
        "producing {} events/s for {} s to {brokers}; the ingest flushes at {flush}",
        config.rate,
        config.duration.as_secs()
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let producer = {
        let (brokers, stop) = (brokers.to_string(), stop.clone());
        let (rate, duration) = (config.rate, config.duration);
        std::thread::spawn(move || produce_steady(&brokers, rate, duration, &stop))
    };
    let mut watcher = Watcher {
        dir: config.out_dir.join("requests"),
        known: HashSet::new(),
        freshness_ms: Vec::new(),
    };
    let deadline = Instant::now() + config.duration + Duration::from_secs(120);
    while !producer.is_finished() {
        watcher.scan()?;
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let produced = producer
        .join()
        .map_err(|_| Error::Incomplete("the producer thread panicked".into()))??;
    let achieved_rate = produced as f64 / started.elapsed().as_secs_f64();
    progress(&format!(
        "produced {produced} events at {achieved_rate:.0}/s; waiting for the last rows"
    ));
    while watcher.rows() < produced {
        if Instant::now() > deadline || task.is_finished() {
            return Err(Error::Incomplete(format!(
                "{} of {produced} rows were queryable before the deadline",
                watcher.rows()
            )));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        watcher.scan()?;
    }
    if produced == 0 {
        return Err(Error::Incomplete("the producer sent nothing".into()));
    }
    let mut f = watcher.freshness_ms;
    f.sort_unstable();
    let q = |p: f64| f[((f.len() - 1) as f64 * p).round() as usize];
    Ok(FreshnessResult {
        produced,
        seen: f.len() as u64,
        achieved_rate,
        quantiles_ms: [q(0.5), q(0.9), q(0.99), q(1.0)],
        flush: flush.to_string(),
        files: [(0, 0); 2],
    })
}

/// The figures as Markdown.
pub fn to_markdown(r: &FreshnessResult) -> String {
    let s = |ms: i64| format!("{:.2} s", ms as f64 / 1000.0);
    let mean = |(files, bytes): (usize, u64)| bytes as f64 / files.max(1) as f64 / (1 << 20) as f64;
    let [written, compacted] = r.files;
    let files = format!(
        "\nRequest files readers list: {} as written (mean {:.2} MiB); {} after `shiftright compact` \
         (mean {:.2} MiB).\n",
        written.0,
        mean(written),
        compacted.0,
        mean(compacted)
    );
    let table = format!(
        "Load: {} events at {:.0}/s; ingest defaults ({}).\n\n\
         | produce → queryable | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|\n\
         | {} rows | {} | {} | {} | {} |\n",
        r.produced,
        r.achieved_rate,
        r.flush,
        r.seen,
        s(r.quantiles_ms[0]),
        s(r.quantiles_ms[1]),
        s(r.quantiles_ms[2]),
        s(r.quantiles_ms[3]),
    );
    table + &files
}
