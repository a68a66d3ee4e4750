//! Decisions that act during a rollout: the live verdict of each experiment, kept fresh as the
//! data lands, for the tools that gate canaries.
//!
//! - [`evaluate`] re-analyses each live experiment over its own window every interval, onto the
//!   [`board`], which announces each verdict change as a [`decision::Decision`];
//! - [`http`] serves the board to Argo Rollouts (the `web` provider reads
//!   [`verdict::LiveVerdict`]), Flagger ([`flagger`]'s webhooks) and Prometheus ([`metrics`]);
//! - [`publish`] puts the decisions on a Kafka topic for flag systems;
//! - [`watch`] waits for one experiment's decision, for pipelines that gate on an exit code.
//!
//! [`serve`] joins them behind the safety rules of a server: loopback unless told otherwise, and
//! a token or an explicit `--no-auth` for any other address.

pub mod board;
pub mod decision;
pub mod error;
pub mod evaluate;
pub mod flagger;
pub mod http;
pub mod metrics;
pub mod publish;
pub mod revisions;
pub mod verdict;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use board::Board;
pub use error::{Error, Result};
pub use evaluate::EvaluateConfig;
pub use publish::PublishConfig;

/// Everything `shiftright serve` is told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// What to evaluate and how often.
    pub evaluate: EvaluateConfig,
    /// Where to listen.
    pub bind: SocketAddr,
    /// A file holding the Bearer token every endpoint but `/healthz` needs.
    pub auth_token_file: Option<PathBuf>,
    /// Serve a non-loopback address without a token, on purpose.
    pub no_auth: bool,
    /// Publish decisions to a Kafka topic.
    pub publish: Option<PublishConfig>,
    /// Keep each experiment's revision and window here across restarts ([`revisions`]).
    pub revisions_file: Option<PathBuf>,
}

/// The token of `config`, checked against the bind address: a server reachable from other
/// hosts needs one unless `--no-auth` says otherwise.
pub fn token(config: &ServeConfig) -> Result<Option<String>> {
    if config.no_auth && config.auth_token_file.is_some() {
        return Err(Error::Config(
            "--no-auth and --auth-token-file contradict each other: pass one".into(),
        ));
    }
    let Some(path) = &config.auth_token_file else {
        if !config.bind.ip().is_loopback() && !config.no_auth {
            return Err(Error::Config(format!(
                "--bind {} is reachable from other hosts: pass --auth-token-file FILE (a Bearer \
                 token every endpoint but /healthz will need) or --no-auth to serve it without one",
                config.bind
            )));
        }
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::Token {
        path: path.clone(),
        source,
    })?;
    let token = text.trim();
    if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Config(format!(
            "the token in {} must be one line of at least 16 characters without spaces \
             (e.g. `openssl rand -hex 32 > {}`)",
            path.display(),
            path.display()
        )));
    }
    Ok(Some(token.to_string()))
}

/// Serves until `shutdown`: evaluations every interval, the HTTP API on `config.bind`, and the
/// decisions topic when configured. `listening` is told the bound address once it accepts
/// connections.
pub async fn serve(
    config: ServeConfig,
    shutdown: CancellationToken,
    listening: impl FnOnce(SocketAddr),
) -> Result<()> {
    let token = token(&config)?;
    let board = match &config.revisions_file {
        Some(path) => Board::with_revisions("serve", path).map_err(Error::Config)?,
        None => Board::new("serve"),
    };
    let publisher = config
        .publish
        .as_ref()
        .map(|p| Ok::<_, Error>((publish::Publisher::new(p)?, p.heartbeat)))
        .transpose()?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| Error::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.bind,
        source,
    })?;
    // The experiments named up front are known from the first request on (waiting for data),
    // not only once the first evaluation reaches them.
    let first_window = evaluate::now_ms() - config.evaluate.lookback.as_millis() as i64;
    for name in config
        .evaluate
        .only
        .iter()
        .map(String::as_str)
        .chain(config.evaluate.experiments.names())
    {
        board.window_start(name, first_window);
    }
    let counts = Arc::new(metrics::Counts::default());
    let api = http::Api {
        board: board.clone(),
        counts: counts.clone(),
        config: Arc::new(config.evaluate.clone()),
        token: token.map(Arc::new),
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let Some((publisher, heartbeat)) = publisher {
        tasks.spawn(publish::run(
            publisher,
            board.clone(),
            heartbeat,
            shutdown.clone(),
        ));
    }
    tasks.spawn(shiftright_ingest::metrics::serve_router(
        listener,
        http::router(api),
        shutdown.clone(),
        http::LIMITS,
    ));
    listening(addr);
    tracing::info!(%addr, "serving verdicts");
    evaluate::run(config.evaluate, board, shutdown.clone(), move |pass| {
        counts.record(pass)
    })
    .await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}
