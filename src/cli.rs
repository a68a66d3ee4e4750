//! The command line: every flag documented, with its default and its environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod live;
pub use live::{DecisionArgs, FailOn, LiveArgs, ServeArgs, WatchArgs};

const EXIT_CODES: &str = "\
Exit codes:
  0  success; for analyze: every verdict is PROMOTE or CONTINUE
  1  runtime error (the message says what failed and why)
  2  usage error
  3  analyze, watch: ROLLBACK (analyze: at least one experiment's verdict)
  4  analyze, watch: INVALID (and none is ROLLBACK)
  5  watch: no decision within --timeout; analyze --fail-on continue: a CONTINUE
  6  analyze --fail-on promote: a PROMOTE
With --fail-on, analyze exits non-zero only for the verdicts named (default: rollback,invalid);
watch ends 0 on PROMOTE over fresh data.";

/// shiftright: experimentation analytics for teams that test in production.
///
/// Services emit request, business and exposure events to Kafka; `shiftright ingest` writes them
/// exactly once as Hive-partitioned Parquet, and `shiftright analyze` turns them into a verdict per
/// experiment: ROLLBACK, CONTINUE, PROMOTE or INVALID, with its reasons.
/// Try `shiftright demo` first: it needs no setup.
#[derive(Debug, Parser)]
#[command(name = "shiftright", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Log filter (tracing's EnvFilter syntax), e.g. `info`, `shiftright_ingest=debug`.
    #[arg(long, global = true, env = "SHIFTRIGHT_LOG", default_value = "warn")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume events from Kafka and write them as Parquet, exactly once.
    Ingest(IngestArgs),
    /// Analyse experiments over the Parquet output and print a verdict for each.
    #[command(after_help = EXIT_CODES)]
    Analyze(AnalyzeArgs),
    /// Write one day's experiment reports: an HTML page per experiment (verdict, tables, charts,
    /// data quality), an index, and the same as Markdown and JSON.
    Report(ReportArgs),
    /// Run SQL over the Parquet tables (requests, business, exposures, dead_letters) and the
    /// results history (results, decisions); named queries are documented in queries/README.md.
    Query(QueryArgs),
    /// Merge the ingest's small files into large ones and remove dates past a retention horizon;
    /// safe while the ingest runs and after a crash at any point. Run it every hour or so (cron,
    /// a Kubernetes CronJob).
    Compact(CompactArgs),
    /// Generate a reproducible traffic scenario to Kafka or to JSON-lines files.
    Generate(GenerateArgs),
    /// Run the whole pipeline on an embedded broker: a bad canary (ROLLBACK) and a healthy one.
    Demo(DemoArgs),
    /// Serve an embedded Kafka broker (librdkafka's mock cluster) on loopback until interrupted.
    Broker(BrokerArgs),
    /// Keep each live experiment's verdict fresh and serve it over HTTP: for Argo Rollouts (the
    /// `web` provider), Flagger (webhooks), Prometheus (/metrics), and a decisions topic. See the
    /// README's "Gating a rollout".
    Serve(ServeArgs),
    /// Re-evaluate one experiment every interval, print each verdict change, and exit on its
    /// decision: 3 ROLLBACK, 4 INVALID, 0 PROMOTE, 5 at --timeout. For pipelines that gate on a
    /// command (GitHub Actions, Jenkins, Spinnaker).
    #[command(after_help = EXIT_CODES)]
    Watch(WatchArgs),
    /// Produce JSON lines (one message per line) to a topic, e.g. to replay fixed dead letters.
    Produce(ProduceArgs),
    /// Run a Ballista scheduler that knows the analysis' functions; `analyze`, `report` and
    /// `query` run on it with --cluster df://HOST:PORT. See the README's "Running on a cluster".
    Scheduler(SchedulerArgs),
    /// Run a Ballista executor for a `shiftright scheduler`: it runs the plan's tasks, reading the
    /// Parquet itself, so it must see the data at the path the client names.
    Executor(ExecutorArgs),
    /// Measure decision quality: simulated canaries analysed every few minutes by the real verdict
    /// code, fixed against sequential tests (false rollbacks of healthy canaries, time to detect).
    Simulate(SimulateArgs),
    /// Benchmarks, printed as Markdown (see BENCHMARKS.md): ingest against a bare Kafka consumer,
    /// analysis against DuckDB, streaming freshness. Build with --release for figures worth quoting.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// A backlog of request events on a broker (tansu, started here, unless --brokers) read by a
    /// bare rdkafka consumer that discards it, then by the ingest into durable Parquet, then by
    /// the bare consumer again; prints both rates and their ratio.
    Ingest(BenchIngestArgs),
    /// Generated Parquet (written as the ingest writes it) of each size, then a full
    /// `shiftright analyze` and DuckDB's per-variant aggregates over the same files, each timed
    /// with its peak RSS; the data is kept under --work-dir and reused by later runs.
    Analysis(BenchAnalysisArgs),
    /// Produce → queryable time of request events under a steady load, at the ingest's default
    /// flush settings.
    Freshness(BenchFreshnessArgs),
    /// A canary whose error rate rises, end to end on the embedded broker (producer, ingest,
    /// serve and the decisions topic at their defaults): time from the first regressed event to
    /// ROLLBACK at the endpoint and on the topic; then a healthy canary over the same time; the
    /// verdict endpoint's latency under 200 polls a second throughout.
    Rollout(BenchRolloutArgs),
}

