//! From one experiment's users and settings to its report and verdict (statistics.md section 7):
//! - INVALID: sample ratio mismatch, too many users in two variants, no baseline data;
//! - ROLLBACK: a guardrail significantly above its threshold after correction, with enough users;
//!   or a blast-radius limit crossed (harm budget, traffic cap), which needs no minimum sample and
//!   stands even when the experiment is INVALID;
//! - PROMOTE: every variant past the minimum sample and every guardrail shown non-inferior;
//! - CONTINUE: anything else, saying what is missing.

pub mod metrics;
pub mod report;
pub mod segments;
pub mod side_traffic;
mod srm;

use std::collections::BTreeMap;

use crate::config::{ExperimentSettings, Method, Metric, DEFAULT_BASELINES};
use crate::decide::metrics::VariantStats;
use crate::decide::metrics::{blast_radius, compare, variant_stats};
use crate::decide::report::{
    BlastRadius, ComparedStage, Comparison, DataQuality, Report, SegmentGuardrail, Verdict,
};
use crate::read::summary::{ExperimentSummary, StageArms};

pub use srm::SRM_P_THRESHOLD;

/// A variant's excess errors by rollout stage: each stage's users against its own baseline.
fn staged_excess(
    users: &ExperimentSummary,
    base: &VariantStats,
    variant: &VariantStats,
    settings: &ExperimentSettings,
) -> crate::stats::Estimate {
    let none = crate::stats::RatioStats::default();
    let strata: Vec<_> = users
        .stages
        .values()
        .filter_map(|s| {
            let treatment = &s.variants.get(&variant.name)?.errors;
            Some((
                s.variants.get(&base.name).map_or(&none, |b| &b.errors),
                treatment,
            ))
        })
        .collect();
    crate::stats::stratified_excess_errors(&strata, &base.arm.errors, settings.alpha())
}

/// The rollout stage whose users are compared: the latest with users, when the experiment has
/// stages (in the file or carried by its exposures, `config::stages`); `None` compares every
/// user.
fn compared_stage(users: &ExperimentSummary) -> Option<(usize, &StageArms)> {
    users
        .stages
        .iter()
        .rev()
        .find(|(_, s)| s.real_users() > 0)
        .map(|(k, s)| (*k, s))
}

fn pick_baseline(settings: &ExperimentSettings, variants: &[&String]) -> Option<String> {
    if let Some(b) = &settings.baseline {
        return Some(b.clone());
    }
    DEFAULT_BASELINES
        .iter()
        .find(|b| variants.iter().any(|v| v == b))
        .map(|b| b.to_string())
}

