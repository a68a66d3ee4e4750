//! Per-variant metrics and the comparisons of each variant with the baseline, from the users of
//! one experiment. Pure: the decision is made from these in `decision`.

use std::collections::BTreeMap;

use crate::config::{ExperimentSettings, Method};
use crate::report::{BlastRadius, Comparison, Guardrail, Latency, QuantileValue, VariantMetrics};
use crate::stats::{
    self, ClusteredSample, Estimate, Horizon, MeanStats, QuantileEstimate, RatioStats,
};
use crate::users::UserRow;

/// Quantiles reported for latency.
pub const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)];

/// Sufficient statistics of one variant.
#[derive(Debug)]
pub struct VariantStats {
    /// Variant name.
    pub name: String,
    /// Users.
    pub users: u64,
    /// Errors over requests, per user (users with requests only).
    pub errors: RatioStats,
    /// Conversion 0/1 per user.
    pub conversion: MeanStats,
    /// Revenue per user, zeros included.
    pub revenue: MeanStats,
    /// Latency quantiles (user-clustered CIs).
    pub quantiles: Vec<Option<QuantileEstimate>>,
    /// Live latencies by user, for the rank test.
    pub latencies: ClusteredSample,
}

impl VariantStats {
    /// Summarises a variant's users at confidence level 1 − `alpha`, each user's revenue capped at
    /// `revenue_cap` (winsorization) when given.
    pub fn from_users(name: &str, users: &[UserRow], alpha: f64, revenue_cap: Option<f64>) -> Self {
        let mut errors = RatioStats::default();
        let mut conversion = MeanStats::default();
        let mut revenue = MeanStats::default();
        let mut latencies = Vec::with_capacity(users.len());
        for u in users {
            if u.requests > 0 {
                errors.push(u.errors as f64, u.requests as f64);
                latencies.push(u.latencies.clone());
            }
            conversion.push(if u.converted { 1.0 } else { 0.0 });
            revenue.push(revenue_cap.map_or(u.revenue, |cap| u.revenue.min(cap)));
        }
        let sample = ClusteredSample::new(latencies);
        let quantiles = QUANTILES
            .iter()
            .map(|(_, nu)| sample.quantile(*nu, alpha))
            .collect();
        VariantStats {
            name: name.to_string(),
            users: users.len() as u64,
            errors,
            conversion,
            revenue,
            quantiles,
            latencies: sample,
        }
    }

    fn p(&self, i: usize) -> Option<&QuantileEstimate> {
        self.quantiles.get(i).and_then(Option::as_ref)
    }

    /// The report's view of the variant; `total_users` gives its share.
    pub fn metrics(&self, total_users: u64) -> VariantMetrics {
        let requests = self.errors.sum_y.round() as u64;
        let errors = self.errors.sum_x.round() as u64;
        let q = |i: usize| self.p(i).map(|e| e.estimate);
        let latency_ci = QUANTILES
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                let e = self.p(i);
                (
                    name.to_string(),
                    QuantileValue {
                        value: e.map(|e| e.estimate),
                        ci_low: e.and_then(|e| e.ci_low),
                        ci_high: e.and_then(|e| e.ci_high),
                    },
                )
            })
            .collect();
        let per_user = |v: f64| (self.users > 0).then(|| v / self.users as f64);
        VariantMetrics {
            name: self.name.clone(),
            users: self.users,
            share: if total_users > 0 {
                self.users as f64 / total_users as f64
            } else {
                0.0
            },
            requests,
            errors,
            error_rate: (requests > 0).then(|| errors as f64 / requests as f64),
            latency_ms: Latency {
                p50: q(0),
                p95: q(1),
                p99: q(2),
            },
            latency_ci,
            conversions: self.conversion.sum.round() as u64,
            conversion_rate: per_user(self.conversion.sum),
            revenue: self.revenue.sum,
            revenue_per_user: per_user(self.revenue.sum),
        }
    }
}

