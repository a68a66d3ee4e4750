//! Metrics users define in the experiments file (`[[metrics]]`): engagement, sessions, refunds,
//! anything a business event's `kind` names.
//!
//! A metric is either, per user, the count or the sum of `value` of the business events of given
//! kinds at or after the user's first exposure (compared per user, like revenue: Welch's test), or
//! the ratio of two such metrics over users (the delta method, like the error rate). Each has a
//! harmful direction and may be a guardrail (a threshold as a ratio or an absolute amount).
//!
//! In the plan, `analysis_users` gives each user's counts and value sums per kind after first
//! exposure (`kinds`, `kind_counts`, `kind_values`); [`arm_columns`] adds to `analysis_arms` the
//! per-user sums, squares and products each metric needs, and [`UserMetricStats`] is what the
//! tests read, as large as the arms.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::stats::{Harm, MeanStats, RatioStats, Scale, ThresholdRule};

/// How a per-user metric aggregates a user's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The number of events.
    Count,
    /// The sum of their `value`.
    Sum,
}

/// What a metric is over a user.
#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    /// Count or sum of the events of `kinds` at or after first exposure.
    PerUser {
        kinds: Vec<String>,
        aggregate: Aggregate,
    },
    /// Σ numerator / Σ denominator over users; indexes of two per-user metrics of the list.
    Ratio {
        numerator: usize,
        denominator: usize,
    },
}

/// One user-defined metric.
#[derive(Debug, Clone, PartialEq)]
pub struct UserMetric {
    pub name: String,
    pub definition: Definition,
    /// The harmful direction.
    pub harm: Harm,
    /// A guardrail on it, when it has a threshold.
    pub guardrail: Option<ThresholdRule>,
}

/// A `[[metrics]]` entry of the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricEntry {
    name: String,
    kinds: Option<Vec<String>>,
    aggregate: Option<Aggregate>,
    numerator: Option<String>,
    denominator: Option<String>,
    direction: Option<Harm>,
    threshold: Option<f64>,
    kind: Option<Scale>,
}

/// Names the report already uses for its own metrics.
const BUILT_IN: [&str; 7] = [
    "error_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "latency_rank",
    "conversion_rate",
    "revenue_per_user",
];

/// The metrics of `entries`, checked; an error names the entry and says what is allowed.
pub(crate) fn parse(entries: &[MetricEntry]) -> Result<Vec<UserMetric>, String> {
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = format!("[[metrics]] #{} ({:?})", i + 1, e.name);
        let valid_name = e
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
            && e.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(format!(
                "{at} name: allowed lowercase letters, digits and _, starting with a letter (e.g. \"engagement\")"
            ));
        }
        if BUILT_IN.contains(&e.name.as_str()) {
            return Err(format!(
                "{at} name: {} is a built-in metric; choose another name",
                e.name
            ));
        }
        if !names.insert(e.name.clone()) {
            return Err(format!("{at} name: a second metric named {}", e.name));
        }
        let definition = match (&e.kinds, &e.numerator, &e.denominator) {
            (Some(kinds), None, None) => {
                if kinds.is_empty() || kinds.iter().any(|k| k.is_empty()) {
                    return Err(format!(
                        "{at} kinds: allowed a list of business event kinds, e.g. [\"engagement\"]"
                    ));
                }
                if let Some(k) = kinds.iter().enumerate().find_map(|(i, k)| kinds[..i].contains(k).then_some(k)) {
                    return Err(format!(
                        "{at} kinds: {k:?} is listed twice (its events would count twice)"
                    ));
                }
                Definition::PerUser {
                    kinds: kinds.clone(),
                    aggregate: e.aggregate.unwrap_or(Aggregate::Count),
                }
            }
            (None, Some(numerator), Some(denominator)) => {
                if e.aggregate.is_some() {
                    return Err(format!(
                        "{at} aggregate: a ratio metric takes its numerator's and denominator's"
                    ));
                }
                let find = |key: &str, wanted: &str| {
                    out.iter()
                        .position(|m: &UserMetric| {
                            m.name == wanted && matches!(m.definition, Definition::PerUser { .. })
                        })
                        .ok_or_else(|| {
                            format!(
                                "{at} {key} = {wanted:?}: allowed the name of a count or sum metric defined above it"
                            )
                        })
                };
                Definition::Ratio {
                    numerator: find("numerator", numerator)?,
                    denominator: find("denominator", denominator)?,
                }
            }
            _ => {
                return Err(format!(
                    "{at}: give either kinds (with aggregate = \"count\" or \"sum\") or both numerator and denominator"
                ))
            }
        };
        let harm = e.direction.unwrap_or(Harm::Decrease);
        let guardrail = match (e.threshold, e.kind) {
            (Some(threshold), scale) => {
                let rule = ThresholdRule {
                    scale: scale.unwrap_or(Scale::Ratio),
                    harm,
                    threshold,
                };
                crate::config::check_rule(&format!("{at} threshold"), &rule)?;
                Some(rule)
            }
            (None, Some(_)) => {
                return Err(format!("{at} kind: a guardrail's scale needs a threshold"))
            }
            (None, None) => None,
        };
        out.push(UserMetric {
            name: e.name.clone(),
            definition,
            harm,
            guardrail,
        });
    }
    Ok(out)
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The user's value of a per-user metric, over an `analysis_users` row.
fn per_user_value(kinds: &[String], aggregate: Aggregate) -> String {
    let column = match aggregate {
        Aggregate::Count => "kind_counts",
        Aggregate::Sum => "kind_values",
    };
    let terms: Vec<String> = kinds
        .iter()
        .map(|k| {
            format!(
                "COALESCE(CAST(array_element({column}, CAST(array_position(kinds, {}) AS BIGINT)) AS DOUBLE), 0.0)",
                literal(k)
            )
        })
        .collect();
    format!("({})", terms.join(" + "))
}

