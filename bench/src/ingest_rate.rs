//! The ingest benchmark: a broker holding a backlog of request events over several partitions; a
//! bare rdkafka consumer reads it and throws it away (the ceiling on this machine), then the ingest
//! reads it into durable Parquet, then the bare consumer again, all in one run, so the ratio
//! compares like with like.
//!
//! The backlog lives on tansu (librdkafka's mock keeps only about 5 MB per partition). Completeness
//! is judged by counting messages and durable rows, never by high watermarks (tansu's under-report).
//! No consumer restarts here, so the producer may batch (tansu loses messages only when a consumer
//! resumes inside a producer batch).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use shiftright_ingest::{IngestConfig, IngestStats};
use shiftright_schemas::Table;
use shiftright_traffic::{generate, RawSink, TopicNames};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::parquet_gen::scenario_for;

/// What to run.
#[derive(Debug, Clone)]
pub struct IngestBenchConfig {
    /// Messages in the backlog (request events, and the scenario's share of malformed ones).
    pub events: u64,
    /// Partitions of the requests topic.
    pub partitions: u32,
    /// An existing broker holding nothing yet; None: start tansu.
    pub brokers: Option<String>,
    /// Where the ingest writes.
    pub out_dir: PathBuf,
    /// Generator seed.
    pub seed: u64,
    /// Give up on any phase after this long.
    pub timeout: Duration,
    /// Group sizes to run the ingest at, each over the whole backlog (e.g. 1, 2, 4).
    pub instances: Vec<usize>,
}

/// How long one consumer took over the whole backlog.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// From creating the consumer (group join included) to the last message (the ingest: to the
    /// last row durable).
    pub total: Duration,
    /// From the first message received to the end.
    pub from_first: Duration,
}

impl Pass {
    /// Messages per second from the first message.
    pub fn rate(&self, messages: u64) -> f64 {
        messages as f64 / self.from_first.as_secs_f64()
    }
}

/// The figures.
#[derive(Debug, Clone)]
pub struct IngestBenchResult {
    /// Messages in the backlog.
    pub messages: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// Time to produce the backlog.
    pub produce: Duration,
    /// The bare consumer, before and after the ingest.
    pub raw: [Pass; 2],
    /// The ingest, one group member.
    pub ingest: Pass,
    /// The ingest at each group size of `instances`: the pass, and the rows each member made
    /// durable.
    pub scaling: Vec<(Pass, Vec<u64>)>,
    /// Rows and dead letters the ingest made durable.
    pub durable: u64,
    /// Parquet bytes written.
    pub parquet_bytes: u64,
    /// Parquet files written.
    pub files: u64,
}

impl IngestBenchResult {
    /// The ingest's rate over the mean of the two bare passes.
    pub fn ratio(&self) -> f64 {
        let raw = (self.raw[0].rate(self.messages) + self.raw[1].rate(self.messages)) / 2.0;
        self.ingest.rate(self.messages) / raw
    }
}

struct StopAtCount;

