//! The verdict as a rollout controller reads it: one JSON object whose every field is always
//! present, so that Argo Rollouts' `web` provider never meets a missing field (an Error, and five
//! in a row abort the rollout) and a healthy canary is never aborted because of the endpoint.
//!
//! `safe` is what a `successCondition` asks: not ROLLBACK, not INVALID, and fresh. `rollback` is
//! what a `failureCondition` asks. Stale data or no evaluation yet gives neither, which Argo reads
//! as Inconclusive (the rollout pauses) and Flagger as "not yet".

use serde::{Deserialize, Serialize};
use shiftright_analyze::{Report, Verdict};

/// What `GET /v1/experiments/{name}/verdict` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveVerdict {
    /// The experiment.
    pub experiment: String,
    /// `CONTINUE`, `PROMOTE`, `ROLLBACK` or `INVALID`; `CONTINUE` until there is data.
    pub verdict: String,
    /// Not ROLLBACK, not INVALID, and fresh: safe to go on.
    pub safe: bool,
    /// The verdict is ROLLBACK.
    pub rollback: bool,
    /// The verdict is PROMOTE.
    pub promote: bool,
    /// The verdict is INVALID.
    pub invalid: bool,
    /// New events arrived within `--stale-after` and the last evaluation is recent.
    pub fresh: bool,
    /// Why, most important first; why not fresh, when it is not.
    pub reasons: Vec<String>,
    /// The compared variant the verdict is about (the first non-baseline one, or the one that
    /// breached); empty until there is data.
    pub variant: String,
    /// The newest event time seen (RFC 3339); empty until there is data.
    pub data_through: String,
    /// When the verdict was computed (RFC 3339); empty before the first evaluation.
    pub evaluated_at: String,
    /// Names this decision: the same while the verdict holds, new when it changes or a new
    /// window starts; the decisions topic's records carry it too.
    pub decision_id: String,
    /// What `shiftright analyze` would exit with: 0 CONTINUE or PROMOTE, 3 ROLLBACK, 4 INVALID.
    pub exit_code: i32,
    /// Start of the window the verdict covers (RFC 3339): the serve's lookback, or the last
    /// Flagger checksum change.
    pub window_start: String,
    /// The last Flagger phase reported for the experiment (`event` webhook); empty without one.
    pub phase: String,
}

/// The parts of a verdict that the clock changes, passed in so the rule stays a pure function.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Now, ms since the epoch.
    pub now_ms: i64,
    /// Events older than this make the data stale.
    pub stale_after_ms: i64,
    /// An evaluation older than this makes the verdict stale (evaluations are failing).
    pub evaluation_stale_ms: i64,
}

/// What the server knows of one experiment.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The last report, with its newest event time and when it was computed.
    pub evaluated: Option<Evaluated>,
    /// The window start, ms.
    pub window_start_ms: i64,
    /// The last Flagger phase.
    pub phase: Option<String>,
    /// Set when the last evaluation failed: why.
    pub failure: Option<String>,
    /// When a rollout controller last asked about the experiment, ms (0: never).
    pub touched_ms: i64,
}

/// One evaluation's outcome.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// The analysis.
    pub report: Report,
    /// Newest event time, ms.
    pub data_through_ms: i64,
    /// When it was computed, ms.
    pub at_ms: i64,
    /// The decision's id (see [`LiveVerdict::decision_id`]).
    pub decision_id: String,
}