#[derive(Debug, Args)]
pub struct BenchRolloutArgs {
    /// Requests per second, both variants.
    #[arg(long, env = "SHIFTRIGHT_BENCH_RATE", default_value_t = 1_000)]
    pub rate: u64,
    /// The canary's share of users.
    #[arg(long, env = "SHIFTRIGHT_BENCH_CANARY_SHARE", default_value_t = 0.05)]
    pub canary_share: f64,
    /// The baseline's error rate.
    #[arg(long, env = "SHIFTRIGHT_BENCH_BASELINE_ERRORS", default_value_t = 0.01)]
    pub baseline_errors: f64,
    /// The canary's error rate over the baseline's once the regression starts.
    #[arg(long, env = "SHIFTRIGHT_BENCH_REGRESSION", default_value_t = 3.0)]
    pub regression: f64,
    /// Healthy traffic before the regression starts.
    #[arg(long, env = "SHIFTRIGHT_BENCH_WARM_UP", default_value = "60s", value_parser = humantime::parse_duration)]
    pub warm_up: Duration,
    /// Give up this long after the regression starts; the healthy run lasts warm-up + limit.
    #[arg(long, env = "SHIFTRIGHT_BENCH_LIMIT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub limit: Duration,
    /// serve's evaluation interval (its own default: 30s); the ingest's flush and serve's
    /// staleness stay at their defaults.
    #[arg(long, env = "SHIFTRIGHT_BENCH_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
}

#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// Messages in the backlog (accepts 5M, 500k).
    #[arg(long, default_value = "5M", value_parser = parse_count)]
    pub events: u64,
    /// Partitions of each topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Use this empty broker instead of starting tansu (its requests topic must exist).
    #[arg(long, env = "SHIFTRIGHT_BENCH_BROKERS")]
    pub brokers: Option<String>,
    /// Where the ingest writes; default: a new directory under the system's temp dir, removed after.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Give up on a phase after this long.
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Then run the ingest as one group of each of these sizes over the same backlog (e.g.
    /// 1,2,4): throughput and each member's share. Empty: skip.
    #[arg(
        long,
        env = "SHIFTRIGHT_BENCH_INSTANCES",
        value_delimiter = ',',
        default_value = "1,2,4"
    )]
    pub instances: Vec<usize>,
}

