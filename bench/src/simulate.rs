//! Decision quality, measured: simulated canaries analysed every few simulated minutes by the real
//! verdict code (`decide::decide`), under `fixed` and `sequential` tests.
//!
//! An automated rollback is trusted only if two numbers are known: how often it rolls back a
//! healthy canary when it is re-analysed as data arrives (the false-rollback rate, which must stay
//! at or under α), and how long it takes to catch a real regression. Each simulated canary gets
//! new users every look; each user makes a few requests with Bernoulli errors and lognormal
//! latency; the canary's error rate and latency are multiplied by the scenario's factors. A canary
//! stops at its first ROLLBACK (as a gate would) or at the end of the horizon.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, LogNormal};
use serde::Serialize;

use shiftright_analyze::config::{ExperimentSettings, Method, Metric};
use shiftright_analyze::decide::decide;
use shiftright_analyze::decide::report::Verdict;
use shiftright_analyze::read::summary::{ArmSummary, ExperimentSummary, UserRow, UserRows};

/// The simulated traffic and how often it is analysed.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationConfig {
    /// Canaries per scenario and method. Default 1,000.
    pub canaries: usize,
    /// New users per simulated minute, both variants. Default 100.
    pub users_per_minute: u32,
    /// The canary's share of users. Default 0.05.
    pub canary_share: f64,
    /// Minutes between analyses. Default 5.
    pub look_every_min: u32,
    /// Minutes until the canary ends without a rollback. Default 60.
    pub horizon_min: u32,
    /// Mean requests per user (1 + Binomial). Default 3.
    pub requests_per_user: u32,
    /// The baseline's error rate. Default 0.01.
    pub base_error_rate: f64,
    /// Median latency of the baseline, ms. Default 80.
    pub latency_median_ms: f64,
    /// σ of log latency. Default 0.5.
    pub latency_sigma: f64,
    /// Random seed; one seed, one table.
    pub seed: u64,
    /// Worker threads. Default: the machine's cores.
    pub threads: usize,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            canaries: 1_000,
            users_per_minute: 100,
            canary_share: 0.05,
            look_every_min: 5,
            horizon_min: 60,
            requests_per_user: 3,
            base_error_rate: 0.01,
            latency_median_ms: 80.0,
            latency_sigma: 0.5,
            seed: 1,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// A scenario: what the canary does, and the thresholds it is judged by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Name in the table.
    pub name: String,
    /// Canary error rate ÷ baseline error rate.
    pub error_ratio: f64,
    /// Canary latency ÷ baseline latency (every quantile, p99 included).
    pub latency_ratio: f64,
    /// Error-rate threshold of the guardrail.
    pub error_threshold: f64,
    /// p99 threshold of the guardrail.
    pub p99_threshold: f64,
    /// Whether a ROLLBACK here is a false one (the truth is at or under every threshold).
    pub null: bool,
}

impl Scenario {
    fn new(
        name: &str,
        error_ratio: f64,
        latency_ratio: f64,
        thresholds: (f64, f64),
        null: bool,
    ) -> Self {
        Scenario {
            name: name.into(),
            error_ratio,
            latency_ratio,
            error_threshold: thresholds.0,
            p99_threshold: thresholds.1,
            null,
        }
    }

    /// The scenarios of the README table.
    pub fn standard() -> Vec<Scenario> {
        let defaults = (2.0, 1.5);
        vec![
            Scenario::new(
                "A/A, default thresholds (2× errors, 1.5× p99)",
                1.0,
                1.0,
                defaults,
                true,
            ),
            Scenario::new(
                "A/A, strict thresholds (any significant increase: 1×, 1×)",
                1.0,
                1.0,
                (1.0, 1.0),
                true,
            ),
            Scenario::new("2× errors", 2.0, 1.0, defaults, false),
            Scenario::new("3× errors", 3.0, 1.0, defaults, false),
            Scenario::new("1.5× latency (p99)", 1.0, 1.5, defaults, false),
            Scenario::new("2× latency (p99)", 1.0, 2.0, defaults, false),
        ]
    }
}

