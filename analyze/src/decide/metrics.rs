//! Per-variant metrics and the comparisons of each variant with the baseline, from the users of
//! one experiment. Pure: the decision is made from these in `decide`.

use std::collections::BTreeMap;

use crate::config::user_metrics::UserMetric;
use crate::config::{ExperimentSettings, GuardrailSpec, Method, Metric};
use crate::decide::report::{
    BlastRadius, Comparison, Cuped, Guardrail, Interval, Latency, QuantileValue, UserMetricValue,
    VariantMetrics,
};
use crate::read::metric_columns::UserMetricStats;
use crate::read::summary::ArmSummary;
use crate::stats::{
    self, ArmEstimate, Estimate, Harm, Horizon, MarginResult, MeanStats, QuantileEstimate,
    RatioStats, Scale, ThresholdRule,
};

/// The least share of variance CUPED must remove to be used.
pub const MIN_CUPED_REDUCTION: f64 = 0.01;

/// Quantiles reported for latency.
pub const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)];

/// Sufficient statistics of one variant: its arm, and what the tests derive from it once.
#[derive(Debug)]
pub struct VariantStats {
    /// Variant name.
    pub name: String,
    /// Its users' sums and latency distribution, as the plan gave them.
    pub arm: ArmSummary,
    /// Latency quantiles (user-clustered CIs).
    pub quantiles: Vec<Option<QuantileEstimate>>,
    /// 1 − confidence, for the per-variant intervals.
    pub alpha: f64,
}

impl VariantStats {
    /// A variant's statistics from its arm, at confidence level 1 − `alpha`.
    pub fn from_summary(name: &str, arm: &ArmSummary, alpha: f64) -> Self {
        let quantiles = QUANTILES
            .iter()
            .map(|(_, nu)| arm.latencies.quantile(*nu, alpha))
            .collect();
        VariantStats {
            name: name.to_string(),
            arm: arm.clone(),
            quantiles,
            alpha,
        }
    }

    /// estimate ± z·√variance, clamped to `bounds`; `None` without a variance.
    fn interval(&self, estimate: f64, variance: f64, bounds: (f64, f64)) -> Option<Interval> {
        let se = variance.sqrt();
        (se > 0.0 && se.is_finite() && estimate.is_finite()).then(|| {
            let half = stats::dist::z_two_sided(self.alpha) * se;
            Interval {
                low: (estimate - half).max(bounds.0),
                high: (estimate + half).min(bounds.1),
            }
        })
    }

    fn mean_interval(&self, m: &MeanStats, bounds: (f64, f64)) -> Option<Interval> {
        (m.n >= 2.0)
            .then(|| self.interval(m.mean(), m.variance() / m.n, bounds))
            .flatten()
    }

    fn p(&self, i: usize) -> Option<&QuantileEstimate> {
        self.quantiles.get(i).and_then(Option::as_ref)
    }

    /// The report's view of the variant; `total_users` gives its share, `defined` the names of
    /// its user-defined metrics.
    pub fn metrics(&self, total_users: u64, defined: &[UserMetric]) -> VariantMetrics {
        let requests = self.arm.errors.sum_y.round() as u64;
        let errors = self.arm.errors.sum_x.round() as u64;
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
        let per_user = |v: f64| (self.arm.users > 0).then(|| v / self.arm.users as f64);
        VariantMetrics {
            name: self.name.clone(),
            users: self.arm.users,
            share: if total_users > 0 {
                self.arm.users as f64 / total_users as f64
            } else {
                0.0
            },
            requests,
            errors,
            error_rate: (requests > 0).then(|| errors as f64 / requests as f64),
            error_rate_ci: self.interval(
                self.arm.errors.ratio(),
                self.arm.errors.variance(),
                (0.0, 1.0),
            ),
            latency_ms: Latency {
                p50: q(0),
                p95: q(1),
                p99: q(2),
            },
            latency_ci,
            conversions: self.arm.conversion.sum.round() as u64,
            conversion_rate: per_user(self.arm.conversion.sum),
            conversion_rate_ci: self.mean_interval(&self.arm.conversion, (0.0, 1.0)),
            revenue: self.arm.revenue.sum,
            revenue_per_user: per_user(self.arm.revenue.sum),
            revenue_per_user_ci: self
                .mean_interval(&self.arm.revenue, (f64::NEG_INFINITY, f64::INFINITY)),
            metrics: defined
                .iter()
                .zip(&self.arm.user_metrics)
                .map(|(m, stats)| (m.name.clone(), self.user_metric_value(stats)))
                .collect(),
        }
    }