#[derive(Debug, Args)]
pub struct BenchAnalysisArgs {
    /// Sizes in request events, comma-separated (accepts 1M, 10M, 100M).
    #[arg(long, default_value = "1M,10M", value_delimiter = ',', value_parser = parse_count)]
    pub sizes: Vec<u64>,
    /// Where generated data is kept (one directory per size, reused by later runs).
    #[arg(
        long,
        env = "SHIFTRIGHT_BENCH_DIR",
        default_value = "target/bench-data"
    )]
    pub work_dir: PathBuf,
    /// Skip DuckDB (needs `pip install duckdb`).
    #[arg(long)]
    pub no_duckdb: bool,
    /// Stop DuckDB's same-answers script after this long (e.g. `10m`) and record that it gave
    /// up, instead of waiting: at 100M it needs more memory than most machines have and spills.
    /// Default: no limit.
    #[arg(long, env = "SHIFTRIGHT_BENCH_DUCKDB_TIMEOUT", value_parser = humantime::parse_duration)]
    pub duckdb_timeout: Option<Duration>,
    /// Only generate the data of each size (e.g. ahead of a measured run); measure nothing.
    #[arg(long)]
    pub generate_only: bool,
    /// DuckDB's threads; default: the machine's cores.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Partitions per topic of the simulated ingest.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also run each size on a Ballista cluster started here: a scheduler and this many
    /// executors, sharing the cores; its report must equal the local one. 0: no cluster row.
    #[arg(long, default_value_t = 0)]
    pub cluster_executors: usize,
}

#[derive(Debug, Args)]
pub struct BenchFreshnessArgs {
    /// Request events per second.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// How long to produce.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Partitions of each topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Use this broker instead of starting tansu.
    #[arg(long, env = "SHIFTRIGHT_BENCH_BROKERS")]
    pub brokers: Option<String>,
}

/// A count with an optional k/M suffix: 5M, 500k, 1000.
fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        _ => (t, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a positive count like 5M, 500k or 1000, got {s:?}"))
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Canaries per scenario and method.
    #[arg(long, env = "SHIFTRIGHT_SIM_CANARIES", default_value_t = 1_000)]
    pub canaries: usize,
    /// New users per simulated minute, both variants together.
    #[arg(long, env = "SHIFTRIGHT_SIM_USERS_PER_MINUTE", default_value_t = 100)]
    pub users_per_minute: u32,
    /// The canary's share of users.
    #[arg(long, env = "SHIFTRIGHT_SIM_CANARY_SHARE", default_value_t = 0.05)]
    pub canary_share: f64,
    /// Simulated minutes between analyses.
    #[arg(long, env = "SHIFTRIGHT_SIM_LOOK_EVERY", default_value_t = 5)]
    pub look_every: u32,
    /// Simulated minutes until a canary that was not rolled back ends.
    #[arg(long, env = "SHIFTRIGHT_SIM_HORIZON", default_value_t = 60)]
    pub horizon: u32,
    /// The baseline's error rate.
    #[arg(long, env = "SHIFTRIGHT_SIM_ERROR_RATE", default_value_t = 0.01)]
    pub error_rate: f64,
    /// Random seed: one seed, one table.
    #[arg(long, env = "SHIFTRIGHT_SIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Output: a Markdown table, or JSON rows.
    #[arg(
        long,
        env = "SHIFTRIGHT_FORMAT",
        value_enum,
        default_value = "markdown"
    )]
    pub format: SimulateFormatArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SimulateFormatArg {
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "SHIFTRIGHT_BROKERS")]
    pub brokers: String,
    /// Topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// JSON-lines file; `-` reads standard input.
    pub file: PathBuf,
    /// Use this JSON field of each line as the message key (e.g. user_id, as producers should).
    #[arg(long, default_value = "user_id")]
    pub key_field: String,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The ingest's output root (its --out).
    #[arg(long, env = "SHIFTRIGHT_DATA")]
    pub data: PathBuf,
    /// Merge only files at least this old (e.g. 1h, 30m): fresh files are few and cheap to read,
    /// and merging files still arriving would be redone.
    #[arg(long, env = "SHIFTRIGHT_COMPACT_OLDER_THAN", default_value = "1h", value_parser = humantime::parse_duration)]
    pub older_than: Duration,
    /// The size merged files aim at (e.g. 256MiB, 1GiB); files this large are left as they are.
    #[arg(long, env = "SHIFTRIGHT_COMPACT_TARGET_SIZE", default_value = "256MiB", value_parser = shiftright_analyze::read::engine::parse_bytes)]
    pub target_size: u64,
    /// Also remove every date older than this (e.g. 30d, 90d) from the event tables and the dead
    /// letters, before merging; default: keep everything.
    #[arg(long, env = "SHIFTRIGHT_RETAIN", value_parser = humantime::parse_duration)]
    pub retain: Option<Duration>,
    /// Files a merge replaced stay (readers leave them out) until the merge is this old, so that a
    /// query that listed them before the merge still finds them (e.g. 10m; 0s removes them at once).
    #[arg(long, env = "SHIFTRIGHT_COMPACT_KEEP_REPLACED", default_value = "10m", value_parser = humantime::parse_duration)]
    pub keep_replaced: Duration,
    /// Print what would be merged and removed; change nothing.
    #[arg(long, env = "SHIFTRIGHT_COMPACT_DRY_RUN")]
    pub dry_run: bool,
}

