//! Turns a scenario into a reproducible stream of event messages, and keeps the ground truth (users,
//! requests, errors, conversions, revenue per variant) that an analysis of those messages must find.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Poisson};
use serde_json::{json, Value};
use shiftright_schemas::Table;

use crate::scenario::{Scenario, VariantSpec};

/// z of the 99th percentile of the standard normal.
const Z99: f64 = 2.326_347_874_040_841;

/// One message to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The table (topic) it belongs to.
    pub table: Table,
    /// Kafka key: the user id, so that a user's events share a partition.
    pub key: String,
    /// JSON payload (or a deliberately malformed one).
    pub payload: Vec<u8>,
}

/// What the analysis of one variant must find: non-synthetic users only, live requests only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VariantTruth {
    /// Non-synthetic users assigned.
    pub users: u64,
    /// Synthetic users assigned.
    pub synthetic_users: u64,
    /// Live requests of non-synthetic users.
    pub requests: u64,
    /// Of which status ≥ 500.
    pub errors: u64,
    /// Users with a purchase at or after their exposure.
    pub converted_users: u64,
    /// Sum of business values at or after exposure.
    pub revenue: f64,
    /// Live requests of synthetic users (synthetic checks).
    pub synthetic_checks: u64,
    /// Of which failed (status ≥ 400).
    pub synthetic_failures: u64,
    /// Shadow calls of non-synthetic users.
    pub shadow_calls: u64,
    /// Of which `shadow_match` is false.
    pub shadow_mismatches: u64,
}

/// Counts of what was generated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationSummary {
    /// Messages emitted, all topics, including malformed ones and duplicates.
    pub messages: u64,
    /// Valid request messages (a duplicated event counts twice: both copies are stored).
    pub requests: u64,
    /// Valid business messages.
    pub business: u64,
    /// Valid exposure messages.
    pub exposures: u64,
    /// Malformed messages (every one must become a dead letter).
    pub malformed: u64,
    /// Extra copies of valid events (a producer retry).
    pub duplicates: u64,
    /// Extra copies of request and exposure events, per experiment (what the analysis drops).
    pub duplicates_by_experiment: BTreeMap<String, u64>,
    /// Ground truth per (experiment, variant).
    pub truth: BTreeMap<(String, String), VariantTruth>,
}

impl GenerationSummary {
    /// Valid messages, duplicates included.
    pub fn valid_messages(&self) -> u64 {
        self.requests + self.business + self.exposures
    }
}

/// Bad inputs the generator mixes in, one of each in turn.
const MALFORMED: [&[u8]; 7] = [
    b"{\"event_id\": \"broken",
    b"[1, 2, 3]",
    b"{\"event_id\":\"m\",\"ts\":\"2026-01-01T00:00:00Z\",\"experiment\":\"x\",\"variant\":\"v\",\"status\":200,\"latency_ms\":1}",
    b"{\"event_id\":\"m\",\"ts\":1,\"user_id\":\"u\",\"experiment\":\"x\",\"variant\":\"v\",\"status\":\"500\",\"latency_ms\":1}",
    b"",
    b"\xff\xfe\xfd not utf-8",
    b"{\"event_id\":\"m\",\"ts\":\"yesterday\",\"user_id\":\"u\",\"experiment\":\"x\",\"variant\":\"v\",\"status\":200,\"latency_ms\":-5}",
];

struct Emitter<'a, E> {
    rng: StdRng,
    summary: GenerationSummary,
    next_id: u64,
    malformed_share: f64,
    duplicate_share: f64,
    emit: &'a mut dyn FnMut(Message) -> Result<(), E>,
}