/// What one scenario did under one method.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: Scenario,
    /// `fixed` or `sequential`.
    pub method: String,
    /// Canaries simulated.
    pub canaries: usize,
    /// Canaries rolled back at some look.
    pub rolled_back: usize,
    /// `rolled_back / canaries`.
    pub rollback_rate: f64,
    /// Median minutes to the rollback, among those rolled back.
    pub median_minutes: Option<f64>,
    /// Rollbacks whose first reason is the harm budget (the others: a guardrail or the cap).
    pub by_harm_budget: usize,
}

/// Runs every scenario under both methods, calling `progress` before each.
pub fn run(
    config: &SimulationConfig,
    scenarios: &[Scenario],
    progress: &dyn Fn(&Scenario, Method),
) -> Vec<ScenarioResult> {
    let mut out = Vec::new();
    for (i, scenario) in scenarios.iter().enumerate() {
        for method in [Method::Fixed, Method::Sequential] {
            progress(scenario, method);
            out.push(run_one(
                config,
                scenario,
                method,
                config.seed.wrapping_add(i as u64 * 7919),
            ));
        }
    }
    out
}

/// One scenario under one method. The same seed gives both methods the same traffic.
pub fn run_one(
    config: &SimulationConfig,
    scenario: &Scenario,
    method: Method,
    seed: u64,
) -> ScenarioResult {
    let mut settings = ExperimentSettings {
        baseline: Some("v1".into()),
        method,
        ..ExperimentSettings::default()
    };
    settings.set_ratio(Metric::ErrorRate, scenario.error_threshold);
    settings.set_ratio(Metric::LatencyP99, scenario.p99_threshold);
    let threads = config.threads.max(1);
    let outcomes: Vec<Option<(u32, bool)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let settings = &settings;
                scope.spawn(move || {
                    (t..config.canaries)
                        .step_by(threads)
                        .map(|c| {
                            one_canary(
                                config,
                                scenario,
                                settings,
                                seed.wrapping_mul(1_000_003).wrapping_add(c as u64),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut minutes: Vec<f64> = outcomes
        .iter()
        .flatten()
        .map(|(m, _)| f64::from(*m))
        .collect();
    minutes.sort_by(f64::total_cmp);
    let rolled_back = minutes.len();
    ScenarioResult {
        scenario: scenario.clone(),
        method: method.name().into(),
        canaries: config.canaries,
        rolled_back,
        rollback_rate: rolled_back as f64 / config.canaries.max(1) as f64,
        median_minutes: (!minutes.is_empty()).then(|| minutes[(minutes.len() - 1) / 2]),
        by_harm_budget: outcomes.iter().flatten().filter(|(_, harm)| *harm).count(),
    }
}

/// Simulates one canary; `Some((minute, by_harm_budget))` at its first ROLLBACK.
fn one_canary(
    config: &SimulationConfig,
    scenario: &Scenario,
    settings: &ExperimentSettings,
    seed: u64,
) -> Option<(u32, bool)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let latency = LogNormal::new(config.latency_median_ms.ln(), config.latency_sigma).ok()?;
    let extra_requests =
        Binomial::new(u64::from(config.requests_per_user.max(1) - 1) * 2, 0.5).ok()?;
    let mut arrived: BTreeMap<String, Vec<(UserRow, Vec<f64>)>> = BTreeMap::new();
    let mut users = ExperimentSummary::default();
    let mut minute = 0;
    while minute < config.horizon_min {
        minute += config.look_every_min;
        let arrivals = config.users_per_minute * config.look_every_min;
        for _ in 0..arrivals {
            let canary = rng.random_bool(config.canary_share);
            let (error_rate, slow) = if canary {
                (
                    (config.base_error_rate * scenario.error_ratio).min(1.0),
                    scenario.latency_ratio,
                )
            } else {
                (config.base_error_rate, 1.0)
            };
            let requests = 1 + extra_requests.sample(&mut rng);
            let errors = (0..requests)
                .filter(|_| rng.random_bool(error_rate))
                .count() as u64;
            let latencies = (0..requests)
                .map(|_| latency.sample(&mut rng) * slow)
                .collect();
            let row = UserRow {
                requests,
                errors,
                ..Default::default()
            };
            let variant = if canary { "v2" } else { "v1" };
            arrived
                .entry(variant.to_string())
                .or_default()
                .push((row, latencies));
        }
        // Each look sees every user so far, as an analysis rerun over the growing data would.
        users.variants = arrived
            .iter()
            .map(|(v, rows)| {
                let rows = UserRows::from_rows(rows.clone());
                (v.clone(), ArmSummary::from_rows(&rows, None))
            })
            .collect();
        let report = decide("simulated", &users, settings);
        if report.verdict == Verdict::Rollback {
            let harm = report
                .reasons
                .first()
                .is_some_and(|r| r.contains("harm budget"));
            return Some((minute, harm));
        }
    }
    None
}

/// The results as a Markdown table, with the settings that made it.
pub fn to_markdown(config: &SimulationConfig, results: &[ScenarioResult]) -> String {
    let mut by_scenario: BTreeMap<usize, Vec<&ScenarioResult>> = BTreeMap::new();
    let mut order = Vec::new();
    for r in results {
        let i = match order.iter().position(|s| s == &r.scenario.name) {
            Some(i) => i,
            None => {
                order.push(r.scenario.name.clone());
                order.len() - 1
            }
        };
        by_scenario.entry(i).or_default().push(r);
    }
    let mut out = format!(
        "{} canaries per row; {} users/min, {:.0}% to the canary, {} requests/user on average, baseline error rate {:.1}%, \
         analysed every {} min for {} min; α = 0.05 one-sided, Holm across guardrails, harm budget 100.\n\n\
         | scenario | method | rolled back | median minutes to rollback | of which by harm budget |\n|---|---|---|---|---|\n",
        config.canaries,
        config.users_per_minute,
        config.canary_share * 100.0,
        config.requests_per_user,
        config.base_error_rate * 100.0,
        config.look_every_min,
        config.horizon_min
    );
    for rows in by_scenario.values() {
        for r in rows {
            let label = if r.scenario.null {
                "false rollbacks"
            } else {
                "detected"
            };
            out.push_str(&format!(
                "| {} | {} | {:.1}% ({label}) | {} | {} |\n",
                r.scenario.name,
                r.method,
                r.rollback_rate * 100.0,
                r.median_minutes
                    .map_or_else(|| "–".into(), |m| format!("{m:.0}")),
                r.by_harm_budget
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimulationConfig {
        // 15 canary users a minute pass the 100-user minimum sample at the second look.
        SimulationConfig {
            canaries: 80,
            horizon_min: 30,
            users_per_minute: 300,
            threads: 2,
            seed: 11,
            ..SimulationConfig::default()
        }
    }

    /// At the null boundary (thresholds 1×) with six looks, the fixed test rolls back more healthy
    /// canaries than the sequential one, which stays at or under α.
    #[test]
    fn sequential_keeps_false_rollbacks_at_alpha_and_fixed_does_not() {
        let config = small();
        let strict = &Scenario::standard()[1];
        let fixed = run_one(&config, strict, Method::Fixed, 5);
        let sequential = run_one(&config, strict, Method::Sequential, 5);
        assert!(sequential.rollback_rate <= 0.05, "{sequential:?}");
        assert!(
            fixed.rolled_back > sequential.rolled_back,
            "fixed {fixed:?} vs sequential {sequential:?}"
        );
    }

    #[test]
    fn a_large_regression_is_caught_by_both_methods() {
        let config = small();
        let bad = Scenario::new("5× errors", 5.0, 1.0, (2.0, 1.5), false);
        for method in [Method::Fixed, Method::Sequential] {
            let r = run_one(&config, &bad, method, 9);
            assert!(r.rollback_rate > 0.5, "{r:?}");
        }
    }
}
