//! The analysis report: what `shiftright analyze --format json` prints, documented field by field
//! in `schemas/report.schema.json`. Absent numbers (a lift over a zero baseline, a quantile CI with
//! too few observations) are `null`, never a made-up value.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Metric;
use crate::stats::{Harm, Scale};

/// The decision for one experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Healthy so far, not yet proven: keep the canary running.
    Continue,
    /// Every guardrail is shown non-inferior with enough users: roll forward.
    Promote,
    /// The data cannot be trusted (SRM, users in two variants, no baseline): fix the experiment.
    Invalid,
    /// A guardrail is breached with significance, or a blast-radius limit is crossed: roll back.
    Rollback,
}

impl Verdict {
    /// Process exit code of `shiftright analyze` for this verdict.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Continue | Verdict::Promote => 0,
            Verdict::Rollback => 3,
            Verdict::Invalid => 4,
        }
    }

    /// The word printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Continue => "CONTINUE",
            Verdict::Promote => "PROMOTE",
            Verdict::Invalid => "INVALID",
            Verdict::Rollback => "ROLLBACK",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole report of one experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Experiment key.
    pub experiment: String,
    /// The decision.
    pub verdict: Verdict,
    /// Why, in words, most important first.
    pub reasons: Vec<String>,
    /// `sequential`: anytime-valid confidence sequences (safe to re-run as data arrives);
    /// `fixed`: fixed-horizon tests (one look).
    pub method: String,
    /// Tuning N* of the confidence sequence (`sequential` only).
    pub n_star: Option<f64>,
    /// Two-sided confidence level of intervals.
    pub confidence: f64,
    /// The baseline variant.
    pub baseline: Option<String>,
    /// Sample ratio mismatch check.
    pub srm: Srm,
    /// With rollout stages, the stage whose users the comparisons read (the latest with users);
    /// `null` without stages.
    pub rollout_stage: Option<ComparedStage>,
    /// Data quality counts.
    pub data_quality: DataQuality,
    /// Guardrail tests within each endpoint and region, corrected together; a breach rolls back.
    pub segments: Vec<crate::decide::report::SegmentGuardrail>,
    /// Synthetic checks per variant (synthetic users' live requests), never part of the verdict.
    pub synthetic_checks: Vec<crate::decide::report::SyntheticCheck>,
    /// Shadow and mirror calls per variant, against the variant's live traffic; never part of the
    /// verdict.
    pub shadow_traffic: Vec<crate::decide::report::ShadowTraffic>,
    /// Per-variant metrics, baseline first.
    pub variants: Vec<VariantMetrics>,
    /// Each non-baseline variant against the baseline, per metric.
    pub comparisons: Vec<Comparison>,
    /// Blast-radius checks per non-baseline variant.
    pub blast_radius: Vec<BlastRadius>,
}

/// Sample ratio mismatch: observed users per variant against the expected allocation.
#[derive(Debug, Clone, Serialize)]
pub struct Srm {
    /// Whether the check ran (it needs expected weights in the experiments file).
    pub checked: bool,
    /// χ² p-value; below 0.001 the experiment is INVALID.
    pub p_value: Option<f64>,
    /// χ² statistic.
    pub chi2: Option<f64>,
    /// Users per variant (non-synthetic, single-variant).
    pub counts: BTreeMap<String, u64>,
    /// Expected weights, normalised.
    pub expected_weights: Option<BTreeMap<String, f64>>,
    /// Why it was not checked, when it was not.
    pub note: Option<String>,
    /// With rollout stages, the check of each stage; `p_value` above is then the smallest
    /// adjusted p-value, `counts` and `expected_weights` the compared stage's.
    pub stages: Vec<StageSrm>,
}