impl<E> Emitter<'_, E> {
    fn send(&mut self, table: Table, key: &str, mut event: Value) -> Result<(), E> {
        self.next_id += 1;
        event["event_id"] = json!(format!("e{:012x}", self.next_id));
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        let copies = if self.rng.random_bool(self.duplicate_share) {
            2
        } else {
            1
        };
        // Both copies are stored; the analysis counts one. It reports, per experiment, the extra
        // copies of request and exposure events (business events are per user, not per experiment).
        match table {
            Table::Requests => self.summary.requests += copies,
            Table::Business => self.summary.business += copies,
            _ => self.summary.exposures += copies,
        }
        self.summary.duplicates += copies - 1;
        if copies > 1 && table != Table::Business {
            if let Some(experiment) = event["experiment"].as_str() {
                *self
                    .summary
                    .duplicates_by_experiment
                    .entry(experiment.to_string())
                    .or_default() += copies - 1;
            }
        }
        for _ in 0..copies {
            self.summary.messages += 1;
            (self.emit)(Message {
                table,
                key: key.to_string(),
                payload: payload.clone(),
            })?;
        }
        if self.rng.random_bool(self.malformed_share) {
            let bad = MALFORMED[(self.summary.malformed % MALFORMED.len() as u64) as usize];
            self.summary.malformed += 1;
            self.summary.messages += 1;
            (self.emit)(Message {
                table,
                key: key.to_string(),
                payload: bad.to_vec(),
            })?;
        }
        Ok(())
    }

    /// A timestamp as RFC 3339 or epoch milliseconds, half and half: producers send both.
    fn ts(&mut self, ms: i64) -> Value {
        if self.rng.random_bool(0.5) {
            json!(ms)
        } else {
            json!(Utc
                .timestamp_millis_opt(ms)
                .single()
                .map(|t| t.to_rfc3339())
                .unwrap_or_default())
        }
    }
}

fn pick_variant<'a>(rng: &mut StdRng, variants: &'a [VariantSpec]) -> &'a VariantSpec {
    let total: f64 = variants.iter().map(|v| v.weight).sum();
    let mut x = rng.random::<f64>() * total;
    for v in variants {
        if x < v.weight {
            return v;
        }
        x -= v.weight;
    }
    &variants[variants.len() - 1]
}