fn comparison(
    metric: &str,
    base: &VariantStats,
    variant: &VariantStats,
    values: (Option<f64>, Option<f64>),
    diff: Option<Estimate>,
    lift: Option<Estimate>,
    alpha: f64,
) -> Comparison {
    let (baseline_value, variant_value) = values;
    let absolute = match (baseline_value, variant_value) {
        (Some(b), Some(v)) => Some(v - b),
        _ => None,
    };
    let relative = match (baseline_value, variant_value) {
        (Some(b), Some(v)) if b != 0.0 => Some(v / b - 1.0),
        _ => None,
    };
    Comparison {
        metric: metric.to_string(),
        baseline: base.name.clone(),
        variant: variant.name.clone(),
        baseline_value,
        variant_value,
        absolute_diff: absolute,
        relative_lift: relative,
        ci_low: diff.map(|d| d.ci_low),
        ci_high: diff.map(|d| d.ci_high),
        lift_ci_low: lift.map(|l| l.ci_low),
        lift_ci_high: lift.map(|l| l.ci_high),
        p_value: diff.map(|d| d.p_value),
        significant: diff.is_some_and(|d| d.p_value < alpha),
        guardrail: None,
    }
}

/// The horizon of a comparison: sequential tests count the users of both arms.
pub fn horizon(
    base: &VariantStats,
    variant: &VariantStats,
    settings: &ExperimentSettings,
) -> Horizon {
    match settings.method {
        Method::Fixed => Horizon::Fixed,
        Method::Sequential => Horizon::Sequential {
            n: (base.users + variant.users) as f64,
            n_star: settings.n_star,
        },
    }
}

/// A fixed-horizon estimate, as the method reports it: under `Sequential` the interval is the
/// confidence sequence's and the p-value the always-valid one.
fn widen(estimate: Option<Estimate>, horizon: Horizon, alpha: f64) -> Option<Estimate> {
    let e = estimate?;
    Some(match horizon {
        Horizon::Fixed => e,
        Horizon::Sequential { n, n_star } => stats::sequential_interval(&e, n, n_star, alpha),
    })
}

/// Every comparison of `variant` with `base`. Guardrail fields are filled in except the corrected
/// p-values and the breach, which need all guardrails of the experiment (see `decision`).
pub fn compare(
    base: &VariantStats,
    variant: &VariantStats,
    settings: &ExperimentSettings,
) -> Vec<Comparison> {
    let alpha = settings.alpha();
    let h = horizon(base, variant, settings);
    let at = |e: Option<Estimate>| widen(e, h, alpha);
    let mut out = Vec::new();

    let rate = |s: &VariantStats| (s.errors.sum_y > 0.0).then(|| s.errors.ratio());
    let mut error_rate = comparison(
        "error_rate",
        base,
        variant,
        (rate(base), rate(variant)),
        at(stats::ratio_diff(&base.errors, &variant.errors, alpha)),
        at(stats::ratio_relative(&base.errors, &variant.errors, alpha)),
        alpha,
    );
    let margin = stats::ratio_margin_test_at(
        &base.errors,
        &variant.errors,
        settings.error_rate_ratio,
        alpha,
        h,
    );
    let upper = stats::ratio_upper_bound_at(&base.errors, &variant.errors, alpha, h);
    error_rate.guardrail = Some(Guardrail {
        threshold: settings.error_rate_ratio,
        ratio: error_rate.relative_lift.map(|l| l + 1.0),
        ratio_upper: upper,
        margin_p_value: (variant.errors.sum_y > 0.0).then_some(margin.p_value),
        margin_p_adjusted: None,
        test: if margin.exact { "exact_poisson" } else { "z" }.into(),
        breached: false,
        non_inferior: upper.is_some_and(|u| u < settings.error_rate_ratio),
    });
    out.push(error_rate);

    for (i, (name, _)) in QUANTILES.iter().enumerate() {
        let (b, v) = (base.p(i), variant.p(i));
        let (diff, lift) = match (b, v) {
            (Some(b), Some(v)) => (
                at(stats::quantile_diff(b, v, alpha)),
                at(stats::quantile_relative(b, v, alpha)),
            ),
            _ => (None, None),
        };
        let mut c = comparison(
            &format!("latency_{name}"),
            base,
            variant,
            (b.map(|e| e.estimate), v.map(|e| e.estimate)),
            diff,
            lift,
            alpha,
        );
        if *name == "p99" {
            let (margin_p, upper) = match (b, v) {
                (Some(b), Some(v)) => (
                    stats::quantile_margin_test_at(b, v, settings.p99_ratio, alpha, h),
                    stats::quantile_ratio_upper_bound_at(b, v, alpha, h),
                ),
                _ => (None, None),
            };
            c.guardrail = Some(Guardrail {
                threshold: settings.p99_ratio,
                ratio: c.relative_lift.map(|l| l + 1.0),
                ratio_upper: upper,
                margin_p_value: margin_p,
                margin_p_adjusted: None,
                test: "quantile_z".into(),
                breached: false,
                non_inferior: upper.is_some_and(|u| u < settings.p99_ratio),
            });
        }
        out.push(c);
    }

    if let Some(rank) = latency_rank(base, variant, alpha) {
        out.push(rank);
    }

    let mean = |m: &MeanStats| (m.n > 0.0).then(|| m.mean());
    out.push(comparison(
        "conversion_rate",
        base,
        variant,
        (mean(&base.conversion), mean(&variant.conversion)),
        at(stats::welch_diff(
            &base.conversion,
            &variant.conversion,
            alpha,
        )),
        at(stats::relative_lift(
            &base.conversion,
            &variant.conversion,
            alpha,
        )),
        alpha,
    ));
    out.push(comparison(
        "revenue_per_user",
        base,
        variant,
        (mean(&base.revenue), mean(&variant.revenue)),
        at(stats::welch_diff(&base.revenue, &variant.revenue, alpha)),
        at(stats::relative_lift(&base.revenue, &variant.revenue, alpha)),
        alpha,
    ));
    out
}