pub(crate) fn fmt_pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// Analyses one experiment.
///
/// Revenue is winsorized where the summary was (`users.revenue_cap`: the plan caps it when the
/// settings say so).
pub fn decide(
    experiment: &str,
    users: &ExperimentSummary,
    settings: &ExperimentSettings,
) -> Report {
    let alpha = settings.alpha();
    let cap = users.revenue_cap;
    // With rollout stages, the variants are compared within the latest stage (config::stages);
    // the harm budget and the traffic cap count every user.
    let compared = compared_stage(users);
    let (arms, segment_arms, multiple_variants, real_users) = match &compared {
        Some((_, s)) => (
            &s.variants,
            &s.segments,
            s.multiple_variants,
            s.real_users(),
        ),
        None => (
            &users.variants,
            &users.segments,
            users.multiple_variants,
            users.real_users(),
        ),
    };
    let stats_by_variant = variant_stats(arms, alpha);
    let pooled = compared.map(|_| variant_stats(&users.variants, alpha));
    let pooled_stats = pooled.as_ref().unwrap_or(&stats_by_variant);
    let names: Vec<&String> = stats_by_variant.keys().collect();
    let baseline = pick_baseline(settings, &names);
    let total_users: u64 = stats_by_variant.values().map(|v| v.arm.users).sum();
    let pooled_users: u64 = pooled_stats.values().map(|v| v.arm.users).sum();
    let multiple_share = if real_users > 0 {
        multiple_variants as f64 / real_users as f64
    } else {
        0.0
    };

    let mut invalid: Vec<String> = Vec::new();
    let mut rollback: Vec<String> = Vec::new();
    let mut pending: Vec<String> = Vec::new();

    // Baseline first, then the others by name.
    let base_stats = baseline.as_ref().and_then(|b| stats_by_variant.get(b));
    let mut order: Vec<&String> = names.clone();
    order.sort_by_key(|n| (Some(*n) != baseline.as_ref(), (*n).clone()));
    let variants: Vec<_> = order
        .iter()
        .map(|n| stats_by_variant[*n].metrics(total_users, &settings.metrics))
        .collect();
    let synthetic_checks = side_traffic::synthetic_checks(&users.modes);
    let shadow_traffic = side_traffic::shadow_traffic(&users.modes, &variants);

    let srm = srm::check(settings, users, compared.map(|(k, _)| k), &mut invalid);
    if multiple_share > settings.max_multiple_exposure {
        invalid.push(format!(
            "{} users ({}) were seen in more than one variant, above the {} allowed: assignment is leaking",
            multiple_variants,
            fmt_pct(multiple_share),
            fmt_pct(settings.max_multiple_exposure)
        ));
    }
    match (&baseline, base_stats) {
        (None, _) => invalid.push(format!(
            "no baseline variant: none of {} is present (variants: {}); set `baseline` in the experiments file",
            DEFAULT_BASELINES.join(", "),
            names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )),
        (Some(b), None) => invalid.push(format!("the baseline variant {b:?} has no users")),
        (Some(_), Some(s)) if s.arm.users == 0 => invalid.push("the baseline has no users".into()),
        _ => {}
    }

    let mut comparisons = Vec::new();
    let mut blast = Vec::new();
    if let Some(base) = base_stats {
        for name in order.iter().filter(|n| Some(**n) != baseline.as_ref()) {
            let variant = &stats_by_variant[*name];
            comparisons.extend(compare(base, variant, settings));
            let b = match (pooled_stats.get(&base.name), pooled_stats.get(*name)) {
                (Some(pooled_base), Some(pooled_variant)) if compared.is_some() => {
                    let excess = staged_excess(users, pooled_base, pooled_variant, settings);
                    blast_radius(
                        pooled_base,
                        pooled_variant,
                        pooled_users,
                        Some(excess),
                        settings,
                    )
                }
                _ => blast_radius(base, variant, total_users, None, settings),
            };
            rollback.extend(blast_reasons(&b, settings));
            blast.push(b);
        }
    }
    let blast_rollback = !rollback.is_empty();

    rollback.extend(correct_guardrails(
        &mut comparisons,
        &stats_by_variant,
        settings,
    ));

    let segment_guardrails = match &baseline {
        Some(b) if base_stats.is_some() => segments::guardrails(segment_arms, b, settings),
        _ => Vec::new(),
    };
    rollback.extend(segment_reasons(&segment_guardrails));

    pending.extend(pending_reasons(&stats_by_variant, &comparisons, settings));

    let (verdict, reasons) = verdict_of(
        blast_rollback,
        rollback,
        invalid,
        pending,
        &comparisons,
        settings,
    );

    Report {
        experiment: experiment.to_string(),
        verdict,
        reasons,
        method: settings.method.name().into(),
        n_star: (settings.method == Method::Sequential).then_some(settings.n_star),
        confidence: settings.confidence,
        baseline,
        srm,
        rollout_stage: compared.map(|(k, s)| ComparedStage {
            stage: k,
            from: s.from_ms.map(crate::config::stages::rfc3339),
            weights: s.weights.clone(),
            users: s.real_users(),
            earlier_users: users.stages.range(..k).map(|(_, s)| s.real_users()).sum(),
        }),
        data_quality: DataQuality {
            multiple_variant_users: multiple_variants,
            multiple_variant_share: multiple_share,
            synthetic_users: users.synthetic.clone(),
            duplicates_dropped: users.duplicates_dropped,
            revenue_winsorized_at: cap,
        },
        segments: segment_guardrails,
        synthetic_checks,
        shadow_traffic,
        variants,
        comparisons,
        blast_radius: blast,
    }
}

