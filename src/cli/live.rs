//! The flags of `serve` and `watch`: live verdicts while a rollout runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{KafkaArgs, MethodArg, ReadArgs};

/// What both commands evaluate, and how often.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// The ingest's output root (the directory holding requests/, business/, exposures/).
    #[arg(long, env = "SHIFTRIGHT_DATA")]
    pub data: PathBuf,
    /// Experiments file (TOML): baseline, expected weights, guardrails. See the README.
    #[arg(long, env = "SHIFTRIGHT_EXPERIMENTS")]
    pub experiments: Option<PathBuf>,
    /// Test method, over the experiments file's. `sequential` (the default) is the one that stays
    /// valid when the verdict is recomputed every interval.
    #[arg(long, env = "SHIFTRIGHT_METHOD", value_enum)]
    pub method: Option<MethodArg>,
    /// Time between evaluations.
    #[arg(long, env = "SHIFTRIGHT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// A verdict whose newest event is older than this is stale (`fresh: false`, never `safe`):
    /// the rollout pauses rather than going on blind.
    #[arg(long, env = "SHIFTRIGHT_STALE_AFTER", default_value = "2m", value_parser = humantime::parse_duration)]
    pub stale_after: Duration,
    /// How far back an experiment's window starts when it is first seen; a new revision (Flagger's
    /// checksum, Argo's `?revision=`) starts its own. Dates before the window are not read.
    #[arg(long, env = "SHIFTRIGHT_LOOKBACK", default_value = "24h", value_parser = humantime::parse_duration)]
    pub lookback: Duration,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// Where decisions are published.
#[derive(Debug, Args)]
pub struct DecisionArgs {
    /// Publish each verdict change to this Kafka topic (key: the experiment; value:
    /// schemas/decision.schema.json), and a heartbeat per experiment.
    #[arg(long, env = "SHIFTRIGHT_DECISIONS_TOPIC", requires = "brokers")]
    pub decisions_topic: Option<String>,
    /// Kafka bootstrap servers of the decisions topic.
    #[arg(long, env = "SHIFTRIGHT_BROKERS")]
    pub brokers: Option<String>,
    /// Time between heartbeats on the decisions topic.
    #[arg(long, env = "SHIFTRIGHT_HEARTBEAT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,
    // Applied to the decisions producer.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// Only these experiments (repeatable); default: every one with events within --lookback
    /// and every one the experiments file or a Flagger webhook names.
    #[arg(
        long = "experiment",
        short = 'e',
        env = "SHIFTRIGHT_EXPERIMENT",
        value_delimiter = ','
    )]
    pub only: Vec<String>,
    /// Address to listen on. Anything but loopback needs --auth-token-file or --no-auth.
    #[arg(long, env = "SHIFTRIGHT_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// A file holding the Bearer token (one line, 16+ characters) that every endpoint but
    /// /healthz requires (the readiness probe too): `Authorization: Bearer TOKEN`.
    #[arg(long, env = "SHIFTRIGHT_AUTH_TOKEN_FILE", conflicts_with = "no_auth")]
    pub auth_token_file: Option<PathBuf>,
    /// Serve a non-loopback --bind without a token (e.g. behind a mesh that authenticates).
    #[arg(long, env = "SHIFTRIGHT_NO_AUTH")]
    pub no_auth: bool,
    /// Keep each experiment's revision (Flagger's checksum, Argo's `?revision=`) and window in
    /// this file, so a restart goes on with the same windows. Without it, a revision first seen
    /// after a start opens a new window then: the data gathered before the restart is not used,
    /// and a fixed revision is never judged by the errors of the one it replaced.
    #[arg(long, env = "SHIFTRIGHT_STATE")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub decisions: DecisionArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The experiment to watch.
    #[arg(long = "experiment", short = 'e', env = "SHIFTRIGHT_EXPERIMENT")]
    pub experiment: String,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Give up without a decision after this long (exit 5).
    #[arg(long, env = "SHIFTRIGHT_TIMEOUT", default_value = "1h", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub decisions: DecisionArgs,
}

/// A verdict `analyze --fail-on` can make exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Exit 3.
    Rollback,
    /// Exit 4.
    Invalid,
    /// Exit 5: not decided yet.
    Continue,
    /// Exit 6.
    Promote,
    /// Nothing: always exit 0 when the analysis ran.
    None,
}