/// The column of metric `i`'s per-arm sum, sum of squares or (ratios) sum of products.
pub fn column(i: usize, what: &str) -> String {
    format!("user_metric_{i}_{what}")
}

/// The aggregates `analysis_arms` gains for `metrics`: per per-user metric Σx and Σx², per ratio
/// metric Σx·y of its numerator and denominator.
pub fn arm_columns(metrics: &[UserMetric]) -> Vec<String> {
    let value = |i: usize| match &metrics[i].definition {
        Definition::PerUser { kinds, aggregate } => per_user_value(kinds, *aggregate),
        Definition::Ratio { .. } => unreachable!("ratios name per-user metrics (checked in parse)"),
    };
    let mut out = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        match &m.definition {
            Definition::PerUser { .. } => {
                let x = value(i);
                out.push(format!("SUM({x}) AS {}", column(i, "sum")));
                out.push(format!("SUM({x} * {x}) AS {}", column(i, "sq")));
            }
            Definition::Ratio {
                numerator,
                denominator,
            } => out.push(format!(
                "SUM({} * {}) AS {}",
                value(*numerator),
                value(*denominator),
                column(i, "product")
            )),
        }
    }
    out
}

/// One arm's statistics of one user-defined metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UserMetricStats {
    /// A per-user count or sum: its mean over users, zeros included.
    Mean(MeanStats),
    /// Σ numerator / Σ denominator over users.
    Ratio(RatioStats),
}