/// Produces the backlog; returns (messages, payload bytes).
fn produce_backlog(brokers: &str, topic: &str, config: &IngestBenchConfig) -> Result<(u64, u64)> {
    let options: Vec<(String, String)> = [
        ("linger.ms", "20"),
        ("batch.num.messages", "10000"),
        ("batch.size", "1048576"),
        ("queue.buffering.max.messages", "500000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sink = RawSink::with_options(brokers, &options)?;
    // A little more traffic than needed, cut at exactly `events` request-topic messages.
    let scenario = scenario_for(config.events + config.events / 5, config.seed);
    let now = chrono::Utc::now().timestamp_millis();
    let (mut sent, mut bytes) = (0u64, 0u64);
    let mut failure = None;
    let outcome = generate(&scenario, now, &mut |m| {
        if m.table != Table::Requests {
            return Ok(());
        }
        if let Err(e) = sink.send(topic, Some(&m.key), &m.payload) {
            failure = Some(e);
            return Err(StopAtCount);
        }
        sent += 1;
        bytes += m.payload.len() as u64;
        if sent == config.events {
            Err(StopAtCount)
        } else {
            Ok(())
        }
    });
    if let Some(e) = failure {
        return Err(e.into());
    }
    if outcome.is_ok() {
        return Err(Error::Incomplete(format!(
            "the scenario made only {sent} request messages of {}",
            config.events
        )));
    }
    sink.finish(config.timeout)?;
    Ok((sent, bytes))
}

/// A bare consumer: reads `expected` messages of the requests topic and discards them.
fn raw_pass(brokers: &str, expected: u64, timeout: Duration) -> Result<Pass> {
    let started = Instant::now();
    let group = format!(
        "bench-raw-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    // The ingest's own fetch settings, so that the ceiling is one the ingest could reach.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("queued.max.messages.kbytes", "32768")
        .create()
        .map_err(|source| Error::Kafka {
            context: format!("creating the bare consumer for {brokers}"),
            source,
        })?;
    consumer
        .subscribe(&[TopicNames::default().requests.as_str()])
        .map_err(|source| Error::Kafka {
            context: "subscribing the bare consumer".into(),
            source,
        })?;
    let mut first = None;
    let mut seen = 0u64;
    let mut checksum = 0u64;
    while seen < expected {
        if started.elapsed() > timeout {
            return Err(Error::Incomplete(format!(
                "the bare consumer read {seen} of {expected} messages in {timeout:?}"
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                first.get_or_insert_with(Instant::now);
                // Touch the payload so the read is not optimised away; then discard it.
                checksum = checksum.wrapping_add(message.payload().map_or(0, |p| p.len() as u64));
                seen += 1;
            }
            Some(Err(e)) => tracing::warn!(error = %e, "bare consumer: Kafka error; retrying"),
            None => {}
        }
    }
    let end = Instant::now();
    tracing::debug!(checksum, "bare consumer done");
    Ok(Pass {
        total: end - started,
        from_first: end - first.unwrap_or(started),
    })
}

/// What an ingest pass reads.
enum Backlog {
    /// The backlog already on the requests topic.
    There { messages: u64 },
    /// A backlog of the configured size produced to this new topic once every member holds
    /// partitions of it.
    ToCome { topic: String },
}

/// The ingest with its defaults as `members` members of one new group (in this process, each
/// with its own consumer, buffers and writer, writing to `out`), until `expected` messages are
/// durable (rows + dead letters). Returns the pass, each member's durable rows, the bytes and
/// the files.
async fn ingest_pass(
    brokers: &str,
    config: &IngestBenchConfig,
    out: &std::path::Path,
    members: usize,
    backlog: Backlog,
) -> Result<(Pass, Vec<u64>, u64, u64)> {
    let group = format!("bench-ingest-{}", chrono::Utc::now().timestamp_micros());
    let shutdown = CancellationToken::new();
    let mut started = Instant::now();
    let mut running = Vec::with_capacity(members);
    let topic = match &backlog {
        Backlog::There { .. } => "requests".to_string(),
        Backlog::ToCome { topic } => topic.clone(),
    };
    for _ in 0..members {
        let mut ingest = IngestConfig::new(brokers, out);
        ingest.group_id = group.clone();
        ingest.requests_topic = topic.clone();
        let stats = Arc::new(IngestStats::default());
        let task = tokio::spawn(shiftright_ingest::run(
            ingest,
            shutdown.clone(),
            stats.clone(),
        ));
        running.push((task, stats));
    }
    let durable = |running: &[(_, Arc<IngestStats>)]| -> Vec<u64> {
        running
            .iter()
            .map(|(_, s)| {
                let now = s.snapshot();
                now.request_rows + now.dead_letters
            })
            .collect()
    };
    let config_events = config.events;
    let mut producer = None;
    let expected = match backlog {
        Backlog::There { messages } => messages,
        Backlog::ToCome { .. } => {
            // Every member joined and holding partitions before the burst arrives, so that no
            // partition moves mid-stream (tansu loses messages when a consumer resumes inside a
            // producer batch): each member's statistics list the partitions it holds.
            let deadline = Instant::now() + Duration::from_secs(30);
            let holding = |s: &IngestStats| s.partitions().keys().any(|tp| tp.topic == topic);
            while !running.iter().all(|(_, s)| holding(s)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(6)).await;
            // The clock starts with the burst: the members read it while it is produced.
            started = Instant::now();
            let (brokers, config, topic) = (brokers.to_string(), config.clone(), topic.clone());
            producer = Some(tokio::task::spawn_blocking(move || {
                produce_backlog(&brokers, &topic, &config)
            }));
            config_events
        }
    };
    let mut first = None;
    let end = loop {
        if running.iter().any(|(_, s)| s.snapshot().messages > 0) {
            first.get_or_insert_with(Instant::now);
        }
        let total: u64 = durable(&running).iter().sum();
        if total >= expected {
            break Instant::now();
        }
        let failed = running.iter().any(|(task, _)| task.is_finished());
        if failed || started.elapsed() > config.timeout {
            shutdown.cancel();
            for (task, _) in running {
                task.await
                    .map_err(|e| Error::Incomplete(format!("an ingest task: {e}")))??;
            }
            return Err(Error::Incomplete(format!(
                "{members} ingest member(s) made {total} of {expected} messages durable in {:?}",
                started.elapsed()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let shares = durable(&running);
    shutdown.cancel();
    if let Some(producer) = producer {
        producer
            .await
            .map_err(|e| Error::Incomplete(format!("the producer task: {e}")))??;
    }
    let (mut bytes, mut files) = (0, 0);
    for (task, _) in running {
        let summary = task
            .await
            .map_err(|e| Error::Incomplete(format!("an ingest task: {e}")))??;
        bytes += summary.bytes;
        files += summary.files;
    }
    let pass = Pass {
        total: end - started,
        from_first: end - first.unwrap_or(started),
    };
    Ok((pass, shares, bytes, files))
}

/// Runs the benchmark; `progress` hears each phase.
pub async fn run(
    config: &IngestBenchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<IngestBenchResult> {
    let (brokers, tansu) = crate::broker(config.brokers.as_deref(), config.partitions, progress)?;
    progress(&format!(
        "producing {} request messages to {brokers}…",
        config.events
    ));
    let produce_started = Instant::now();
    let (messages, payload_bytes) = {
        let (brokers, config) = (brokers.clone(), config.clone());
        tokio::task::spawn_blocking(move || produce_backlog(&brokers, "requests", &config))
            .await
            .map_err(|e| Error::Incomplete(format!("the producer task: {e}")))??
    };
    let produce = produce_started.elapsed();
    progress(&format!(
        "backlog: {messages} messages, {:.0} MiB of payload, produced in {:.1} s",
        payload_bytes as f64 / (1 << 20) as f64,
        produce.as_secs_f64()
    ));
    let raw_once = || {
        let brokers = brokers.clone();
        let timeout = config.timeout;
        async move {
            let pass = tokio::task::spawn_blocking(move || raw_pass(&brokers, messages, timeout))
                .await
                .map_err(|e| Error::Incomplete(format!("the bare consumer task: {e}")))??;
            Ok::<_, Error>(pass)
        }
    };
    let raw_before = raw_once().await?;
    progress(&format!(
        "bare consumer: {:.0} msg/s",
        raw_before.rate(messages)
    ));
    let (ingest, shares, parquet_bytes, files) = ingest_pass(
        &brokers,
        config,
        &config.out_dir.join("one"),
        1,
        Backlog::There { messages },
    )
    .await?;
    let durable = shares.iter().sum();
    progress(&format!("ingest: {:.0} msg/s", ingest.rate(messages)));
    let raw_after = raw_once().await?;
    progress(&format!(
        "bare consumer again: {:.0} msg/s",
        raw_after.rate(messages)
    ));
    let mut scaling = Vec::new();
    for &members in &config.instances {
        let Some(tansu) = &tansu else {
            progress("the group sizes need a topic per size: only with the tansu started here");
            break;
        };
        let topic = format!("requests-members-{members}");
        tansu.create_topic(&topic, config.partitions)?;
        let out = config.out_dir.join(format!("members-{members}"));
        let (pass, shares, _, _) =
            ingest_pass(&brokers, config, &out, members, Backlog::ToCome { topic }).await?;
        progress(&format!(
            "ingest, {members} member(s): {:.0} msg/s, shares {shares:?}",
            pass.rate(messages)
        ));
        scaling.push((pass, shares));
    }
    drop(tansu);
    Ok(IngestBenchResult {
        scaling,
        messages,
        payload_bytes,
        produce,
        raw: [raw_before, raw_after],
        ingest,
        durable,
        parquet_bytes,
        files,
    })
}

/// The figures as Markdown.
pub fn to_markdown(r: &IngestBenchResult) -> String {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let line = |name: &str, p: &Pass| {
        format!(
            "| {name} | {:.1} s | {:.1} s | {:.0} | {:.1} |\n",
            p.total.as_secs_f64(),
            p.from_first.as_secs_f64(),
            p.rate(r.messages),
            mib(r.payload_bytes) / p.from_first.as_secs_f64(),
        )
    };
    let mut out = format!(
        "Backlog: {} request messages ({:.0} MiB of JSON payload), produced in {:.1} s.\n\n\
         | consumer | total (with group join) | first message to last | messages/s | payload MiB/s |\n\
         |---|---:|---:|---:|---:|\n",
        r.messages,
        mib(r.payload_bytes),
        r.produce.as_secs_f64()
    );
    out.push_str(&line("bare rdkafka consumer (discards)", &r.raw[0]));
    out.push_str(&line("shiftright ingest → durable Parquet", &r.ingest));
    out.push_str(&line("bare rdkafka consumer, again", &r.raw[1]));
    out.push_str(&format!(
        "\nIngest / bare consumer (mean of both passes), from the first message: **{:.0}%**. \
         Durable: {} rows and dead letters in {} files, {:.0} MiB of Parquet.\n",
        r.ratio() * 100.0,
        r.durable,
        r.files,
        mib(r.parquet_bytes)
    ));
    if !r.scaling.is_empty() {
        out.push_str(
            "\nOne consumer group of N ingest members (each its own consumer, buffers and writer, \
             in this process); for each N a new topic of as many partitions: once every member \
             holds partitions, the same backlog is produced to it as fast as the producer goes, \
             and the clock runs from the first message sent to the last row durable:\n\n\
             | members | first message sent to last row durable | messages/s | vs 1 member | each member's share of the rows |\n\
             |---:|---:|---:|---:|---|\n",
        );
        let burst_rate = |p: &Pass| r.messages as f64 / p.total.as_secs_f64();
        let one = r.scaling.first().map(|(p, _)| burst_rate(p));
        for (pass, shares) in &r.scaling {
            let total: u64 = shares.iter().sum::<u64>().max(1);
            let split: Vec<String> = shares
                .iter()
                .map(|s| format!("{:.0}%", *s as f64 * 100.0 / total as f64))
                .collect();
            out.push_str(&format!(
                "| {} | {:.1} s | {:.0} | {} | {} |\n",
                shares.len(),
                pass.total.as_secs_f64(),
                burst_rate(pass),
                one.map_or("".into(), |one| format!("{:.2}×", burst_rate(pass) / one)),
                split.join(" / ")
            ));
        }
    }
    out
}