/// A variant's blast-radius breaches in words: they roll back with or without significance.
fn blast_reasons(b: &BlastRadius, settings: &ExperimentSettings) -> Vec<String> {
    let mut rollback = Vec::new();
    if b.harm_budget_exceeded {
        rollback.push(format!(
            "{}: about {:.0} excess errors (at least {:.0} at {:.0}% confidence) exceed the harm budget of {:.0}",
            b.variant, b.excess_errors, b.excess_errors_low, settings.confidence * 100.0, b.harm_budget
        ));
    }
    if b.traffic_cap_exceeded {
        rollback.push(format!(
            "{}: serves {} of users, significantly above its traffic cap of {}",
            b.variant,
            fmt_pct(b.traffic_share),
            fmt_pct(b.traffic_cap.unwrap_or_default())
        ));
    }
    rollback
}

/// Corrects the guardrails' margin tests across the experiment (Holm or BH), marks the breaches
/// of variants past the minimum sample, and says each breach in words.
fn correct_guardrails(
    comparisons: &mut [Comparison],
    stats_by_variant: &BTreeMap<String, VariantStats>,
    settings: &ExperimentSettings,
) -> Vec<String> {
    let alpha = settings.alpha();
    let mut rollback = Vec::new();
    let guardrail_idx: Vec<usize> = comparisons
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.guardrail
                .as_ref()
                .is_some_and(|g| g.margin_p_value.is_some())
        })
        .map(|(i, _)| i)
        .collect();
    let raw: Vec<f64> = guardrail_idx
        .iter()
        .map(|&i| {
            comparisons[i]
                .guardrail
                .as_ref()
                .and_then(|g| g.margin_p_value)
                .unwrap_or(1.0)
        })
        .collect();
    let adjusted = settings.correction.adjust(&raw);
    let min_users_ok = |name: &str| {
        stats_by_variant
            .get(name)
            .is_some_and(|v| v.arm.users >= settings.min_users)
    };
    for (&i, &p_adj) in guardrail_idx.iter().zip(&adjusted) {
        let c = &mut comparisons[i];
        let enough = min_users_ok(&c.variant) && min_users_ok(&c.baseline);
        if let Some(g) = c.guardrail.as_mut() {
            g.margin_p_adjusted = Some(p_adj);
            g.breached = enough && p_adj < alpha;
            if g.breached {
                rollback.push(format!(
                    "{}: {} is {} the baseline's ({} vs {}), significantly {} the limit of {} (p = {:.2e}, {} corrected)",
                    c.variant,
                    c.metric,
                    g.on_scale(g.observed),
                    fmt_value(&c.metric, c.variant_value),
                    fmt_value(&c.metric, c.baseline_value),
                    g.past(),
                    g.limit_text(),
                    p_adj,
                    settings.correction.label(),
                ));
            }
        }
    }
    rollback
}

/// The three strongest segment breaches in words, the rest counted (all are in `segments`).
fn segment_reasons(segment_guardrails: &[SegmentGuardrail]) -> Vec<String> {
    let mut rollback = Vec::new();
    let mut breached: Vec<_> = segment_guardrails
        .iter()
        .filter(|g| g.guardrail.breached)
        .collect();
    breached.sort_by(|a, b| {
        let p = |g: &&SegmentGuardrail| g.guardrail.margin_p_adjusted.unwrap_or(1.0);
        p(a).total_cmp(&p(b))
    });
    if breached.len() > 3 {
        rollback.push(format!(
            "{} segment guardrails breached in all (see `segments`); the strongest:",
            breached.len()
        ));
    }
    for g in breached.iter().take(3) {
        rollback.push(format!(
            "{} in {} {}: {} is {} the baseline's there, significantly {} the limit of {} (p = {:.2e}, corrected across {} segment tests)",
            g.variant,
            g.dimension,
            g.segment,
            g.metric,
            g.guardrail.on_scale(g.guardrail.observed),
            g.guardrail.past(),
            g.guardrail.limit_text(),
            g.guardrail.margin_p_adjusted.unwrap_or(f64::NAN),
            segment_guardrails
                .iter()
                .filter(|s| s.guardrail.margin_p_adjusted.is_some())
                .count()
        ));
    }
    rollback
}

