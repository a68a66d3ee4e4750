//! `/metrics`: the verdicts as Prometheus gauges, so that a Prometheus-based gate (Flagger's
//! metric templates, Argo's `prometheus` provider, an alert) works as well as the webhooks.
//!
//! The exposition is built by `prometheus-client` from the board at each scrape, so an
//! experiment whose window restarted or that left the lookback leaves no stale series behind.
//! Per experiment: the verdict (one series per verdict, 1 for the current one), its exit code,
//! `safe` and `fresh`, the data's age and newest event time, the last evaluation's duration;
//! per variant: users and the harm budget used; per variant and guardrail: the observed ratio or
//! difference, its one-sided bound and the limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use shiftright_analyze::Verdict;

use crate::board::Board;
use crate::evaluate::Pass;
use crate::verdict::Clock;

/// The content type of the OpenMetrics text format, which Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExperimentLabels {
    experiment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    experiment: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VariantLabels {
    experiment: String,
    variant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuardrailLabels {
    experiment: String,
    variant: String,
    metric: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Counts kept across scrapes: evaluation passes and failures, and each experiment's last
/// evaluation time.
#[derive(Debug, Default)]
pub struct Counts {
    passes: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    took: Mutex<BTreeMap<String, Duration>>,
}

impl Counts {
    /// Records one evaluation pass.
    pub fn record(&self, pass: &Pass) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for name in &pass.failed {
            *failures.entry(name.clone()).or_default() += 1;
        }
        let mut took = self.took.lock().unwrap_or_else(|e| e.into_inner());
        for (name, t) in &pass.took {
            took.insert(name.clone(), *t);
        }
    }
}

/// The exposition of `board` at `clock`.
pub fn render(board: &Board, counts: &Counts, clock: Clock) -> String {
    let mut registry = <Registry>::default();
    let r = &mut registry;
    let verdict = family::<VerdictLabels>(
        r,
        "shiftright_verdict",
        "1 for the experiment's current verdict, 0 for the others",
    );
    let exit_code = family::<ExperimentLabels>(
        r,
        "shiftright_verdict_exit_code",
        "What `shiftright analyze` would exit with: 0 CONTINUE or PROMOTE, 3 ROLLBACK, 4 INVALID",
    );
    let safe = family::<ExperimentLabels>(
        r,
        "shiftright_verdict_safe",
        "1 when the verdict is neither ROLLBACK nor INVALID and the data is fresh",
    );
    let fresh = family::<ExperimentLabels>(
        r,
        "shiftright_data_fresh",
        "1 when new events arrived within --stale-after and the last evaluation is recent",
    );
    let age = family::<ExperimentLabels>(
        r,
        "shiftright_data_age_seconds",
        "Seconds since the newest event of the experiment's window",
    );
    let through = family::<ExperimentLabels>(
        r,
        "shiftright_data_through_timestamp_seconds",
        "The newest event time of the experiment's window, Unix seconds",
    );
    let took = family::<ExperimentLabels>(
        r,
        "shiftright_evaluation_duration_seconds",
        "How long the experiment's last evaluation took",
    );
    let users = family::<VariantLabels>(
        r,
        "shiftright_variant_users",
        "Users per variant (non-synthetic, single-variant)",
    );
    let harm_used = family::<VariantLabels>(
        r,
        "shiftright_harm_budget_used_ratio",
        "Lower confidence bound of the variant's excess errors over its harm budget (1 or more rolls back)",
    );
    let observed = family::<GuardrailLabels>(
        r,
        "shiftright_guardrail_observed",
        "A guardrail's observed ratio (variant / baseline) or difference",
    );
    let bound = family::<GuardrailLabels>(
        r,
        "shiftright_guardrail_bound",
        "The one-sided confidence bound of the observed value on the harmful side",
    );
    let limit = family::<GuardrailLabels>(
        r,
        "shiftright_guardrail_limit",
        "The guardrail's limit on the scale of the observed value",
    );
    let passes = Counter::<u64>::default();
    registry.register(
        "shiftright_evaluations",
        "Evaluation passes since the server started",
        passes.clone(),
    );
    passes.inc_by(counts.passes.load(Ordering::Relaxed));
    let failures = Family::<ExperimentLabels, Counter<u64>>::default();
    registry.register(
        "shiftright_evaluation_failures",
        "Failed evaluations per experiment since the server started",
        failures.clone(),
    );
    for (name, n) in counts
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        failures.get_or_create(&label(name)).inc_by(*n);
    }
    for (name, t) in counts.took.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        took.get_or_create(&label(name)).set(t.as_secs_f64());
    }
    for v in board.verdicts(clock) {
        let e = label(&v.experiment);
        for each in [
            Verdict::Continue,
            Verdict::Promote,
            Verdict::Rollback,
            Verdict::Invalid,
        ] {
            let labels = VerdictLabels {
                experiment: v.experiment.clone(),
                verdict: each.as_str().to_string(),
            };
            verdict
                .get_or_create(&labels)
                .set(if v.verdict == each.as_str() { 1.0 } else { 0.0 });
        }
        exit_code.get_or_create(&e).set(v.exit_code as f64);
        safe.get_or_create(&e).set(f64::from(u8::from(v.safe)));
        fresh.get_or_create(&e).set(f64::from(u8::from(v.fresh)));
    }
    for (name, evaluated) in board.reports() {
        let e = label(&name);
        age.get_or_create(&e)
            .set((clock.now_ms - evaluated.data_through_ms).max(0) as f64 / 1000.0);
        through
            .get_or_create(&e)
            .set(evaluated.data_through_ms as f64 / 1000.0);
        let report = &evaluated.report;
        for v in &report.variants {
            users
                .get_or_create(&variant(&name, &v.name))
                .set(v.users as f64);
        }
        for b in &report.blast_radius {
            if b.harm_budget > 0.0 {
                harm_used
                    .get_or_create(&variant(&name, &b.variant))
                    .set(b.excess_errors_low.max(0.0) / b.harm_budget);
            }
        }
        for c in &report.comparisons {
            let Some(g) = &c.guardrail else { continue };
            let labels = GuardrailLabels {
                experiment: name.clone(),
                variant: c.variant.clone(),
                metric: c.metric.name().to_string(),
            };
            if let Some(o) = g.observed {
                observed.get_or_create(&labels).set(o);
            }
            if let Some(b) = g.bound {
                bound.get_or_create(&labels).set(b);
            }
            limit.get_or_create(&labels).set(g.limit);
        }
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// A family of float gauges labelled `L`, registered as `name`.
fn family<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, FloatGauge>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let f = Family::<L, FloatGauge>::default();
    registry.register(name, help, f.clone());
    f
}

fn label(experiment: &str) -> ExperimentLabels {
    ExperimentLabels {
        experiment: experiment.to_string(),
    }
}

fn variant(experiment: &str, variant: &str) -> VariantLabels {
    VariantLabels {
        experiment: experiment.to_string(),
        variant: variant.to_string(),
    }
}