/// The statistics of every metric from an arm's `users` and the per-metric sums [`arm_columns`]
/// made (`sums[i]`: (Σx, Σx²) of a per-user metric, (Σx·y, 0) of a ratio).
pub fn arm_stats(metrics: &[UserMetric], users: u64, sums: &[(f64, f64)]) -> Vec<UserMetricStats> {
    let n = users as f64;
    metrics
        .iter()
        .enumerate()
        .map(|(i, m)| match m.definition {
            Definition::PerUser { .. } => UserMetricStats::Mean(MeanStats {
                n,
                sum: sums[i].0,
                sum_sq: sums[i].1,
            }),
            Definition::Ratio {
                numerator,
                denominator,
            } => UserMetricStats::Ratio(RatioStats {
                n,
                sum_x: sums[numerator].0,
                sum_y: sums[denominator].0,
                sum_xx: sums[numerator].1,
                sum_yy: sums[denominator].1,
                sum_xy: sums[i].0,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(toml_text: &str) -> Result<Vec<UserMetric>, String> {
        #[derive(Deserialize)]
        struct File {
            metrics: Vec<MetricEntry>,
        }
        let file: File = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        parse(&file.metrics)
    }

    #[test]
    fn metrics_parse_with_their_defaults_and_ratios_name_metrics_above_them() {
        let metrics = entries(
            r#"
            [[metrics]]
            name = "orders"
            kinds = ["purchase"]
            [[metrics]]
            name = "refunds"
            kinds = ["refund", "chargeback"]
            aggregate = "sum"
            direction = "increase"
            threshold = 1.5
            [[metrics]]
            name = "refund_share"
            numerator = "refunds"
            denominator = "orders"
            direction = "increase"
            "#,
        )
        .unwrap();
        assert_eq!(metrics.len(), 3);
        assert_eq!(metrics[0].harm, Harm::Decrease);
        assert_eq!(
            metrics[0].definition,
            Definition::PerUser {
                kinds: vec!["purchase".into()],
                aggregate: Aggregate::Count
            }
        );
        assert_eq!(
            metrics[1].guardrail,
            Some(ThresholdRule {
                scale: Scale::Ratio,
                harm: Harm::Increase,
                threshold: 1.5
            })
        );
        assert_eq!(
            metrics[2].definition,
            Definition::Ratio {
                numerator: 1,
                denominator: 0
            }
        );
        let columns = arm_columns(&metrics).join(", ");
        assert!(columns.contains("AS user_metric_0_sum"), "{columns}");
        assert!(columns.contains("AS user_metric_2_product"), "{columns}");
        assert!(columns.contains("'chargeback'"), "{columns}");
    }

    #[test]
    fn a_bad_metric_is_named_with_what_is_allowed() {
        for (text, wanted) in [
            ("name = \"Bad Name\"\nkinds = [\"x\"]", "lowercase"),
            ("name = \"error_rate\"\nkinds = [\"x\"]", "built-in"),
            ("name = \"m\"", "either kinds"),
            ("name = \"m\"\nkinds = []", "kinds"),
            ("name = \"m\"\nkinds = [\"x\", \"x\"]", "listed twice"),
            (
                "name = \"m\"\nnumerator = \"a\"\ndenominator = \"b\"",
                "defined above",
            ),
            (
                "name = \"m\"\nkinds = [\"x\"]\nthreshold = 2.0",
                "threshold",
            ),
            (
                "name = \"m\"\nkinds = [\"x\"]\nkind = \"ratio\"",
                "needs a threshold",
            ),
            ("name = \"m\"\nkinds = [\"x\"]\ncolour = 1", "unknown field"),
        ] {
            let error = entries(&format!("[[metrics]]\n{text}")).unwrap_err();
            assert!(error.contains(wanted), "{text}: {error}");
        }
        let twice = entries("[[metrics]]\nname = \"m\"\nkinds = [\"x\"]\n[[metrics]]\nname = \"m\"\nkinds = [\"y\"]");
        assert!(twice.unwrap_err().contains("second metric"));
    }

    #[test]
    fn a_ratio_reads_its_parts_sums() {
        let metrics = entries(
            "[[metrics]]\nname = \"a\"\nkinds = [\"x\"]\n[[metrics]]\nname = \"b\"\nkinds = [\"y\"]\n\
             [[metrics]]\nname = \"r\"\nnumerator = \"a\"\ndenominator = \"b\"",
        )
        .unwrap();
        let stats = arm_stats(&metrics, 10, &[(3.0, 5.0), (6.0, 8.0), (4.0, 0.0)]);
        assert_eq!(
            stats[2],
            UserMetricStats::Ratio(RatioStats {
                n: 10.0,
                sum_x: 3.0,
                sum_y: 6.0,
                sum_xx: 5.0,
                sum_yy: 8.0,
                sum_xy: 4.0
            })
        );
        assert_eq!(
            stats[0],
            UserMetricStats::Mean(MeanStats {
                n: 10.0,
                sum: 3.0,
                sum_sq: 5.0
            })
        );
    }
}