/// What stands between the experiment and a decision: variants short of the minimum sample,
/// guardrails neither breached nor yet shown non-inferior.
fn pending_reasons(
    stats_by_variant: &BTreeMap<String, VariantStats>,
    comparisons: &[Comparison],
    settings: &ExperimentSettings,
) -> Vec<String> {
    let mut pending = Vec::new();
    for (name, v) in stats_by_variant {
        if v.arm.users < settings.min_users {
            pending.push(format!(
                "{name} needs {} more users (has {} of {})",
                settings.min_users - v.arm.users,
                v.arm.users,
                settings.min_users
            ));
        }
    }
    for c in comparisons {
        if let Some(g) = &c.guardrail {
            if !g.non_inferior && !g.breached {
                pending.push(match g.bound {
                    Some(_) => format!(
                        "{}: {} not yet shown {} {} (bound {})",
                        c.variant,
                        c.metric,
                        g.within(),
                        g.limit_text(),
                        g.on_scale(g.bound)
                    ),
                    None if matches!(c.metric, Metric::Defined(_)) => format!(
                        "{}: {} cannot be bounded yet (its per-user values have no variance: \
                         too few users, or none with events of its kinds; \
                         `shiftright query --name business_kinds` lists the kinds present)",
                        c.variant, c.metric
                    ),
                    None => format!(
                        "{}: {} cannot be bounded yet (too few requests or errors)",
                        c.variant, c.metric
                    ),
                });
            }
        }
    }
    pending
}

/// The verdict and its reasons, most severe first: a blast-radius breach rolls back whatever
/// else holds; then INVALID; then a guardrail's breach; PROMOTE when nothing is pending.
fn verdict_of(
    blast_rollback: bool,
    rollback: Vec<String>,
    invalid: Vec<String>,
    mut pending: Vec<String>,
    comparisons: &[Comparison],
    settings: &ExperimentSettings,
) -> (Verdict, Vec<String>) {
    // Without a blast-radius breach, every rollback reason is a guardrail's.
    let metric_rollback = !rollback.is_empty();
    if blast_rollback {
        let mut r = rollback;
        r.extend(invalid);
        (Verdict::Rollback, r)
    } else if !invalid.is_empty() {
        (Verdict::Invalid, invalid)
    } else if metric_rollback {
        (Verdict::Rollback, rollback)
    } else if pending.is_empty() && !comparisons.is_empty() {
        let mut r = vec![format!(
            "every guardrail is shown non-inferior at {:.0}% confidence ({}) with at least {} users per variant",
            settings.confidence * 100.0,
            match settings.method {
                Method::Sequential => "anytime-valid",
                Method::Fixed => "fixed horizon",
            },
            settings.min_users
        )];
        for c in comparisons.iter().filter(|c| c.guardrail.is_some()) {
            if let Some(g) = &c.guardrail {
                r.push(format!(
                    "{}: {} bound {} is {} the limit of {}",
                    c.variant,
                    c.metric,
                    g.on_scale(g.bound),
                    g.within(),
                    g.limit_text()
                ));
            }
        }
        (Verdict::Promote, r)
    } else {
        if comparisons.is_empty() {
            pending.push("no variant to compare with the baseline yet".into());
        }
        (Verdict::Continue, pending)
    }
}

fn fmt_value(metric: &Metric, v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(x) if metric.is_share() => fmt_pct(x),
        Some(x) if metric.quantile().is_some() => format!("{x:.1} ms"),
        Some(x) => format!("{x:.3}"),
    }
}

#[cfg(test)]
mod tests;
