//! The sample ratio mismatch check: users per variant against the expected allocation
//! (statistics.md section 7), once over all users, or once per rollout stage when the
//! experiment ramps (`config::stages`), each stage's users against that stage's weights, the
//! stages' p-values Holm-adjusted together so that more stages do not mean more false INVALIDs.

use std::collections::BTreeMap;

use crate::config::{Correction, ExperimentSettings};
use crate::decide::fmt_pct;
use crate::decide::report::{Srm, StageSrm};
use crate::read::summary::ExperimentSummary;
use crate::stats::{self, SrmResult};

/// SRM p-value below which the experiment is INVALID.
pub const SRM_P_THRESHOLD: f64 = 0.001;

/// One allocation's test: the χ² result (None with too few users), and the variants that have
/// users but no weight.
struct Tested {
    result: Option<SrmResult>,
    unexpected: Vec<String>,
    /// "v1 94.10% expected 95.00%, …", for the reason.
    detail: String,
    normalised: BTreeMap<String, f64>,
}

fn test(counts: &BTreeMap<String, u64>, weights: &BTreeMap<String, f64>) -> Tested {
    let unexpected = counts
        .iter()
        .filter(|(k, n)| **n > 0 && !weights.contains_key(*k))
        .map(|(k, _)| k.clone())
        .collect();
    let total_w: f64 = weights.values().sum();
    let observed: Vec<u64> = weights
        .keys()
        .map(|n| counts.get(n).copied().unwrap_or(0))
        .collect();
    let w: Vec<f64> = weights.values().copied().collect();
    let total: u64 = observed.iter().sum();
    let detail = weights
        .iter()
        .zip(&observed)
        .map(|((n, w), o)| {
            format!(
                "{n} {} expected {}",
                fmt_pct(*o as f64 / total.max(1) as f64),
                fmt_pct(w / total_w)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    Tested {
        result: stats::srm_test(&observed, &w),
        unexpected,
        detail,
        normalised: weights
            .iter()
            .map(|(k, v)| (k.clone(), v / total_w))
            .collect(),
    }
}

/// The INVALID reason of a mismatch: where (`within`), the test's figures, the shares seen
/// against those expected (`detail`), and what to suspect.
fn mismatch_reason(within: &str, test: &str, detail: &str, suspect: &str) -> String {
    format!("sample ratio mismatch{within} ({test} < {SRM_P_THRESHOLD}): {detail}; {suspect}")
}

fn unexpected_reason(unexpected: &[String], within: &str) -> String {
    format!(
        "variants {unexpected:?} have users{within} but no expected weight: traffic reaches a variant it should not"
    )
}

/// The check of `users` under `settings`; reasons for INVALID go to `invalid`. `compared` is
/// the stage whose users the comparisons read (its counts are the ones shown at the top).
pub fn check(
    settings: &ExperimentSettings,
    users: &ExperimentSummary,
    compared: Option<usize>,
    invalid: &mut Vec<String>,
) -> Srm {
    let counts_of = |arms: &BTreeMap<String, crate::read::summary::ArmSummary>| {
        arms.iter()
            .map(|(n, a)| (n.clone(), a.users))
            .collect::<BTreeMap<String, u64>>()
    };
    if users.stages.is_empty() {
        let counts = counts_of(&users.variants);
        let Some(weights) = &settings.weights else {
            return Srm {
                checked: false,
                p_value: None,
                chi2: None,
                counts,
                expected_weights: None,
                note: Some("no expected allocation: set `weights` (or `stages`) for this experiment in the experiments file to check SRM".into()),
                stages: Vec::new(),
            };
        };
        let t = test(&counts, weights);
        if !t.unexpected.is_empty() {
            invalid.push(unexpected_reason(&t.unexpected, ""));
        }
        if let Some(r) = t.result.as_ref().filter(|r| r.p_value < SRM_P_THRESHOLD) {
            invalid.push(mismatch_reason(
                "",
                &format!("χ² p = {:.1e}", r.p_value),
                &t.detail,
                "the assignment or the logging is broken",
            ));
        }
        return Srm {
            checked: t.result.is_some(),
            p_value: t.result.as_ref().map(|r| r.p_value),
            chi2: t.result.as_ref().map(|r| r.chi2),
            counts,
            expected_weights: Some(t.normalised),
            note: t
                .result
                .is_none()
                .then(|| "too few users to test".to_string()),
            stages: Vec::new(),
        };
    }

    // By stage: each stage's users against its own weights, Holm across the stages tested.
    let mut stages: Vec<StageSrm> = Vec::new();
    // The words of each stage's test, by position in `stages`.
    let mut details: Vec<String> = Vec::new();
    for (&k, arms) in &users.stages {
        let counts = counts_of(&arms.variants);
        let from = arms.from_ms.map(crate::config::stages::rfc3339);
        let mut row = StageSrm {
            stage: k,
            from,
            counts,
            expected_weights: None,
            chi2: None,
            p_value: None,
            adjusted_p_value: None,
            note: None,
        };
        match &arms.weights {
            None => {
                row.note = Some(format!(
                    "no expected allocation for stage {k}: its {} users are not checked (set `weights` for it in the experiments file)",
                    arms.real_users()
                ));
            }
            Some(weights) => {
                let t = test(&row.counts, weights);
                if !t.unexpected.is_empty() {
                    invalid.push(unexpected_reason(&t.unexpected, &format!(" in stage {k}")));
                }
                row.expected_weights = Some(t.normalised);
                row.chi2 = t.result.as_ref().map(|r| r.chi2);
                row.p_value = t.result.as_ref().map(|r| r.p_value);
                if t.result.is_none() {
                    row.note = Some("too few users to test".into());
                }
                details.push(t.detail);
                stages.push(row);
                continue;
            }
        }
        details.push(String::new());
        stages.push(row);
    }
    let tested: Vec<usize> = (0..stages.len())
        .filter(|&i| stages[i].p_value.is_some())
        .collect();
    let raw: Vec<f64> = tested.iter().filter_map(|&i| stages[i].p_value).collect();
    let adjusted = Correction::Holm.adjust(&raw);
    for (&i, p) in tested.iter().zip(adjusted) {
        stages[i].adjusted_p_value = Some(p);
    }
    for &at in &tested {
        let s = &stages[at];
        if let Some(p) = s.adjusted_p_value.filter(|p| *p < SRM_P_THRESHOLD) {
            invalid.push(mismatch_reason(
                &format!(
                    " in rollout stage {}{}",
                    s.stage,
                    s.from
                        .as_ref()
                        .map(|f| format!(" (from {f})"))
                        .unwrap_or_default()
                ),
                &format!(
                    "χ² p = {:.1e}, {p:.1e} Holm-adjusted over {} stages,",
                    s.p_value.unwrap_or_default(),
                    tested.len()
                ),
                &details[at],
                "the assignment, the logging or the stages in the experiments file are wrong",
            ));
        }
    }
    let deciding = tested.iter().copied().min_by(|&a, &b| {
        stages[a]
            .adjusted_p_value
            .partial_cmp(&stages[b].adjusted_p_value)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let shown = compared
        .and_then(|k| stages.iter().find(|s| s.stage == k))
        .or(stages.last());
    Srm {
        checked: !tested.is_empty(),
        p_value: deciding.and_then(|i| stages[i].adjusted_p_value),
        chi2: deciding.and_then(|i| stages[i].chi2),
        counts: shown.map(|s| s.counts.clone()).unwrap_or_default(),
        expected_weights: shown.and_then(|s| s.expected_weights.clone()),
        note: tested
            .is_empty()
            .then(|| "no rollout stage has an expected allocation and enough users to test".into()),
        stages,
    }
}