/// Mann–Whitney U over live requests, as Kayenta reports it: the values are P(a request of this arm
/// is slower than one of the other), ties counted ½, and the p-value the rank-sum test's. Requests
/// are treated as independent, so it is descriptive, never a guardrail (the clustered p99 test is).
fn latency_rank(base: &VariantStats, variant: &VariantStats, alpha: f64) -> Option<Comparison> {
    let (b, v) = (base.latencies.values(), variant.latencies.values());
    let test = stats::mann_whitney_u(b, v)?;
    let slower = test.u / (b.len() as f64 * v.len() as f64);
    Some(Comparison {
        metric: "latency_rank".into(),
        baseline: base.name.clone(),
        variant: variant.name.clone(),
        baseline_value: Some(1.0 - slower),
        variant_value: Some(slower),
        absolute_diff: Some(slower - (1.0 - slower)),
        relative_lift: None,
        ci_low: None,
        ci_high: None,
        lift_ci_low: None,
        lift_ci_high: None,
        p_value: Some(test.p_value),
        significant: test.p_value < alpha,
        guardrail: None,
    })
}

/// The blast-radius checks of `variant`: excess errors against the harm budget, share against the cap.
pub fn blast_radius(
    base: &VariantStats,
    variant: &VariantStats,
    total_users: u64,
    settings: &ExperimentSettings,
) -> BlastRadius {
    let alpha = settings.alpha();
    let excess = stats::excess_errors(&base.errors, &variant.errors, alpha);
    let share = if total_users > 0 {
        variant.users as f64 / total_users as f64
    } else {
        0.0
    };
    let cap_p = settings
        .traffic_cap
        .map(|cap| stats::share_above_cap_p(variant.users, total_users, cap));
    BlastRadius {
        variant: variant.name.clone(),
        excess_errors: excess.estimate,
        excess_errors_low: excess.ci_low,
        harm_budget: settings.harm_budget,
        harm_budget_exceeded: excess.ci_low.is_finite() && excess.ci_low > settings.harm_budget,
        traffic_share: share,
        traffic_cap: settings.traffic_cap,
        traffic_cap_p_value: cap_p,
        traffic_cap_exceeded: cap_p.is_some_and(|p| p < alpha),
    }
}

/// Variant statistics of an experiment, keyed by name (revenue capped at `revenue_cap` if given).
pub fn variant_stats(
    users: &BTreeMap<String, Vec<UserRow>>,
    alpha: f64,
    revenue_cap: Option<f64>,
) -> BTreeMap<String, VariantStats> {
    users
        .iter()
        .map(|(name, rows)| {
            (
                name.clone(),
                VariantStats::from_users(name, rows, alpha, revenue_cap),
            )
        })
        .collect()
}

/// The `percentile` of revenue over every user of every variant: the winsorization cap, so that
/// one whale purchase cannot decide a revenue comparison. `None` without users.
pub fn revenue_cap(users: &BTreeMap<String, Vec<UserRow>>, percentile: f64) -> Option<f64> {
    let mut values: Vec<f64> = users
        .values()
        .flatten()
        .map(|u| u.revenue)
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * percentile).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}
