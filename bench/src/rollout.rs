//! A rollout end to end, at the default settings: how long from the first regressed event
//! produced to ROLLBACK at the verdict endpoint and on the decisions topic, and that a healthy
//! canary over the same time is never rolled back; with pollers hammering the endpoint meanwhile,
//! its latency.
//!
//! Everything runs in this process on librdkafka's mock cluster: a producer keeping up `rate`
//! requests a second (a user makes [`REQUESTS_PER_USER`] in a row, users hashed 95/5 into v1 and
//! v2, v1 failing at the baseline rate), the ingest and `serve` as `shiftright ingest` and
//! `shiftright serve` run them (their default flush, interval and staleness), a consumer of the
//! decisions topic, and [`POLL_RATE`]-a-second pollers, each a new connection as Argo's `web`
//! provider makes one. After `warm_up` the canary's error rate is multiplied by `regression`
//! (1: the healthy run).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use shiftright_ingest::{IngestConfig, IngestStats};
use shiftright_serve::{EvaluateConfig, PublishConfig, ServeConfig};
use shiftright_traffic::{EmbeddedBroker, RawSink, TopicNames};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Requests each user makes, one after another.
pub const REQUESTS_PER_USER: u64 = 5;
/// Verdict requests a second while the rollout runs.
pub const POLL_RATE: u64 = 200;
const EXPERIMENT: &str = "rollout-canary";
const DECISIONS: &str = "shiftright.decisions";
const EXPERIMENTS_TOML: &str = r#"[experiments.rollout-canary]
baseline = "v1"
weights = { v1 = 0.95, v2 = 0.05 }
"#;