impl LiveVerdict {
    /// The verdict of `experiment` as `known` and `clock` make it.
    pub fn of(experiment: &str, known: &Known, clock: Clock) -> LiveVerdict {
        let window_start = rfc3339(known.window_start_ms);
        let phase = known.phase.clone().unwrap_or_default();
        let Some(e) = &known.evaluated else {
            let why = known.failure.clone().unwrap_or_else(|| {
                "no requests or exposures of this experiment yet: waiting for data".to_string()
            });
            return LiveVerdict {
                experiment: experiment.to_string(),
                verdict: Verdict::Continue.as_str().to_string(),
                safe: false,
                rollback: false,
                promote: false,
                invalid: false,
                fresh: false,
                reasons: vec![why],
                variant: String::new(),
                data_through: String::new(),
                evaluated_at: String::new(),
                decision_id: String::new(),
                exit_code: 0,
                window_start,
                phase,
            };
        };
        let verdict = e.report.verdict;
        let mut reasons = Vec::new();
        let data_age = clock.now_ms - e.data_through_ms;
        let evaluation_age = clock.now_ms - e.at_ms;
        if data_age > clock.stale_after_ms {
            reasons.push(format!(
                "stale: the newest event is {} old (--stale-after {})",
                age(data_age),
                age(clock.stale_after_ms)
            ));
        }
        if evaluation_age > clock.evaluation_stale_ms {
            reasons.push(format!(
                "stale: the last successful evaluation is {} old{}",
                age(evaluation_age),
                known
                    .failure
                    .as_ref()
                    .map(|f| format!("; the latest failed: {f}"))
                    .unwrap_or_default()
            ));
        }
        let fresh = reasons.is_empty();
        reasons.extend(e.report.reasons.iter().cloned());
        LiveVerdict {
            experiment: experiment.to_string(),
            verdict: verdict.as_str().to_string(),
            safe: fresh && matches!(verdict, Verdict::Continue | Verdict::Promote),
            rollback: verdict == Verdict::Rollback,
            promote: verdict == Verdict::Promote,
            invalid: verdict == Verdict::Invalid,
            fresh,
            reasons,
            variant: decided_variant(&e.report),
            data_through: rfc3339(e.data_through_ms),
            evaluated_at: rfc3339(e.at_ms),
            decision_id: e.decision_id.clone(),
            exit_code: verdict.exit_code(),
            window_start,
            phase,
        }
    }
}

/// The variant a verdict is about: the first that breached a guardrail or blast-radius limit,
/// else the first non-baseline one.
pub fn decided_variant(report: &Report) -> String {
    let breached = report
        .comparisons
        .iter()
        .filter(|c| c.guardrail.as_ref().is_some_and(|g| g.breached))
        .map(|c| &c.variant)
        .chain(
            report
                .blast_radius
                .iter()
                .filter(|b| b.harm_budget_exceeded || b.traffic_cap_exceeded)
                .map(|b| &b.variant),
        )
        .next();
    breached
        .or_else(|| {
            report
                .variants
                .iter()
                .map(|v| &v.name)
                .find(|v| Some(*v) != report.baseline.as_ref())
        })
        .cloned()
        .unwrap_or_default()
}

/// `ms` since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A duration in ms, in words: `95 s`, `12 min`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else {
        format!("{} h", s / 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(now_ms: i64) -> Clock {
        Clock {
            now_ms,
            stale_after_ms: 120_000,
            evaluation_stale_ms: 120_000,
        }
    }

    #[test]
    fn nothing_known_is_neither_safe_nor_a_rollback() {
        let v = LiveVerdict::of("x", &Known::default(), clock(1_000));
        assert_eq!(v.verdict, "CONTINUE");
        assert!(!v.safe && !v.rollback && !v.fresh && !v.promote && !v.invalid);
        assert!(v.reasons[0].contains("waiting for data"), "{:?}", v.reasons);
        // Every field is present in the JSON, empty strings included.
        let json = serde_json::to_value(&v).unwrap();
        for field in [
            "verdict",
            "safe",
            "rollback",
            "promote",
            "invalid",
            "fresh",
            "reasons",
            "data_through",
            "evaluated_at",
            "decision_id",
            "exit_code",
        ] {
            assert!(json.get(field).is_some_and(|f| !f.is_null()), "{field}");
        }
    }

    #[test]
    fn ages_read_as_words() {
        assert_eq!(age(95_000), "95 s");
        assert_eq!(age(720_000), "12 min");
        assert_eq!(age(3 * 3_600_000), "3 h");
    }
}