    fn user_metric_value(&self, stats: &UserMetricStats) -> UserMetricValue {
        let any = (f64::NEG_INFINITY, f64::INFINITY);
        match stats {
            UserMetricStats::Mean(m) => UserMetricValue {
                value: (m.n > 0.0).then(|| m.mean()),
                ci: self.mean_interval(m, any),
            },
            UserMetricStats::Ratio(r) => {
                let value = (r.sum_y != 0.0).then(|| r.ratio());
                UserMetricValue {
                    value,
                    ci: value.and_then(|v| self.interval(v, r.variance(), any)),
                }
            }
        }
    }
}

fn comparison(
    metric: Metric,
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
        direction: metric.default_harm(),
        metric,
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
        cuped: None,
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
            n: (base.arm.users + variant.arm.users) as f64,
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
/// p-values and the breach, which need all guardrails of the experiment (see `decide`).
pub fn compare(
    base: &VariantStats,
    variant: &VariantStats,
    settings: &ExperimentSettings,
) -> Vec<Comparison> {
    let alpha = settings.alpha();
    let h = horizon(base, variant, settings);
    let at = |e: Option<Estimate>| widen(e, h, alpha);
    let mut out = Vec::new();

    let rate = |s: &VariantStats| (s.arm.errors.sum_y > 0.0).then(|| s.arm.errors.ratio());
    let error_rate = comparison(
        Metric::ErrorRate,
        base,
        variant,
        (rate(base), rate(variant)),
        at(stats::ratio_diff(
            &base.arm.errors,
            &variant.arm.errors,
            alpha,
        )),
        at(stats::ratio_relative(
            &base.arm.errors,
            &variant.arm.errors,
            alpha,
        )),
        alpha,
    );
    out.push(error_rate);

    for (i, metric) in Metric::QUANTILES.into_iter().enumerate() {
        let (b, v) = (base.p(i), variant.p(i));
        let (diff, lift) = match (b, v) {
            (Some(b), Some(v)) => (
                at(stats::quantile_diff(b, v, alpha)),
                at(stats::quantile_relative(b, v, alpha)),
            ),
            _ => (None, None),
        };
        let c = comparison(
            metric,
            base,
            variant,
            (b.map(|e| e.estimate), v.map(|e| e.estimate)),
            diff,
            lift,
            alpha,
        );
        out.push(c);
    }

    if let Some(rank) = latency_rank(base, variant, alpha) {
        out.push(rank);
    }

    let mean = |m: &MeanStats| (m.n > 0.0).then(|| m.mean());
    for (metric, b, v, b_pre, v_pre) in [
        (
            Metric::ConversionRate,
            &base.arm.conversion,
            &variant.arm.conversion,
            &base.arm.conversion_pre,
            &variant.arm.conversion_pre,
        ),
        (
            Metric::RevenuePerUser,
            &base.arm.revenue,
            &variant.arm.revenue,
            &base.arm.revenue_pre,
            &variant.arm.revenue_pre,
        ),
    ] {
        // With pre-exposure values, the test runs on the CUPED-adjusted values; the values
        // reported stay the observed means. History that explains under 1% of the variance is
        // left out: the adjustment would only add θ's own noise.
        let adjustment =
            stats::cuped(b_pre, v_pre).filter(|a| a.variance_reduction >= MIN_CUPED_REDUCTION);
        let (tb, tv) = adjustment
            .as_ref()
            .map_or((b, v), |a| (&a.control, &a.treatment));
        let mut c = comparison(
            metric,
            base,
            variant,
            (mean(b), mean(v)),
            at(stats::welch_diff(tb, tv, alpha)),
            at(stats::relative_lift(tb, tv, alpha)),
            alpha,
        );
        c.cuped = adjustment.map(|a| Cuped {
            theta: a.theta,
            variance_reduction: a.variance_reduction,
            absolute_diff: a.treatment.mean() - a.control.mean(),
        });
        out.push(c);
    }
    for spec in &settings.guardrails {
        if let Some(c) = out.iter_mut().find(|c| c.metric == spec.metric) {
            c.direction = spec.rule.harm;
            c.guardrail = Some(guardrail(spec, base, variant, alpha, h));
        }
    }
    for (i, m) in settings.metrics.iter().enumerate() {
        let (Some(b), Some(v)) = (
            base.arm.user_metrics.get(i),
            variant.arm.user_metrics.get(i),
        ) else {
            continue;
        };
        let ratio = |r: &RatioStats| (r.sum_y != 0.0).then(|| r.ratio());
        let (values, diff, lift) = match (b, v) {
            (UserMetricStats::Mean(b), UserMetricStats::Mean(v)) => (
                (mean(b), mean(v)),
                stats::welch_diff(b, v, alpha),
                stats::relative_lift(b, v, alpha),
            ),
            (UserMetricStats::Ratio(b), UserMetricStats::Ratio(v)) => (
                (ratio(b), ratio(v)),
                stats::ratio_diff(b, v, alpha),
                stats::ratio_relative(b, v, alpha),
            ),
            _ => continue,
        };
        let mut c = comparison(
            Metric::Defined(m.name.clone()),
            base,
            variant,
            values,
            at(diff),
            at(lift),
            alpha,
        );
        c.direction = m.harm;
        if let Some(rule) = m.guardrail {
            let result = match (user_estimate(b), user_estimate(v)) {
                (Some(b), Some(v)) => stats::normal_margin(b, v, &rule, alpha, h),
                _ => MarginResult::default(),
            };
            c.guardrail = Some(guardrail_of(rule, result, "z"));
        }
        out.push(c);
    }
    out
}

/// A user-defined metric's estimate and its variance; `None` until it has one.
fn user_estimate(stats: &UserMetricStats) -> Option<ArmEstimate> {
    match stats {
        UserMetricStats::Mean(m) => mean_estimate(m),
        UserMetricStats::Ratio(r) => ratio_estimate(r).filter(|_| r.n >= 2.0),
    }
}

/// One guardrail's margin test. The default error-rate rule (a ratio, increases harmful) has its
/// own test, exact when errors are sparse or the baseline has none; every other rule is the normal
/// margin test over the two arms' estimates.
fn guardrail(
    spec: &GuardrailSpec,
    base: &VariantStats,
    variant: &VariantStats,
    alpha: f64,
    h: Horizon,
) -> Guardrail {
    let rule = spec.rule;
    let error_ratio = spec.metric == Metric::ErrorRate
        && rule.scale == Scale::Ratio
        && rule.harm == Harm::Increase;
    let (result, test) = if error_ratio {
        let margin = stats::ratio_margin_test_at(
            &base.arm.errors,
            &variant.arm.errors,
            rule.threshold,
            alpha,
            h,
        );
        let observed = (base.arm.errors.ratio() > 0.0 && variant.arm.errors.sum_y > 0.0)
            .then(|| variant.arm.errors.ratio() / base.arm.errors.ratio());
        let result = MarginResult {
            observed,
            bound: stats::ratio_upper_bound_at(&base.arm.errors, &variant.arm.errors, alpha, h),
            p_harm: (variant.arm.errors.sum_y > 0.0).then_some(margin.p_value),
        };
        (result, if margin.exact { "exact_poisson" } else { "z" })
    } else {
        let result = match (arm(&spec.metric, base), arm(&spec.metric, variant)) {
            (Some(b), Some(v)) => stats::normal_margin(b, v, &rule, alpha, h),
            _ => MarginResult::default(),
        };
        let test = if spec.metric.quantile().is_some() {
            "quantile_z"
        } else {
            "z"
        };
        (result, test)
    };
    guardrail_of(rule, result, test)
}

/// The report's guardrail of a margin test's result (its correction and breach come later).
fn guardrail_of(rule: ThresholdRule, result: MarginResult, test: &str) -> Guardrail {
    Guardrail {
        kind: rule.scale,
        direction: rule.harm,
        threshold: rule.threshold,
        limit: rule.limit(),
        observed: result.observed,
        bound: result.bound,
        margin_p_value: result.p_harm,
        margin_p_adjusted: None,
        test: test.into(),
        breached: false,
        non_inferior: result.non_inferior(&rule),
    }
}

/// A variant's estimate of `metric` and its variance; `None` until it has one.
fn arm(metric: &Metric, s: &VariantStats) -> Option<ArmEstimate> {
    if let Some(i) = metric.quantile() {
        return s.p(i).and_then(|q| {
            q.se.map(|se| ArmEstimate {
                value: q.estimate,
                variance: se * se,
            })
        });
    }
    match metric {
        Metric::ErrorRate => ratio_estimate(&s.arm.errors),
        Metric::ConversionRate => mean_estimate(&s.arm.conversion),
        Metric::RevenuePerUser => mean_estimate(&s.arm.revenue),
        // Guardrails name only the metrics above (`Metric::guardrail_named`); defined metrics
        // have their own estimate (`user_estimate`).
        _ => None,
    }
}

/// A per-user mean and the variance of its estimate; `None` below two users.
fn mean_estimate(m: &MeanStats) -> Option<ArmEstimate> {
    (m.n >= 2.0).then(|| ArmEstimate {
        value: m.mean(),
        variance: m.variance() / m.n,
    })
}

/// A ratio over users and its delta-method variance; `None` without a denominator.
fn ratio_estimate(r: &RatioStats) -> Option<ArmEstimate> {
    (r.sum_y != 0.0).then(|| ArmEstimate {
        value: r.ratio(),
        variance: r.variance(),
    })
}

/// Mann–Whitney U over live requests, as Kayenta reports it: the values are P(a request of this arm
/// is slower than one of the other), ties counted ½, and the p-value the rank-sum test's. Requests
/// are treated as independent, so it is descriptive, never a guardrail (the clustered p99 test is).
fn latency_rank(base: &VariantStats, variant: &VariantStats, alpha: f64) -> Option<Comparison> {
    let (b, v) = (&base.arm.latencies, &variant.arm.latencies);
    let test = b.mann_whitney(v)?;
    let slower = test.u / (b.len() as f64 * v.len() as f64);
    Some(Comparison {
        metric: Metric::LatencyRank,
        direction: Metric::LatencyRank.default_harm(),
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
        cuped: None,
    })
}

/// The blast-radius checks of `variant`: excess errors against the harm budget, share against the cap.
///
/// `excess` is the variant's excess errors when they are measured otherwise than over these two
/// arms (by rollout stage: `stats::stratified_excess_errors`).
pub fn blast_radius(
    base: &VariantStats,
    variant: &VariantStats,
    total_users: u64,
    excess: Option<stats::Estimate>,
    settings: &ExperimentSettings,
) -> BlastRadius {
    let alpha = settings.alpha();
    let excess = excess
        .unwrap_or_else(|| stats::excess_errors(&base.arm.errors, &variant.arm.errors, alpha));
    let share = if total_users > 0 {
        variant.arm.users as f64 / total_users as f64
    } else {
        0.0
    };
    let cap_p = settings
        .traffic_cap
        .map(|cap| stats::share_above_cap_p(variant.arm.users, total_users, cap));
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

/// Variant statistics of an experiment's arms, keyed by name.
pub fn variant_stats(
    arms: &BTreeMap<String, ArmSummary>,
    alpha: f64,
) -> BTreeMap<String, VariantStats> {
    arms.iter()
        .map(|(name, arm)| (name.clone(), VariantStats::from_summary(name, arm, alpha)))
        .collect()
}
