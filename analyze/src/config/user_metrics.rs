//! Metrics users define in the experiments file (`[[metrics]]`): engagement, sessions, refunds,
//! anything a business event's `kind` names.
//!
//! A metric is either, per user, the count or the sum of `value` of the business events of given
//! kinds at or after the user's first exposure (compared per user, like revenue: Welch's test), or
//! the ratio of two such metrics over users (the delta method, like the error rate). Each has a
//! harmful direction and may be a guardrail (a threshold as a ratio or an absolute amount).
//!
//! This file reads and checks the definitions; `read::metric_columns` turns them into the plan's
//! columns, `decide::metrics` compares them like the built-in metrics.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::Metric;
use crate::stats::{Harm, Scale, ThresholdRule};

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
        if Metric::BUILT_IN.iter().any(|m| m.name() == e.name) {
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
        let harm = e
            .direction
            .unwrap_or(Metric::Defined(e.name.clone()).default_harm());
        let guardrail = match (e.threshold, e.kind) {
            (Some(threshold), scale) => {
                let rule = ThresholdRule {
                    scale: scale.unwrap_or(Scale::Ratio),
                    harm,
                    threshold,
                };
                super::check_rule(&format!("{at} threshold"), &rule)?;
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
        // What the plan makes of them: read::metric_columns' test.
        let columns = crate::read::metric_columns::arm_columns(&metrics).join(", ");
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
}