/// What to run.
#[derive(Debug, Clone)]
pub struct RolloutConfig {
    /// Requests per second, both variants.
    pub rate: u64,
    /// The canary's share of users.
    pub canary_share: f64,
    /// The baseline's error rate.
    pub baseline_errors: f64,
    /// The canary's error rate over the baseline's after `warm_up` (1: healthy).
    pub regression: f64,
    /// Healthy traffic before the regression starts.
    pub warm_up: Duration,
    /// Give up this long after the regression starts (the healthy run lasts this long).
    pub limit: Duration,
    /// serve's evaluation interval (serve's default: 30 s).
    pub interval: Duration,
    /// Where the ingest writes.
    pub out_dir: std::path::PathBuf,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct RolloutResult {
    /// The run's settings.
    pub config: RolloutConfig,
    /// Requests produced.
    pub produced: u64,
    /// From the first regressed event produced to the first poll answering `rollback: true`.
    pub to_endpoint: Option<Duration>,
    /// From the first regressed event produced to the ROLLBACK record on the decisions topic.
    pub to_topic: Option<Duration>,
    /// Every verdict the endpoint gave, in order, with when it first gave it (since the start).
    pub verdicts: Vec<(Duration, String)>,
    /// Latency of the pollers' requests, ms: p50, p99, max; and how many.
    pub poll_ms: [f64; 3],
    /// Polls made, and how many did not answer 200.
    pub polls: (u64, u64),
}

/// One request of user `n`'s, as the services would send it.
fn request(
    sent: u64,
    config: &RolloutConfig,
    regressed: bool,
    rng: &mut impl Rng,
) -> (String, String) {
    let n = sent / REQUESTS_PER_USER;
    let user = format!("user-{n:08}");
    // A stable split by user, as a flag SDK's hashing gives it.
    let unit = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / ((1u64 << 53) as f64);
    let canary = unit < config.canary_share;
    let (variant, error_rate) = match (canary, regressed) {
        (true, true) => ("v2", config.baseline_errors * config.regression),
        (true, false) => ("v2", config.baseline_errors),
        (false, _) => ("v1", config.baseline_errors),
    };
    let status = if rng.random::<f64>() < error_rate {
        500
    } else {
        200
    };
    let latency = 40.0 + 30.0 * -rng.random::<f64>().max(1e-12).ln();
    let payload = format!(
        r#"{{"event_id":"r-{sent}","ts":{},"user_id":"{user}","experiment":"{EXPERIMENT}","variant":"{variant}","status":{status},"latency_ms":{latency:.1},"endpoint":"GET /checkout"}}"#,
        chrono::Utc::now().timestamp_millis()
    );
    (user, payload)
}

/// Produces the traffic until `stop`; sets `regressed_at` when the first regressed event goes.
fn produce(
    brokers: &str,
    config: &RolloutConfig,
    stop: &AtomicBool,
    regressed_at: &Mutex<Option<Instant>>,
) -> Result<u64> {
    let sink = RawSink::new(brokers)?;
    let topic = TopicNames::default().requests;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let started = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = (started.elapsed().as_secs_f64() * config.rate as f64) as u64;
        let regressed = started.elapsed() >= config.warm_up;
        while sent < due {
            if regressed {
                let mut at = regressed_at.lock().unwrap_or_else(|e| e.into_inner());
                at.get_or_insert_with(Instant::now);
            }
            let (user, payload) = request(sent, config, regressed, &mut rng);
            sink.send(&topic, Some(&user), payload.as_bytes())?;
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    sink.finish(Duration::from_secs(30))?;
    Ok(sent)
}

/// One `GET path` on a new connection: the status and the body.
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// Runs one rollout.
pub async fn run(config: &RolloutConfig, progress: &mut dyn FnMut(&str)) -> Result<RolloutResult> {
    let broker = EmbeddedBroker::start(1)?;
    for topic in TopicNames::default().all() {
        broker.create_topic(topic, 3)?;
    }
    broker.create_topic(DECISIONS, 1)?;
    let brokers = broker.bootstrap_servers().to_string();
    std::fs::create_dir_all(&config.out_dir)
        .map_err(|e| Error::io("creating", &config.out_dir, e))?;
    let experiments_file = config.out_dir.join("experiments.toml");
    std::fs::write(&experiments_file, EXPERIMENTS_TOML)
        .map_err(|e| Error::io("writing", &experiments_file, e))?;
    let shutdown = CancellationToken::new();
    let stats = Arc::new(IngestStats::default());
    let ingest = tokio::spawn(shiftright_ingest::run(
        IngestConfig::new(&brokers, &config.out_dir),
        shutdown.clone(),
        stats.clone(),
    ));
    let experiments = shiftright_analyze::ExperimentsFile::load(&experiments_file)
        .map_err(|e| Error::Incomplete(format!("the experiments file: {e}")))?;
    let evaluate = EvaluateConfig {
        data: config.out_dir.clone(),
        experiments,
        read: Default::default(),
        only: Vec::new(),
        interval: config.interval,
        stale_after: Duration::from_secs(120),
        lookback: Duration::from_secs(24 * 3600),
    };
    let serve_config = ServeConfig {
        evaluate,
        bind: "127.0.0.1:0".parse().expect("an address"),
        auth_token_file: None,
        no_auth: false,
        publish: Some(PublishConfig {
            brokers: brokers.clone(),
            topic: DECISIONS.into(),
            heartbeat: Duration::from_secs(30),
            kafka_options: Vec::new(),
        }),
        revisions_file: None,
    };
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(shiftright_serve::serve(
        serve_config,
        shutdown.clone(),
        move |a| {
            let _ = addr_tx.send(a);
        },
    ));
    let addr = addr_rx
        .await
        .map_err(|_| Error::Incomplete("serve did not start".into()))?;
    progress(&format!(
        "{} requests/s, {:.0}% canary, {:.1}% baseline errors, ×{} after {} s; serve on {addr}",
        config.rate,
        config.canary_share * 100.0,
        config.baseline_errors * 100.0,
        config.regression,
        config.warm_up.as_secs()
    ));
    let outcome = observe(config, &brokers, addr, progress).await;
    shutdown.cancel();
    let _ = server.await;
    let _ = ingest.await;
    drop(broker);
    outcome
}

/// Produces, polls and consumes until ROLLBACK is seen on both paths or the limit passes.
async fn observe(
    config: &RolloutConfig,
    brokers: &str,
    addr: SocketAddr,
    progress: &mut dyn FnMut(&str),
) -> Result<RolloutResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let regressed_at = Arc::new(Mutex::new(None::<Instant>));
    let started = Instant::now();
    let producer = {
        let (brokers, config, stop, at) = (
            brokers.to_string(),
            config.clone(),
            stop.clone(),
            regressed_at.clone(),
        );
        std::thread::spawn(move || produce(&brokers, &config, &stop, &at))
    };
    let topic_rollback = Arc::new(Mutex::new(None::<Instant>));
    let consumer = {
        let (brokers, stop, seen) = (brokers.to_string(), stop.clone(), topic_rollback.clone());
        std::thread::spawn(move || consume_decisions(&brokers, &stop, &seen))
    };
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pollers = {
        let (stop, latencies, failures) = (stop.clone(), latencies.clone(), failures.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / POLL_RATE));
            let path = format!("/v1/experiments/{EXPERIMENT}/verdict");
            while !stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                let (latencies, failures, path) =
                    (latencies.clone(), failures.clone(), path.clone());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let ok = matches!(get(addr, &path).await, Ok((200, _)));
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    latencies.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        })
    };
    let mut verdicts: Vec<(Duration, String)> = Vec::new();
    let mut endpoint_rollback = None;
    let path = format!("/v1/experiments/{EXPERIMENT}/verdict");
    let deadline = config.warm_up + config.limit;
    while started.elapsed() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok((200, body)) = get(addr, &path).await else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let verdict = format!(
            "{}{}",
            v["verdict"].as_str().unwrap_or("?"),
            if v["fresh"] == true { "" } else { " (stale)" }
        );
        if verdicts.last().is_none_or(|(_, last)| *last != verdict) {
            progress(&format!("{:>4} s  {verdict}", started.elapsed().as_secs()));
            verdicts.push((started.elapsed(), verdict));
        }
        if v["rollback"] == true && endpoint_rollback.is_none() {
            endpoint_rollback = Some(Instant::now());
        }
        let on_topic = topic_rollback
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if endpoint_rollback.is_some() && on_topic {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let produced = producer
        .join()
        .map_err(|_| Error::Incomplete("the producer panicked".into()))??;
    consumer
        .join()
        .map_err(|_| Error::Incomplete("the decisions consumer panicked".into()))??;
    let _ = pollers.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first_bad = *regressed_at.lock().unwrap_or_else(|e| e.into_inner());
    let since = |t: Option<Instant>| Some(t?.saturating_duration_since(first_bad?));
    let topic_at = *topic_rollback.lock().unwrap_or_else(|e| e.into_inner());
    let mut ms = std::mem::take(&mut *latencies.lock().unwrap_or_else(|e| e.into_inner()));
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| {
        ms.get(((ms.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(RolloutResult {
        config: config.clone(),
        produced,
        to_endpoint: if config.regression > 1.0 {
            since(endpoint_rollback)
        } else {
            None
        },
        to_topic: if config.regression > 1.0 {
            since(topic_at)
        } else {
            None
        },
        verdicts,
        poll_ms: [q(0.5), q(0.99), q(1.0)],
        polls: (ms.len() as u64, failures.load(Ordering::Relaxed)),
    })
}

/// Reads the decisions topic until `stop`, noting when the first ROLLBACK decision arrives.
fn consume_decisions(
    brokers: &str,
    stop: &AtomicBool,
    seen: &Mutex<Option<Instant>>,
) -> Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let kafka = |source| Error::Kafka {
        context: format!("reading {DECISIONS}"),
        source,
    };
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-rollout")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(kafka)?;
    {
        let mut assignment = rdkafka::TopicPartitionList::new();
        assignment
            .add_partition_offset(DECISIONS, 0, rdkafka::Offset::Beginning)
            .map_err(kafka)?;
        consumer.assign(&assignment).map_err(kafka)?;
    }
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let record: serde_json::Value =
            serde_json::from_slice(message.payload().unwrap_or_default()).unwrap_or_default();
        if record["kind"] == "decision" && record["verdict"] == "ROLLBACK" {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(Instant::now);
        }
    }
    Ok(())
}

/// Both runs as Markdown.
pub fn to_markdown(regressed: &RolloutResult, healthy: &RolloutResult) -> String {
    let secs = |d: Option<Duration>| {
        d.map_or("never".to_string(), |d| format!("{:.0} s", d.as_secs_f64()))
    };
    let c = &regressed.config;
    let healthy_verdicts: Vec<&str> = healthy.verdicts.iter().map(|(_, v)| v.as_str()).collect();
    let rolled_back = healthy_verdicts.iter().any(|v| v.starts_with("ROLLBACK"));
    format!(
        "{} requests/s, {:.0}% canary, {:.1}% baseline errors; ingest, serve and the decisions \
         topic at their defaults (flush every 10 s), serve evaluating every {} s (its default: \
         30 s); the regression (canary errors ×{}) starts {} s in.\n\n\
         | run | first regressed event → ROLLBACK at the endpoint | → on the decisions topic | verdicts seen | verdict endpoint under {POLL_RATE} polls/s: p50 / p99 / max |\n\
         |---|---:|---:|---|---:|\n\
         | regressed | {} | {} | {} | {:.1} / {:.1} / {:.1} ms ({} polls, {} not 200) |\n\
         | healthy, {} s | — | — | {} (rolled back: {}) | {:.1} / {:.1} / {:.1} ms ({} polls, {} not 200) |\n",
        c.rate,
        c.canary_share * 100.0,
        c.baseline_errors * 100.0,
        c.interval.as_secs(),
        c.regression,
        c.warm_up.as_secs(),
        secs(regressed.to_endpoint),
        secs(regressed.to_topic),
        regressed.verdicts.iter().map(|(t, v)| format!("{v} at {} s", t.as_secs())).collect::<Vec<_>>().join(", "),
        regressed.poll_ms[0], regressed.poll_ms[1], regressed.poll_ms[2], regressed.polls.0, regressed.polls.1,
        (healthy.config.warm_up + healthy.config.limit).as_secs(),
        healthy_verdicts.join(" → "),
        if rolled_back { "yes" } else { "no" },
        healthy.poll_ms[0], healthy.poll_ms[1], healthy.poll_ms[2], healthy.polls.0, healthy.polls.1,
    )
}