/// The SRM check of one rollout stage's users (those first exposed while it was in force).
#[derive(Debug, Clone, Serialize)]
pub struct StageSrm {
    /// 0: before the first stage (or, for allocations carried by exposures, users whose first
    /// exposure carried none); i: the i-th of `stages` in the experiments file, or the i-th
    /// allocation seen.
    pub stage: usize,
    /// When it started (RFC 3339): the file's `from`, or the first assignment seen under the
    /// allocation; null for stage 0.
    pub from: Option<String>,
    /// Users per variant (non-synthetic, seen in one variant only).
    pub counts: BTreeMap<String, u64>,
    /// The stage's allocation, normalised; null when stage 0 has no `weights`.
    pub expected_weights: Option<BTreeMap<String, f64>>,
    pub chi2: Option<f64>,
    pub p_value: Option<f64>,
    /// Holm-adjusted over the stages tested; below 0.001 the experiment is INVALID.
    pub adjusted_p_value: Option<f64>,
    /// Why it was not tested, when it was not.
    pub note: Option<String>,
}

/// The rollout stage the comparisons read.
#[derive(Debug, Clone, Serialize)]
pub struct ComparedStage {
    /// As in [`StageSrm::stage`].
    pub stage: usize,
    /// When it started (RFC 3339); null for stage 0.
    pub from: Option<String>,
    /// Its expected allocation, normalised as given; null when unknown.
    pub weights: Option<BTreeMap<String, f64>>,
    /// Its users (non-synthetic).
    pub users: u64,
    /// Users first exposed in earlier stages: in the SRM checks and the blast radius, not in
    /// the comparisons.
    pub earlier_users: u64,
}

/// Counts that say whether the data can be trusted.
#[derive(Debug, Clone, Serialize)]
pub struct DataQuality {
    /// Non-synthetic users seen in more than one variant (excluded from everything).
    pub multiple_variant_users: u64,
    /// Their share of all non-synthetic users.
    pub multiple_variant_share: f64,
    /// Synthetic users per variant (reported, excluded from decisions).
    pub synthetic_users: BTreeMap<String, u64>,
    /// Request and exposure events resent under an `event_id` already seen, counted once.
    pub duplicates_dropped: u64,
    /// The per-user revenue cap applied before comparing revenue (`winsorize_revenue`), if any.
    pub revenue_winsorized_at: Option<f64>,
}

/// A quantile estimate with its confidence interval (null until there are enough observations).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct QuantileValue {
    /// Point estimate, ms.
    pub value: Option<f64>,
    /// Lower confidence bound, ms.
    pub ci_low: Option<f64>,
    /// Upper confidence bound, ms.
    pub ci_high: Option<f64>,
}

/// Latency quantiles of live requests, ms.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// One variant's metrics over its non-synthetic, single-variant users.
#[derive(Debug, Clone, Serialize)]
pub struct VariantMetrics {
    /// Variant name.
    pub name: String,
    /// Users.
    pub users: u64,
    /// Observed share of the experiment's users.
    pub share: f64,
    /// Live requests.
    pub requests: u64,
    /// Live requests with status ≥ 500.
    pub errors: u64,
    /// errors / requests.
    pub error_rate: Option<f64>,
    /// Its confidence interval (delta method over users; fixed-horizon, descriptive).
    pub error_rate_ci: Option<Interval>,
    /// Latency quantiles, ms.
    pub latency_ms: Latency,
    /// Latency quantiles with confidence intervals (user-clustered).
    pub latency_ci: BTreeMap<String, QuantileValue>,
    /// Users who converted at or after first exposure.
    pub conversions: u64,
    /// conversions / users.
    pub conversion_rate: Option<f64>,
    /// Its confidence interval (normal; fixed-horizon, descriptive).
    pub conversion_rate_ci: Option<Interval>,
    /// Business value after exposure.
    pub revenue: f64,
    /// revenue / users (zeros included).
    pub revenue_per_user: Option<f64>,
    /// Its confidence interval (normal; fixed-horizon, descriptive; winsorized when configured).
    pub revenue_per_user_ci: Option<Interval>,
    /// The metrics of the experiments file's `[[metrics]]`, by name (empty without them): a
    /// count or sum per user (zeros included), or a ratio of two over users.
    pub metrics: BTreeMap<String, UserMetricValue>,
}