/// Generates the scenario's messages, ending at `now_ms`, calling `emit` for each in order.
/// Stops at the first error `emit` returns.
pub fn generate<E>(
    scenario: &Scenario,
    now_ms: i64,
    emit: &mut dyn FnMut(Message) -> Result<(), E>,
) -> Result<GenerationSummary, E> {
    let mut out = Emitter {
        rng: StdRng::seed_from_u64(scenario.seed),
        summary: GenerationSummary::default(),
        next_id: scenario.seed.wrapping_mul(1 << 40),
        malformed_share: scenario.malformed_share,
        duplicate_share: scenario.duplicate_share,
        emit,
    };
    let span_ms = (scenario.duration_s * 1000).max(1) as i64;
    let start_ms = now_ms - span_ms;
    let purchase_sigma = 1.0;
    for u in 0..scenario.users {
        let synthetic = out.rng.random_bool(scenario.synthetic_share);
        let user = if synthetic {
            format!("synthetic-{u:07}")
        } else {
            format!("user-{u:07}")
        };
        // (experiment, variant, first exposure) of this user, to attribute business events after.
        let mut exposures: Vec<(String, String, i64)> = Vec::new();
        let mut business: Vec<(i64, f64, bool)> = Vec::new();
        for exp in &scenario.experiments {
            let variant = pick_variant(&mut out.rng, &exp.variants);
            let t0 = start_ms + (out.rng.random::<f64>() * 0.8 * span_ms as f64) as i64;
            let remaining = (start_ms + span_ms - t0).max(1) as f64;
            let ts = out.ts(t0);
            out.send(
                Table::Exposures,
                &user,
                json!({"ts": ts, "user_id": user, "experiment": exp.name, "variant": variant.name}),
            )?;
            exposures.push((exp.name.clone(), variant.name.clone(), t0));

            let truth = out
                .summary
                .truth
                .entry((exp.name.clone(), variant.name.clone()))
                .or_default();
            if synthetic {
                truth.synthetic_users += 1;
            } else {
                truth.users += 1;
            }
            let sigma = (variant.latency_p99_ms / variant.latency_p50_ms).ln() / Z99;
            let latency = LogNormal::new(variant.latency_p50_ms.ln(), sigma.max(1e-9))
                .expect("valid lognormal");
            let extra = if exp.requests_per_user > 1.0 {
                Poisson::new(exp.requests_per_user - 1.0)
                    .expect("valid poisson")
                    .sample(&mut out.rng) as u64
            } else {
                0
            };
            let (mut requests, mut errors, mut failures) = (0u64, 0u64, 0u64);
            let (mut shadow_calls, mut shadow_mismatches) = (0u64, 0u64);
            for _ in 0..=extra {
                let at = t0 + (out.rng.random::<f64>() * remaining) as i64;
                let failed = out.rng.random_bool(variant.error_rate);
                let status = if failed {
                    [500, 502, 503][out.rng.random_range(0..3)]
                } else if out.rng.random_bool(0.02) {
                    404
                } else {
                    200
                };
                let latency_ms = (latency.sample(&mut out.rng) * 1000.0).round() / 1000.0;
                let endpoint = exp.endpoints[out.rng.random_range(0..exp.endpoints.len())].clone();
                let ts = out.ts(at);
                let region = ["eu-west-1", "us-east-1"][out.rng.random_range(0..2)];
                out.send(
                    Table::Requests,
                    &user,
                    json!({"ts": ts, "user_id": user, "experiment": exp.name, "variant": variant.name,
                           "status": status, "latency_ms": latency_ms, "endpoint": endpoint,
                           "service": "shop", "region": region}),
                )?;
                requests += 1;
                errors += u64::from(failed);
                failures += u64::from(status >= 400);
                if out.rng.random_bool(exp.shadow_share) {
                    let shadow_latency = (latency.sample(&mut out.rng) * 1000.0).round() / 1000.0;
                    let matched = out.rng.random_bool(0.98);
                    let ts = out.ts(at);
                    out.send(
                        Table::Requests,
                        &user,
                        json!({"ts": ts, "user_id": user, "experiment": exp.name, "variant": variant.name,
                               "status": 200, "latency_ms": shadow_latency, "endpoint": endpoint,
                               "mode": "shadow", "shadow_match": matched}),
                    )?;
                    shadow_calls += 1;
                    shadow_mismatches += u64::from(!matched);
                }
            }
            let truth = out
                .summary
                .truth
                .get_mut(&(exp.name.clone(), variant.name.clone()))
                .expect("entry made above");
            if synthetic {
                truth.synthetic_checks += requests;
                truth.synthetic_failures += failures;
            } else {
                truth.requests += requests;
                truth.errors += errors;
                truth.shadow_calls += shadow_calls;
                truth.shadow_mismatches += shadow_mismatches;
            }
            if out.rng.random_bool(variant.conversion_rate) {
                let at = t0 + (out.rng.random::<f64>() * remaining) as i64;
                let value = if variant.revenue_median > 0.0 {
                    let revenue = LogNormal::new(variant.revenue_median.ln(), purchase_sigma)
                        .expect("valid lognormal");
                    (revenue.sample(&mut out.rng) * 100.0).round() / 100.0
                } else {
                    0.0
                };
                let ts = out.ts(at);
                out.send(
                    Table::Business,
                    &user,
                    json!({"ts": ts, "user_id": user, "kind": "purchase", "value": value,
                           "experiment": exp.name, "variant": variant.name}),
                )?;
                business.push((at, value, true));
            }
        }
        if out.rng.random_bool(0.3) {
            let at = start_ms + (out.rng.random::<f64>() * span_ms as f64) as i64;
            let ts = out.ts(at);
            out.send(
                Table::Business,
                &user,
                json!({"ts": ts, "user_id": user, "kind": "engagement"}),
            )?;
            business.push((at, 0.0, false));
        }
        if !synthetic {
            for (exp, variant, t0) in &exposures {
                let after: Vec<&(i64, f64, bool)> =
                    business.iter().filter(|(at, _, _)| at >= t0).collect();
                let truth = out
                    .summary
                    .truth
                    .get_mut(&(exp.clone(), variant.clone()))
                    .expect("entry made above");
                truth.converted_users +=
                    u64::from(after.iter().any(|(_, _, conversion)| *conversion));
                truth.revenue += after.iter().map(|(_, value, _)| value).sum::<f64>();
            }
        }
    }
    Ok(out.summary)
}