/// The librdkafka properties of every Kafka client a command makes.
#[derive(Debug, Args, Clone, Default)]
pub struct KafkaArgs {
    /// Extra librdkafka property, key=value (repeatable; `;`-separated in the environment
    /// variable), applied last to every Kafka client the command makes: for a secure broker e.g.
    /// security.protocol=sasl_ssl, sasl.mechanism=PLAIN, sasl.username=..., sasl.password=...,
    /// ssl.ca.location=/etc/kafka/ca.pem. The ingest gives them to its consumer and its dead-letter
    /// producer alike (and they can change its prefetch cap, queued.max.messages.kbytes, default
    /// 32768); serve to its decisions producer.
    #[arg(long = "kafka-option", env = "SHIFTRIGHT_KAFKA_OPTIONS", value_delimiter = ';', value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,
}

/// Topic names, shared by ingest and generate.
#[derive(Debug, Args, Clone)]
pub struct TopicArgs {
    /// Topic of request events.
    #[arg(long, env = "SHIFTRIGHT_REQUESTS_TOPIC", default_value = "requests")]
    pub requests_topic: String,
    /// Topic of business events.
    #[arg(long, env = "SHIFTRIGHT_BUSINESS_TOPIC", default_value = "business")]
    pub business_topic: String,
    /// Topic of exposure events.
    #[arg(long, env = "SHIFTRIGHT_EXPOSURES_TOPIC", default_value = "exposures")]
    pub exposures_topic: String,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Kafka bootstrap servers, host:port[,host:port].
    #[arg(long, env = "SHIFTRIGHT_BROKERS")]
    pub brokers: String,
    /// Output root; tables go to OUT/<table>/date=YYYY-MM-DD/experiment=<key>/.
    #[arg(long, env = "SHIFTRIGHT_OUT")]
    pub out: PathBuf,
    /// Consumer group id; instances with the same id split the partitions.
    #[arg(long, env = "SHIFTRIGHT_GROUP_ID", default_value = "shiftright-ingest")]
    pub group_id: String,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Flush a partition's buffer at this many messages.
    #[arg(long, env = "SHIFTRIGHT_FLUSH_ROWS", default_value_t = 100_000)]
    pub flush_rows: usize,
    /// Flush a partition's buffer at about this many bytes.
    #[arg(long, env = "SHIFTRIGHT_FLUSH_BYTES", default_value_t = 64 << 20)]
    pub flush_bytes: usize,
    /// Flush a partition's buffer when its oldest message is this old (e.g. 10s, 1m).
    #[arg(long, env = "SHIFTRIGHT_FLUSH_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub flush_interval: Duration,
    /// Flush a partition's buffer when its oldest message is this old and the partition has been
    /// read to the end of its log: a steady stream's rows are queryable about this soon, and a
    /// backlog's last rows do not wait out --flush-interval. `shiftright compact` merges the
    /// small files this makes.
    #[arg(long, env = "SHIFTRIGHT_FLUSH_CAUGHT_UP", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub flush_caught_up: Duration,
    /// Memory budget of all buffers, bytes; past it the largest buffer is flushed early.
    #[arg(long, env = "SHIFTRIGHT_MAX_BUFFER_BYTES", default_value_t = 256 << 20)]
    pub max_buffer_bytes: usize,
    /// Messages larger than this are dead letters (too_large).
    #[arg(long, env = "SHIFTRIGHT_MAX_MESSAGE_BYTES", default_value_t = 1 << 20)]
    pub max_message_bytes: usize,
    /// Events whose ts is older than this are dead letters (timestamp_out_of_range).
    #[arg(long, env = "SHIFTRIGHT_MAX_EVENT_AGE", default_value = "30days", value_parser = humantime::parse_duration)]
    pub max_event_age: Duration,
    /// Events whose ts is further ahead than this are dead letters.
    #[arg(long, env = "SHIFTRIGHT_MAX_EVENT_FUTURE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub max_event_future: Duration,
    /// User-id prefixes that mark synthetic users (comma-separated).
    #[arg(
        long,
        env = "SHIFTRIGHT_SYNTHETIC_PREFIXES",
        value_delimiter = ',',
        default_value = "synthetic-,test-"
    )]
    pub synthetic_prefixes: Vec<String>,
    /// Stop (after flushing) once no message has arrived for this long, counted from the start or the
    /// last partition assignment (e.g. 30s); default: run until SIGINT/SIGTERM. Before its first
    /// assignment the ingest waits at least 30 s (a group join can take that long). Exits 1 when
    /// no partition was ever assigned (broker unreachable), when a topic does not exist, or when a
    /// partition was stopped after an offset reset.
    #[arg(long, env = "SHIFTRIGHT_IDLE_EXIT", value_parser = humantime::parse_duration)]
    pub idle_exit: Option<Duration>,
    // Applied to the consumer and to the dead-letter producer alike; can also change the consumer's
    // prefetch cap (queued.max.messages.kbytes, default 32768).
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Also send every dead letter to this Kafka topic (payload as sent; reason, detail and source
    /// topic/partition/offset in headers), at least once, before it is written to Parquet.
    #[arg(long, env = "SHIFTRIGHT_DEAD_LETTER_TOPIC")]
    pub dead_letter_topic: Option<String>,
    /// When a partition's Kafka log is found below the offsets already written (the topic was
    /// deleted and recreated, or a broker lost its log), read the new log from its start into a
    /// new offset epoch instead of stopping that partition. The files already written are kept.
    /// Without it such a partition is stopped: error log, metric shiftright_partition_stopped,
    /// exit code 1. Use it once, after checking that the reset was meant.
    #[arg(long, env = "SHIFTRIGHT_ACCEPT_OFFSET_RESET")]
    pub accept_offset_reset: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (loopback by default); `off` disables.
    #[arg(long, env = "SHIFTRIGHT_METRICS_ADDR", default_value = "127.0.0.1:9464", value_parser = parse_metrics_addr)]
    pub metrics_addr: MetricsAddr,
}

