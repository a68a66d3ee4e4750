//! The metrics a report compares, by what they are rather than by name: the built-in ones and
//! those the experiments file defines (`[[metrics]]`). Names are for the file, the report and the
//! history; every decision about a metric (its harmful direction, whether a segment can test it,
//! how it is shown) asks this enum.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::stats::Harm;

/// A metric of the report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Errors (status ≥ 500) over live requests, per user clustered (the delta method).
    ErrorRate,
    LatencyP50,
    LatencyP95,
    LatencyP99,
    /// Mann–Whitney's P(a request of this arm is slower): descriptive, never a guardrail.
    LatencyRank,
    ConversionRate,
    RevenuePerUser,
    /// A `[[metrics]]` entry, by its name.
    Defined(String),
}

impl Metric {
    /// The built-in metrics, in the report's order. A defined metric may not take their names.
    pub const BUILT_IN: [Metric; 7] = [
        Metric::ErrorRate,
        Metric::LatencyP50,
        Metric::LatencyP95,
        Metric::LatencyP99,
        Metric::LatencyRank,
        Metric::ConversionRate,
        Metric::RevenuePerUser,
    ];

    /// The latency quantiles, in the order of `decide::metrics::QUANTILES`.
    pub const QUANTILES: [Metric; 3] = [Metric::LatencyP50, Metric::LatencyP95, Metric::LatencyP99];

    /// The name, as the file, the report and the history spell it.
    pub fn name(&self) -> &str {
        match self {
            Metric::ErrorRate => "error_rate",
            Metric::LatencyP50 => "latency_p50",
            Metric::LatencyP95 => "latency_p95",
            Metric::LatencyP99 => "latency_p99",
            Metric::LatencyRank => "latency_rank",
            Metric::ConversionRate => "conversion_rate",
            Metric::RevenuePerUser => "revenue_per_user",
            Metric::Defined(name) => name,
        }
    }

    /// The built-in metric a `guardrails` entry names; the error lists those allowed.
    pub fn guardrail_named(name: &str) -> Result<Metric, String> {
        Metric::BUILT_IN
            .into_iter()
            .find(|m| m.name() == name && m.can_guard())
            .ok_or_else(|| {
                let allowed: Vec<&str> = Metric::BUILT_IN
                    .iter()
                    .filter(|m| m.can_guard())
                    .map(Metric::name)
                    .collect();
                format!(
                    "unknown guardrail metric {name:?}: allowed {} (a [[metrics]] entry takes its own threshold)",
                    allowed.join(", ")
                )
            })
    }

    /// Whether a `guardrails` entry may name it (the rank test is descriptive only).
    fn can_guard(&self) -> bool {
        !matches!(self, Metric::LatencyRank | Metric::Defined(_))
    }

    /// The harmful direction unless the file says otherwise: up for errors and latency, down for
    /// conversion and revenue (and, unless they say, for defined metrics).
    pub fn default_harm(&self) -> Harm {
        match self {
            Metric::ConversionRate | Metric::RevenuePerUser | Metric::Defined(_) => Harm::Decrease,
            _ => Harm::Increase,
        }
    }

    /// Whether the metric comes from requests alone (and so can be tested within a segment).
    pub fn from_requests(&self) -> bool {
        matches!(
            self,
            Metric::ErrorRate
                | Metric::LatencyP50
                | Metric::LatencyP95
                | Metric::LatencyP99
                | Metric::LatencyRank
        )
    }

    /// A latency quantile's index in [`Metric::QUANTILES`].
    pub fn quantile(&self) -> Option<usize> {
        Metric::QUANTILES.iter().position(|q| q == self)
    }

    /// Whether its values are shares (shown as percentages).
    pub fn is_share(&self) -> bool {
        matches!(self, Metric::ErrorRate | Metric::ConversionRate)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_guardrails_take_only_guardable_built_ins() {
        for (i, m) in Metric::BUILT_IN.iter().enumerate() {
            assert!(Metric::BUILT_IN[..i].iter().all(|o| o.name() != m.name()));
        }
        assert_eq!(
            Metric::guardrail_named("latency_p99"),
            Ok(Metric::LatencyP99)
        );
        let e = Metric::guardrail_named("latency_rank").unwrap_err();
        assert!(
            e.contains("error_rate")
                && e.contains("revenue_per_user")
                && !e.contains("latency_rank,"),
            "{e}"
        );
        assert!(Metric::guardrail_named("cpu").is_err());
        assert_eq!(Metric::LatencyP95.quantile(), Some(1));
        assert_eq!(Metric::ErrorRate.quantile(), None);
        assert_eq!(
            serde_json::to_string(&Metric::Defined("engagement".into())).unwrap(),
            "\"engagement\""
        );
    }
}
