//! `shiftright watch`: the verdict of one experiment re-evaluated every interval until it
//! decides, for pipelines without Argo Rollouts or Flagger (GitHub Actions, Jenkins, Spinnaker),
//! which wait on a command's exit code.
//!
//! It ends on the first ROLLBACK (exit 3) or INVALID (4), on PROMOTE over fresh data (0), or at
//! the timeout without a decision (5). A PROMOTE over stale data does not end it: promoting
//! needs evidence that is current.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::board::Board;
use crate::evaluate::{evaluate_once, now_ms, EvaluateConfig, Folds};
use crate::verdict::LiveVerdict;

/// How a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// PROMOTE over fresh data.
    Promote,
    /// ROLLBACK.
    Rollback,
    /// INVALID.
    Invalid,
    /// No decision within the timeout.
    Timeout,
    /// Stopped by a signal.
    Stopped,
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Promote => 0,
            Outcome::Rollback => 3,
            Outcome::Invalid => 4,
            Outcome::Timeout => 5,
            Outcome::Stopped => 130,
        }
    }

    /// What a verdict ends the watch with, if it does.
    pub fn of(verdict: &LiveVerdict) -> Option<Outcome> {
        if verdict.rollback {
            Some(Outcome::Rollback)
        } else if verdict.invalid {
            Some(Outcome::Invalid)
        } else if verdict.promote && verdict.fresh {
            Some(Outcome::Promote)
        } else {
            None
        }
    }
}

/// Watches `experiment` (the one name in `config.only`) until it decides, `timeout` passes or
/// `shutdown`; `changed` sees every verdict that differs from the one before (verdict,
/// freshness or reasons' first line).
pub async fn watch(
    config: &EvaluateConfig,
    board: &Board,
    experiment: &str,
    timeout: Duration,
    shutdown: CancellationToken,
    mut changed: impl FnMut(&LiveVerdict),
) -> Outcome {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<(String, bool, Option<String>)> = None;
    let mut folds = Folds::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Outcome::Stopped,
            _ = tokio::time::sleep_until(deadline) => return Outcome::Timeout,
            _ = evaluate_once(config, board, &mut folds) => {}
        }
        if let Some(v) = board.verdict(experiment, config.clock(now_ms())) {
            let key = (v.verdict.clone(), v.fresh, v.reasons.first().cloned());
            if last.as_ref() != Some(&key) {
                changed(&v);
                last = Some(key);
            }
            if let Some(outcome) = Outcome::of(&v) {
                return outcome;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Outcome::Stopped,
            _ = tokio::time::sleep_until(deadline) => return Outcome::Timeout,
            _ = tokio::time::sleep(config.interval) => {}
        }
    }
}