/// `--metrics-addr`: an address, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct MetricsAddr(pub Option<std::net::SocketAddr>);

fn parse_metrics_addr(s: &str) -> Result<MetricsAddr, String> {
    if matches!(s, "off" | "none" | "") {
        return Ok(MetricsAddr(None));
    }
    s.parse()
        .map(|a| MetricsAddr(Some(a)))
        .map_err(|e| format!("expected HOST:PORT or `off`, got {s:?}: {e}"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormatArg {
    Table,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The ingest's output root (the directory holding requests/, business/, exposures/).
    #[arg(long, env = "SHIFTRIGHT_DATA")]
    pub data: PathBuf,
    /// Experiments file (TOML): baseline, expected weights, thresholds. See the README.
    #[arg(long, env = "SHIFTRIGHT_EXPERIMENTS")]
    pub experiments: Option<PathBuf>,
    /// Analyse only this experiment (repeatable); default: every experiment in the data.
    #[arg(long = "experiment", short = 'e')]
    pub only: Vec<String>,
    /// Output format.
    #[arg(long, env = "SHIFTRIGHT_FORMAT", value_enum, default_value = "table")]
    pub format: ReportFormatArg,
    /// Test method, over the experiments file's `method`: `sequential` (anytime-valid confidence
    /// sequences, safe to re-run every few minutes; the file's default) or `fixed` (classic
    /// fixed-horizon tests, for one look at a finished experiment).
    #[arg(long, env = "SHIFTRIGHT_METHOD", value_enum)]
    pub method: Option<MethodArg>,
    /// Do not append this run to the results history (DATA/_results/: tables `results` and
    /// `decisions` of `shiftright query`). By default every run is recorded.
    #[arg(long, env = "SHIFTRIGHT_NO_HISTORY")]
    pub no_history: bool,
    /// The verdicts that make the exit code non-zero (comma-separated): rollback (3), invalid
    /// (4), continue (5), promote (6), or none. For Argo's `job` provider, which fails on any
    /// non-zero exit: `--fail-on rollback` lets an INVALID experiment pass.
    #[arg(
        long,
        env = "SHIFTRIGHT_FAIL_ON",
        value_enum,
        value_delimiter = ',',
        default_value = "rollback,invalid"
    )]
    pub fail_on: Vec<FailOn>,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The ingest's output root (the directory holding requests/, business/, exposures/).
    #[arg(long, env = "SHIFTRIGHT_DATA")]
    pub data: PathBuf,
    /// The day to report (UTC): every experiment with exposures or requests that day, analysed
    /// over the data up to its end. Default: today (UTC).
    #[arg(long, env = "SHIFTRIGHT_DATE")]
    pub date: Option<chrono::NaiveDate>,
    /// Where to write the pages (created if missing): index.html, and EXPERIMENT.html, .md and
    /// .json per experiment.
    #[arg(long, env = "SHIFTRIGHT_REPORT_OUT")]
    pub out: PathBuf,
    /// Experiments file (TOML): baseline, expected weights, guardrails. See the README.
    #[arg(long, env = "SHIFTRIGHT_EXPERIMENTS")]
    pub experiments: Option<PathBuf>,
    /// Test method, over the experiments file's: `fixed` suits a nightly look at a finished day;
    /// `sequential` (the file's default) keeps its guarantees when the same data is re-read.
    #[arg(long, env = "SHIFTRIGHT_METHOD", value_enum)]
    pub method: Option<MethodArg>,
    /// Do not append this run to the results history (DATA/_results/).
    #[arg(long, env = "SHIFTRIGHT_NO_HISTORY")]
    pub no_history: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// How `analyze`, `report` and `query` read the store.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Leave out Parquet files whose footer cannot be read (truncated, not Parquet) instead of
    /// failing; each is named in a warning and the results lack their rows. Without it a damaged
    /// file stops the command with its name.
    #[arg(long, env = "SHIFTRIGHT_SKIP_CORRUPT")]
    pub skip_corrupt: bool,
    /// Threads the query engine splits scans and aggregations over; 0: one per core.
    #[arg(long, env = "SHIFTRIGHT_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Memory the query engine's operators may hold together (e.g. 2GiB, 256MiB), the analysis'
    /// per-user aggregate included; past it sorts, aggregations and repartitions spill to
    /// --spill-dir.
    #[arg(long, env = "SHIFTRIGHT_MEMORY_LIMIT", default_value = "2GiB", value_parser = shiftright_analyze::read::engine::parse_bytes)]
    pub memory_limit: u64,
    /// Where the query engine spills (created if missing); default: the system's temporary
    /// directory.
    #[arg(long, env = "SHIFTRIGHT_SPILL_DIR")]
    pub spill_dir: Option<PathBuf>,
    /// Run the queries on a Ballista cluster: its scheduler's address, df://HOST:PORT (see
    /// `shiftright scheduler` and `shiftright executor`). The files are listed here and read by
    /// the executors, so every executor must see --data at the same path. --threads then sets
    /// how many partitions the plan is split into; memory and task slots are each executor's own
    /// (its --memory-limit and --threads).
    #[arg(long, env = "SHIFTRIGHT_CLUSTER", value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MethodArg {
    Sequential,
    Fixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormatArg {
    /// An aligned table.
    Table,
    /// CSV with a header.
    Csv,
    /// JSON lines, one object per row.
    Json,
    /// A Parquet file (needs --out).
    Parquet,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The ingest's output root.
    #[arg(long, env = "SHIFTRIGHT_DATA", required_unless_present = "list")]
    pub data: Option<PathBuf>,
    /// SQL to run, e.g. "SELECT variant, COUNT(*) FROM requests GROUP BY variant". Tables:
    /// requests, business, exposures, dead_letters, and the results history: results, decisions.
    /// Read only: INSERT, COPY, CREATE, DROP, SET and the like are refused; --out writes results.
    #[arg(
        conflicts_with_all = ["name", "list", "file"],
        required_unless_present_any = ["name", "list", "file"]
    )]
    pub sql: Option<String>,
    /// Run a named query from queries/ instead (see --list and queries/README.md).
    #[arg(long, conflicts_with = "file")]
    pub name: Option<String>,
    /// Run the SQL in this file instead.
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub read: ReadArgs,

    /// A value for a `$NAME` placeholder of the query, as NAME=VALUE (repeatable); bound as a
    /// string, e.g. --param experiment=checkout-v2.
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// List the named queries with their parameters and exit.
    #[arg(long)]
    pub list: bool,
    /// Output format.
    #[arg(long, env = "SHIFTRIGHT_FORMAT", value_enum, default_value = "table")]
    pub format: QueryFormatArg,
    /// Write the output to this file instead of standard output (required for parquet).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let valid = !k.is_empty()
        && k.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !k.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(format!(
            "{k:?} is not a parameter name (letters, digits, _)"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Preset {
    /// A 95/5 canary whose v2 has 3× the error rate and 2× the p99, and a healthy 95/5 canary.
    Demo,
    /// Only the regressed canary.
    BadCanary,
    /// Only the healthy canary.
    HealthyCanary,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Scenario file (TOML, see traffic/src/scenario.rs); overrides --preset.
    #[arg(long, env = "SHIFTRIGHT_SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Built-in scenario.
    #[arg(long, value_enum, default_value = "demo")]
    pub preset: Preset,
    /// Users (for presets).
    #[arg(long, default_value_t = 40_000)]
    pub users: usize,
    /// Random seed: the same seed gives the same events.
    #[arg(long, env = "SHIFTRIGHT_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Share of extra malformed messages (for presets).
    #[arg(long, default_value_t = 0.0005)]
    pub malformed_share: f64,
    /// Produce to these Kafka bootstrap servers.
    #[arg(
        long,
        env = "SHIFTRIGHT_BROKERS",
        conflicts_with = "out_dir",
        required_unless_present = "out_dir"
    )]
    pub brokers: Option<String>,
    /// Write JSON lines to DIR/<topic>.jsonl instead.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    #[command(flatten)]
    pub topics: TopicArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the Parquet output; default: a new directory under the system's temp dir.
    #[arg(long, env = "SHIFTRIGHT_DEMO_OUT")]
    pub out: Option<PathBuf>,
    /// Users per run.
    #[arg(long, default_value_t = 40_000)]
    pub users: usize,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Brokers in the cluster.
    #[arg(long, default_value_t = 1)]
    pub brokers: i32,
    /// Partitions of each event topic created at start.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    #[command(flatten)]
    pub topics: TopicArgs,
}

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// The address clients (--cluster) and executors connect to.
    #[arg(
        long,
        env = "SHIFTRIGHT_SCHEDULER_BIND",
        default_value = "127.0.0.1:50050"
    )]
    pub bind: std::net::SocketAddr,
    /// The host name others reach this scheduler by, when it is not --bind's address.
    #[arg(long, env = "SHIFTRIGHT_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// The scheduler to register with.
    #[arg(
        long,
        env = "SHIFTRIGHT_CLUSTER",
        default_value = "df://127.0.0.1:50050",
        value_name = "df://HOST:PORT"
    )]
    pub scheduler: String,
    /// The address the executor's two ports bind.
    #[arg(long, env = "SHIFTRIGHT_EXECUTOR_BIND", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Port of the executor's Arrow Flight service, from which other executors and clients
    /// fetch results.
    #[arg(long, env = "SHIFTRIGHT_FLIGHT_PORT", default_value_t = 50051)]
    pub flight_port: u16,
    /// Port of the executor's gRPC service, to which the scheduler sends tasks.
    #[arg(long, env = "SHIFTRIGHT_GRPC_PORT", default_value_t = 50052)]
    pub grpc_port: u16,
    /// The host name others reach this executor by, when it is not --bind's address.
    #[arg(long, env = "SHIFTRIGHT_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    /// Tasks the executor runs at once; 0: one per core.
    #[arg(long, env = "SHIFTRIGHT_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Memory the executor's tasks may hold together before they spill (e.g. 8GiB); default:
    /// 70% of the machine's or container's memory.
    #[arg(long, env = "SHIFTRIGHT_MEMORY_LIMIT", value_parser = shiftright_analyze::read::engine::parse_bytes)]
    pub memory_limit: Option<u64>,
    /// Where shuffle files and spills go (created if missing); default: a temporary directory.
    #[arg(long, env = "SHIFTRIGHT_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}
