//! What a generated traffic scenario is made of: users, experiments, and per-variant behaviour
//! (allocation weight, error rate, lognormal latency, conversion probability, heavy-tailed revenue).
//! The presets are the demo's canaries; a scenario can also be read from a TOML file.

use serde::{Deserialize, Serialize};

/// A whole scenario. The same scenario and seed always produce the same events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of the random generator.
    #[serde(default)]
    pub seed: u64,
    /// Distinct users (real and synthetic).
    pub users: usize,
    /// Share of users that are synthetic checks (ids `synthetic-…`). Default 0.01.
    #[serde(default = "default_synthetic_share")]
    pub synthetic_share: f64,
    /// Share of messages replaced by malformed ones (each kind of bad input in turn). Default 0.
    #[serde(default)]
    pub malformed_share: f64,
    /// Length of the simulated period in seconds, ending now (timestamps spread over it). Default 3600.
    #[serde(default = "default_duration_s")]
    pub duration_s: u64,
    /// Share of duplicated messages (a producer retry resending an event). Default 0.
    #[serde(default)]
    pub duplicate_share: f64,
    /// The experiments every user takes part in.
    pub experiments: Vec<ExperimentSpec>,
}

fn default_synthetic_share() -> f64 {
    0.01
}

fn default_duration_s() -> u64 {
    3600
}

/// One experiment and its variants.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Experiment key.
    pub name: String,
    /// Variants; the first is the baseline.
    pub variants: Vec<VariantSpec>,
    /// Endpoints requests are spread over. Default `GET /`.
    #[serde(default = "default_endpoints")]
    pub endpoints: Vec<String>,
    /// Mean requests per user (at least 1 each). Default 5.
    #[serde(default = "default_requests_per_user")]
    pub requests_per_user: f64,
    /// Share of requests also sent as a shadow call. Default 0.
    #[serde(default)]
    pub shadow_share: f64,
}

fn default_endpoints() -> Vec<String> {
    vec!["GET /".into()]
}

fn default_requests_per_user() -> f64 {
    5.0
}

/// How one variant behaves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// Variant name.
    pub name: String,
    /// Allocation weight (normalised over the experiment's variants).
    pub weight: f64,
    /// Probability that a request fails with a 5xx.
    pub error_rate: f64,
    /// Median latency, ms.
    pub latency_p50_ms: f64,
    /// 99th percentile latency, ms (sets the lognormal's spread).
    pub latency_p99_ms: f64,
    /// Probability that a user converts (a `purchase` event after exposure).
    pub conversion_rate: f64,
    /// Median revenue of a purchase (lognormal, σ = 1: heavy-tailed).
    pub revenue_median: f64,
}

impl VariantSpec {
    /// A variant with typical values: 1% errors, p50 80 ms, p99 400 ms, 5% conversion, median 30.
    pub fn typical(name: &str, weight: f64) -> Self {
        VariantSpec {
            name: name.into(),
            weight,
            error_rate: 0.01,
            latency_p50_ms: 80.0,
            latency_p99_ms: 400.0,
            conversion_rate: 0.05,
            revenue_median: 30.0,
        }
    }
}

impl Scenario {
    /// The demo's regressed canary: v1 95% / v2 5%, v2 has 3× the error rate and 2× the p99.
    pub fn bad_canary(name: &str) -> ExperimentSpec {
        let baseline = VariantSpec::typical("v1", 0.95);
        let canary = VariantSpec {
            name: "v2".into(),
            weight: 0.05,
            error_rate: baseline.error_rate * 3.0,
            latency_p99_ms: baseline.latency_p99_ms * 2.0,
            ..baseline.clone()
        };
        ExperimentSpec {
            name: name.into(),
            variants: vec![baseline, canary],
            endpoints: vec![
                "GET /checkout".into(),
                "POST /checkout/pay".into(),
                "GET /cart".into(),
            ],
            requests_per_user: 5.0,
            shadow_share: 0.0,
        }
    }

    /// A healthy canary: v1 95% / v2 5%, both behave the same.
    pub fn healthy_canary(name: &str) -> ExperimentSpec {
        let baseline = VariantSpec::typical("v1", 0.95);
        let canary = VariantSpec {
            name: "v2".into(),
            weight: 0.05,
            ..baseline.clone()
        };
        ExperimentSpec {
            name: name.into(),
            variants: vec![baseline, canary],
            endpoints: vec!["GET /search".into(), "GET /search/suggest".into()],
            requests_per_user: 5.0,
            shadow_share: 0.0,
        }
    }

    /// The demo: one regressed and one healthy canary over the same users.
    pub fn demo(users: usize, seed: u64) -> Scenario {
        Scenario {
            seed,
            users,
            synthetic_share: 0.01,
            malformed_share: 0.0005,
            duration_s: 3600,
            duplicate_share: 0.0,
            experiments: vec![
                Scenario::bad_canary("checkout-canary"),
                Scenario::healthy_canary("search-canary"),
            ],
        }
    }

    /// Checks the numbers; the error names the experiment, variant and field.
    pub fn validate(&self) -> Result<(), String> {
        let share = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} is {v}; it must be between 0 and 1"))
            }
        };
        share("synthetic_share", self.synthetic_share)?;
        share("malformed_share", self.malformed_share)?;
        share("duplicate_share", self.duplicate_share)?;
        if self.users == 0 {
            return Err("users must be at least 1".into());
        }
        if self.experiments.is_empty() {
            return Err("a scenario needs at least one experiment".into());
        }
        for e in &self.experiments {
            if e.variants.is_empty() {
                return Err(format!("experiment {}: needs at least one variant", e.name));
            }
            if e.endpoints.is_empty() {
                return Err(format!(
                    "experiment {}: needs at least one endpoint",
                    e.name
                ));
            }
            if !(e.requests_per_user >= 1.0) {
                return Err(format!(
                    "experiment {}: requests_per_user must be at least 1",
                    e.name
                ));
            }
            share(
                &format!("experiment {}: shadow_share", e.name),
                e.shadow_share,
            )?;
            for v in &e.variants {
                let at = format!("experiment {} variant {}", e.name, v.name);
                if !(v.weight > 0.0) {
                    return Err(format!("{at}: weight must be positive"));
                }
                share(&format!("{at}: error_rate"), v.error_rate)?;
                share(&format!("{at}: conversion_rate"), v.conversion_rate)?;
                if !(v.latency_p50_ms > 0.0 && v.latency_p99_ms >= v.latency_p50_ms) {
                    return Err(format!("{at}: need 0 < latency_p50_ms ≤ latency_p99_ms"));
                }
                if !(v.revenue_median >= 0.0) {
                    return Err(format!("{at}: revenue_median must be ≥ 0"));
                }
            }
        }
        Ok(())
    }
}
