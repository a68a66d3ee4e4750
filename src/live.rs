//! `serve` and `watch`: arguments to the serve crate's configuration, and what they print.

use shiftright_serve::verdict::LiveVerdict;
use shiftright_serve::watch::Outcome;
use shiftright_serve::{Board, EvaluateConfig, PublishConfig, ServeConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::{DecisionArgs, LiveArgs, ServeArgs, WatchArgs};
use crate::commands::experiments_of;

impl LiveArgs {
    fn config(&self, only: Vec<String>) -> anyhow::Result<EvaluateConfig> {
        if self.interval.is_zero() {
            anyhow::bail!("--interval must be more than 0 (e.g. 30s)");
        }
        Ok(EvaluateConfig {
            data: self.data.clone(),
            experiments: experiments_of(self.experiments.as_deref(), self.method)?,
            read: self.read.options(),
            only,
            interval: self.interval,
            stale_after: self.stale_after,
            lookback: self.lookback,
        })
    }
}

impl DecisionArgs {
    fn config(&self) -> Option<PublishConfig> {
        Some(PublishConfig {
            brokers: self.brokers.clone()?,
            topic: self.decisions_topic.clone()?,
            heartbeat: self.heartbeat,
            kafka_options: self.kafka.kafka_options.clone(),
        })
    }
}

pub async fn serve(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<u8> {
    let config = ServeConfig {
        evaluate: args.live.config(args.only.clone())?,
        bind: args.bind,
        auth_token_file: args.auth_token_file.clone(),
        no_auth: args.no_auth,
        publish: args.decisions.config(),
        revisions_file: args.state.clone(),
    };
    shiftright_serve::serve(config, shutdown, |addr| {
        // The first line of stdout, for scripts and tests that bind port 0.
        println!("shiftright serve: listening on http://{addr}");
    })
    .await?;
    Ok(0)
}

pub async fn watch(args: WatchArgs, shutdown: CancellationToken) -> anyhow::Result<u8> {
    let config = args.live.config(vec![args.experiment.clone()])?;
    let board = Board::new("watch");
    let stop_publishing = CancellationToken::new();
    let publisher = match args.decisions.config() {
        Some(p) => Some(tokio::spawn(shiftright_serve::publish::run(
            shiftright_serve::publish::Publisher::new(&p)?,
            board.clone(),
            p.heartbeat,
            stop_publishing.clone(),
        ))),
        None => None,
    };
    let outcome = shiftright_serve::watch::watch(
        &config,
        &board,
        &args.experiment,
        args.timeout,
        shutdown,
        print_verdict,
    )
    .await;
    if let Some(task) = publisher {
        // Let the last decision reach the topic before the process ends.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        stop_publishing.cancel();
        let _ = task.await;
    }
    match outcome {
        Outcome::Timeout => eprintln!(
            "no decision for {} within --timeout {}",
            args.experiment,
            humantime::format_duration(args.timeout)
        ),
        Outcome::Stopped => eprintln!("stopped before a decision"),
        _ => {}
    }
    Ok(outcome.exit_code())
}

/// One line per verdict change: time, verdict, freshness, the main reason.
fn print_verdict(v: &LiveVerdict) {
    let at = if v.evaluated_at.is_empty() {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    } else {
        v.evaluated_at.clone()
    };
    println!(
        "{at}  {:<8}  {}{}  {}",
        v.verdict,
        v.experiment,
        if v.fresh { "" } else { " (stale)" },
        v.reasons.first().map_or("", String::as_str)
    );
}