/// One user-defined metric of one variant.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct UserMetricValue {
    /// Per user (count or sum metrics) or Σ numerator / Σ denominator (ratios); None without users.
    pub value: Option<f64>,
    /// Its confidence interval (normal or delta method; fixed-horizon, descriptive).
    pub ci: Option<Interval>,
}

/// A two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// One metric of one variant against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// `error_rate`, `latency_p50`, `latency_p95`, `latency_p99`, `latency_rank` (Mann–Whitney:
    /// the values are P(a request of that arm is slower than one of the other)),
    /// `conversion_rate`, `revenue_per_user`, or the name of a user-defined metric
    /// (`[[metrics]]`).
    pub metric: Metric,
    /// The metric's harmful direction: its guardrail's, else its own (increase for errors and
    /// latency, decrease for conversion and revenue; a `[[metrics]]` entry's `direction`), so a
    /// reader knows which way a significant change is worse.
    pub direction: Harm,
    /// Baseline variant.
    pub baseline: String,
    /// Compared variant.
    pub variant: String,
    /// Baseline's value.
    pub baseline_value: Option<f64>,
    /// Variant's value.
    pub variant_value: Option<f64>,
    /// variant − baseline.
    pub absolute_diff: Option<f64>,
    /// variant / baseline − 1; null when the baseline is 0.
    pub relative_lift: Option<f64>,
    /// Confidence interval of the absolute difference.
    pub ci_low: Option<f64>,
    /// Confidence interval of the absolute difference.
    pub ci_high: Option<f64>,
    /// Confidence interval of the relative lift.
    pub lift_ci_low: Option<f64>,
    /// Confidence interval of the relative lift.
    pub lift_ci_high: Option<f64>,
    /// Two-sided p-value of "no difference".
    pub p_value: Option<f64>,
    /// p_value < α.
    pub significant: bool,
    /// Present when the metric is a guardrail.
    pub guardrail: Option<Guardrail>,
    /// Present when CUPED adjusted the test (conversion and revenue, when users have
    /// pre-exposure values): the CI, lift CI and p-value are then the adjusted difference's.
    pub cuped: Option<Cuped>,
}

/// The CUPED adjustment of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Cuped {
    /// cov(pre, post) / var(pre) over both arms.
    pub theta: f64,
    /// Share of the variance removed by the adjustment (ρ² of pre and post values).
    pub variance_reduction: f64,
    /// The adjusted difference of means (the centre of the CI).
    pub absolute_diff: f64,
}

/// A guardrail's threshold rule as a one-sided margin test: "the variant moved past the limit in
/// the harmful direction" (ROLLBACK) against the confidence bound that shows it did not (PROMOTE).
#[derive(Debug, Clone, Serialize)]
pub struct Guardrail {
    /// `ratio` (variant / baseline) or `absolute` (variant − baseline, in the metric's unit).
    pub kind: Scale,
    /// The harmful direction: `increase` or `decrease`.
    pub direction: Harm,
    /// The threshold as configured: a ratio (2.0 for error rate, 1.5 for p99 by default), or the
    /// amount the metric may move in the harmful direction.
    pub threshold: f64,
    /// The limit on the scale of `observed`: the ratio, +amount or −amount.
    pub limit: f64,
    /// Observed ratio or difference.
    pub observed: Option<f64>,
    /// One-sided confidence bound of `observed` on the harmful side (upper for increases).
    pub bound: Option<f64>,
    /// One-sided p-value of H1: past the limit.
    pub margin_p_value: Option<f64>,
    /// The same, corrected across the experiment's guardrails.
    pub margin_p_adjusted: Option<f64>,
    /// `z`, `exact_poisson` or `quantile_z`.
    pub test: String,
    /// Significantly past the limit (after correction) with enough users: roll back.
    pub breached: bool,
    /// The bound is on the safe side of the limit: shown non-inferior.
    pub non_inferior: bool,
}

impl Guardrail {
    /// A value on the guardrail's scale, as the reasons print it: `2.31×` or `+0.0123`.
    pub fn on_scale(&self, value: Option<f64>) -> String {
        match (value, self.kind) {
            (None, _) => "unknown".into(),
            (Some(v), Scale::Ratio) => format!("{v:.2}×"),
            (Some(v), Scale::Absolute) => format!("{v:+.4}"),
        }
    }

