//! The evaluation loop: every `interval`, each live experiment analysed over its own window.
//!
//! What one evaluation reads is bounded by the window, not by the store: first the dates within
//! `lookback` are listed to find the experiments with events (their newest event time and
//! count), then each experiment is analysed over its own `experiment=` partitions from its window
//! start on. The window of an experiment is fixed when the server first sees it (`now −
//! lookback`), so the anytime-valid tests see one growing sample, and restarts at a new
//! revision (Flagger's checksum, Argo's `?revision=`: a new revision is a new experiment). Days of history kept in the data
//! directory before the window are neither listed nor read.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use shiftright_analyze::read::fold::Folded;
use shiftright_analyze::{ExperimentsFile, ReadOptions};
use tokio_util::sync::CancellationToken;

use crate::board::Board;
use crate::verdict::Clock;

/// What to evaluate, where and how often.
#[derive(Debug, Clone)]
pub struct EvaluateConfig {
    /// The ingest's output root.
    pub data: PathBuf,
    /// Thresholds, guardrails and methods.
    pub experiments: ExperimentsFile,
    /// Engine settings.
    pub read: ReadOptions,
    /// Only these experiments; empty: every one with events within `lookback`, and every one the
    /// experiments file or a Flagger webhook names.
    pub only: Vec<String>,
    /// Time between evaluations.
    pub interval: Duration,
    /// No new events for this long makes a verdict stale.
    pub stale_after: Duration,
    /// How far back a new experiment's window starts.
    pub lookback: Duration,
}

impl EvaluateConfig {
    /// The clock that judges freshness, at `now_ms`.
    pub fn clock(&self, now_ms: i64) -> Clock {
        let stale_after_ms = self.stale_after.as_millis() as i64;
        Clock {
            now_ms,
            stale_after_ms,
            // Two missed evaluations, or the data's own limit, whichever is longer.
            evaluation_stale_ms: stale_after_ms.max(2 * self.interval.as_millis() as i64 + 5_000),
        }
    }
}

/// Now, ms since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Per experiment, its users folded file by file across evaluations (the window is the
/// board's: a new window starts the fold again).
pub type Folds = HashMap<String, Folded>;

/// Timings of one pass, for the metrics.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// Per experiment, how long its evaluation took.
    pub took: Vec<(String, Duration)>,
    /// Experiments whose evaluation failed.
    pub failed: Vec<String>,
}

/// Evaluates every live experiment once and records the outcomes on `board`, folding each one's
/// new files into `folds`.
pub async fn evaluate_once(config: &EvaluateConfig, board: &Board, folds: &mut Folds) -> Pass {
    let now = now_ms();
    let lookback_ms = config.lookback.as_millis() as i64;
    let mut names: BTreeSet<String> = config.only.iter().cloned().collect();
    if config.only.is_empty() {
        names.extend(config.experiments.names().map(str::to_string));
        match shiftright_analyze::active_since(&config.data, config.read.clone(), now - lookback_ms)
            .await
        {
            Ok(active) => names.extend(active.into_keys()),
            Err(e) => tracing::warn!(error = %chain(&e), "cannot list the active experiments"),
        }
        board.prune(&names, now - lookback_ms);
    }
    // Those a rollout controller asks about too: a canary Flagger runs is evaluated even when
    // --experiment does not name it, or it would wait forever.
    names.extend(board.names());
    let mut pass = Pass::default();
    folds.retain(|name, _| names.contains(name));
    for name in names {
        let from = board.window_start(&name, now - lookback_ms);
        let started = Instant::now();
        let outcome = shiftright_analyze::analyze_live_folded(
            &config.data,
            config.read.clone(),
            &config.experiments,
            &name,
            Some(from),
            folds.entry(name.clone()).or_default(),
        )
        .await;
        let took = started.elapsed();
        match outcome {
            Ok(Some((report, fresh, step))) => {
                tracing::debug!(
                    experiment = %name, new_files = step.new_files, kept_files = step.kept_files,
                    users = step.users, restarted = step.restarted, "folded"
                );
                board.evaluated(&name, from, report, fresh, now_ms())
            }
            Ok(None) => board.no_data(&name, from),
            Err(e) => {
                let why = chain(&e);
                tracing::warn!(experiment = %name, error = %why, "evaluation failed");
                board.failed(&name, from, why);
                pass.failed.push(name.clone());
            }
        }
        tracing::debug!(experiment = %name, took_ms = took.as_millis() as u64, "evaluated");
        pass.took.push((name, took));
    }
    board.set_ready();
    pass
}

/// Evaluates every `interval` until `shutdown`, calling `after` with each pass.
pub async fn run(
    config: EvaluateConfig,
    board: Board,
    shutdown: CancellationToken,
    mut after: impl FnMut(&Pass),
) {
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut folds = Folds::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let pass = tokio::select! {
            _ = shutdown.cancelled() => return,
            pass = evaluate_once(&config, &board, &mut folds) => pass,
        };
        after(&pass);
    }
}

/// An error with its causes, on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