    /// `above` for increases, `below` for decreases.
    pub fn past(&self) -> &'static str {
        match self.direction {
            Harm::Increase => "above",
            Harm::Decrease => "below",
        }
    }

    /// The safe side of the limit: `below` for increases, `above` for decreases.
    pub fn within(&self) -> &'static str {
        match self.direction {
            Harm::Increase => "below",
            Harm::Decrease => "above",
        }
    }

    /// The limit in words: `2.0× the baseline's` or `+0.0100 from the baseline's`.
    pub fn limit_text(&self) -> String {
        match self.kind {
            Scale::Ratio => format!("{:.2}× the baseline's", self.limit),
            Scale::Absolute => format!("{:+.4} from the baseline's", self.limit),
        }
    }
}

/// Blast-radius limits of one variant: they act without a minimum sample.
#[derive(Debug, Clone, Serialize)]
pub struct BlastRadius {
    /// Variant.
    pub variant: String,
    /// Errors above what the baseline's rate predicts for the variant's requests.
    pub excess_errors: f64,
    /// One-sided lower confidence bound of the excess.
    pub excess_errors_low: f64,
    /// The harm budget.
    pub harm_budget: f64,
    /// Lower bound above the budget.
    pub harm_budget_exceeded: bool,
    /// Observed share of users.
    pub traffic_share: f64,
    /// Configured cap, if any.
    pub traffic_cap: Option<f64>,
    /// One-sided p-value of share > cap.
    pub traffic_cap_p_value: Option<f64>,
    /// Share significantly above the cap.
    pub traffic_cap_exceeded: bool,
}

/// A guardrail test within a segment.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentGuardrail {
    /// `endpoint` or `region`.
    pub dimension: String,
    /// The endpoint or region (`(none)` when events did not say).
    pub segment: String,
    /// A request metric with a guardrail (`error_rate`, `latency_p99`, … as configured).
    pub metric: Metric,
    /// Compared variant.
    pub variant: String,
    /// Users of the baseline in this segment.
    pub baseline_users: u64,
    /// Users of the variant in this segment.
    pub variant_users: u64,
    /// Baseline's value in the segment.
    pub baseline_value: Option<f64>,
    /// Variant's value in the segment.
    pub variant_value: Option<f64>,
    /// The margin test, its p-value corrected across every segment test of the experiment;
    /// breached when significant after correction with both arms past `segment_min_users`.
    pub guardrail: Guardrail,
}

/// Synthetic checks of one variant: synthetic users' live requests.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SyntheticCheck {
    /// Variant probed.
    pub variant: String,
    /// Synthetic users (probes).
    pub users: u64,
    /// Their live requests (checks run).
    pub checks: u64,
    /// Checks that failed (status ≥ 400).
    pub failures: u64,
    /// (checks − failures) / checks.
    pub success_rate: Option<f64>,
}

/// Shadow or mirror calls of one variant against the same variant's live traffic.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShadowTraffic {
    /// Variant that served the calls.
    pub variant: String,
    /// `shadow` or `mirror`.
    pub mode: String,
    /// Calls.
    pub requests: u64,
    /// Of which status ≥ 500.
    pub errors: u64,
    /// errors / requests.
    pub error_rate: Option<f64>,
    /// The variant's live error rate, for comparison.
    pub live_error_rate: Option<f64>,
    /// Two-sided p-value of "same error rate as live" (two-proportion z test; requests treated as
    /// independent: descriptive).
    pub error_rate_p_value: Option<f64>,
    /// Median latency of the calls, ms.
    pub latency_p50: Option<f64>,
    /// p99 latency of the calls, ms.
    pub latency_p99: Option<f64>,
    /// The variant's live p99, ms.
    pub live_latency_p99: Option<f64>,
    /// Calls that reported `shadow_match`.
    pub compared: u64,
    /// Of those, results that differed from the live one.
    pub mismatches: u64,
    /// mismatches / compared.
    pub mismatch_rate: Option<f64>,
}
