//! The verdict rules of statistics.md section 7 on constructed experiments, and the JSON report
//! held to `schemas/report.schema.json`.

use serde_json::Value;

use super::*;
use crate::config::ExperimentsFile;
use crate::config::Metric;
use crate::read::summary::{ArmSummary, ExperimentSummary, UserRow, UserRows};
use crate::stats::{Harm, Scale};

/// `n` users with `requests` requests each; every `error_every`-th request (counted across the
/// variant) fails; latencies cycle deterministically around `latency`.
fn users(n: usize, requests: u64, error_every: u64, latency: f64) -> UserRows {
    let mut counter = 0u64;
    let rows = (0..n)
        .map(|u| {
            let mut row = UserRow {
                requests,
                converted: u % 10 == 0,
                revenue: if u % 10 == 0 { 25.0 } else { 0.0 },
                ..Default::default()
            };
            let mut latencies = Vec::new();
            for r in 0..requests {
                counter += 1;
                if error_every > 0 && counter.is_multiple_of(error_every) {
                    row.errors += 1;
                }
                let jitter = ((u as u64 * 7919 + r * 104_729) % 1000) as f64 / 1000.0;
                latencies.push(latency * (0.5 + 1.5 * jitter * jitter));
            }
            (row, latencies)
        })
        .collect();
    UserRows::from_rows(rows)
}

fn experiment(variants: Vec<(&str, UserRows)>) -> ExperimentSummary {
    ExperimentSummary::from_user_rows(variants, None)
}

fn settings(toml: &str) -> ExperimentSettings {
    ExperimentsFile::parse(toml).unwrap().settings("x")
}

#[test]
fn a_healthy_fifty_fifty_test_promotes() {
    let e = experiment(vec![
        ("control", users(5000, 5, 100, 80.0)),
        ("treatment", users(5000, 5, 100, 80.0)),
    ]);
    let r = decide(
        "x",
        &e,
        &settings("[experiments.x]\nweights = { control = 0.5, treatment = 0.5 }\n"),
    );
    assert_eq!(r.verdict, Verdict::Promote, "{:?}", r.reasons);
    assert_eq!(r.baseline.as_deref(), Some("control"));
    assert!(r.srm.checked);
    // Each variant's rates carry an interval around them.
    for v in &r.variants {
        for (value, ci) in [
            (v.error_rate, v.error_rate_ci),
            (v.conversion_rate, v.conversion_rate_ci),
            (v.revenue_per_user, v.revenue_per_user_ci),
        ] {
            let (value, ci) = (value.unwrap(), ci.unwrap());
            assert!(ci.low < value && value < ci.high, "{value} in {ci:?}");
        }
        // 5,000 users converting 1 in 10: se = √(0.09/5000) = 0.00424, so ±0.00832.
        let ci = v.conversion_rate_ci.unwrap();
        assert!(((ci.high - ci.low) / 2.0 - 0.008_32).abs() < 2e-4, "{ci:?}");
    }
}

#[test]
fn triple_errors_on_a_canary_roll_back_with_the_reason() {
    let e = experiment(vec![
        ("v1", users(19_000, 5, 100, 80.0)),
        ("v2", users(1000, 5, 33, 80.0)),
    ]);
    let r = decide("x", &e, &settings(""));
    assert_eq!(r.verdict, Verdict::Rollback, "{:?}", r.reasons);
    assert!(
        r.reasons.iter().any(|x| x.contains("error_rate")),
        "{:?}",
        r.reasons
    );
    assert!(
        !r.srm.checked,
        "no weights configured: SRM skipped and said so"
    );
    assert!(r.srm.note.is_some());
}

#[test]
fn a_zero_error_baseline_uses_the_exact_test() {
    let e = experiment(vec![
        ("v1", users(2000, 5, 0, 80.0)),
        ("v2", users(2000, 5, 50, 80.0)),
    ]);
    let r = decide("x", &e, &settings(""));
    let g = r
        .comparisons
        .iter()
        .find(|c| c.metric == Metric::ErrorRate)
        .and_then(|c| c.guardrail.clone())
        .unwrap();
    assert_eq!(g.test, "exact_poisson");
    assert!(g.margin_p_value.unwrap() < 1e-6);
    assert_eq!(r.verdict, Verdict::Rollback, "{:?}", r.reasons);
}

#[test]
fn sample_ratio_mismatch_is_invalid() {
    let e = experiment(vec![
        ("v1", users(1000, 2, 100, 80.0)),
        ("v2", users(1300, 2, 100, 80.0)),
    ]);
    let r = decide(
        "x",
        &e,
        &settings("[experiments.x]\nweights = { v1 = 0.5, v2 = 0.5 }\n"),
    );
    assert_eq!(r.verdict, Verdict::Invalid, "{:?}", r.reasons);
    assert!(r.srm.p_value.unwrap() < 0.001);
}

#[test]
fn the_harm_budget_rolls_back_without_a_minimum_sample_even_when_invalid() {
    // 40 users only, each sending 50 requests of which every other fails: far past 100 excess errors.
    let e = experiment(vec![
        ("v1", users(40, 50, 100, 80.0)),
        ("v2", users(40, 50, 2, 80.0)),
    ]);
    let r = decide(
        "x",
        &e,
        &settings(
            "[defaults]\nmin_users = 1000\n[experiments.x]\nweights = { v1 = 0.9, v2 = 0.1 }\n",
        ),
    );
    assert_eq!(r.verdict, Verdict::Rollback, "{:?}", r.reasons);
    assert!(r.reasons[0].contains("harm budget"), "{:?}", r.reasons);
    assert!(
        r.reasons
            .iter()
            .any(|x| x.contains("sample ratio mismatch")),
        "{:?}",
        r.reasons
    );
}

#[test]
fn too_few_users_continue_and_say_how_many_are_missing() {
    let e = experiment(vec![
        ("v1", users(60, 5, 100, 80.0)),
        ("v2", users(30, 5, 100, 80.0)),
    ]);
    let r = decide("x", &e, &settings(""));
    assert_eq!(r.verdict, Verdict::Continue);
    assert!(
        r.reasons
            .iter()
            .any(|x| x.contains("v2 needs 70 more users")),
        "{:?}",
        r.reasons
    );
}

#[test]
fn no_baseline_is_invalid_and_names_the_fix() {
    let e = experiment(vec![
        ("a", users(100, 1, 0, 80.0)),
        ("b", users(100, 1, 0, 80.0)),
    ]);
    let r = decide("x", &e, &settings(""));
    assert_eq!(r.verdict, Verdict::Invalid);
    assert!(r.reasons[0].contains("baseline"), "{:?}", r.reasons);
}

/// Checks `value` against `schema` (a subset of JSON Schema: type, required, properties,
/// additionalProperties, items, enum, $ref into $defs): every required key is present and every
/// key present is documented.
fn check(value: &Value, schema: &Value, root: &Value, at: &str) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        return check(value, &root["$defs"][name], root, at);
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        assert!(options.contains(value), "{at}: {value} not in {options:?}");
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = allowed.contains(&actual) || (actual == "integer" && allowed.contains(&"number"));
        assert!(ok, "{at}: {actual} is not one of {allowed:?}");
    }
    if let Value::Object(map) = value {
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            assert!(
                map.contains_key(key.as_str().unwrap()),
                "{at}: required {key} missing"
            );
        }
        for (key, v) in map {
            let child = schema
                .get("properties")
                .and_then(|p| p.get(key))
                .or_else(|| schema.get("additionalProperties"));
            let child = child
                .unwrap_or_else(|| panic!("{at}.{key} is not documented in report.schema.json"));
            check(v, child, root, &format!("{at}.{key}"));
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(item, item_schema, root, &format!("{at}[{i}]"));
        }
    }
}

#[test]
fn the_json_report_follows_its_schema() {
    let schema: Value = serde_json::from_str(shiftright_schemas::REPORT_JSON_SCHEMA).unwrap();
    let cases = [
        experiment(vec![
            ("v1", users(19_000, 5, 100, 80.0)),
            ("v2", users(1000, 5, 33, 80.0)),
        ]),
        experiment(vec![
            ("v1", users(10, 1, 0, 80.0)),
            ("v2", users(10, 1, 0, 80.0)),
        ]),
    ];
    for e in &cases {
        let report = decide(
            "x",
            e,
            &settings("[experiments.x]\nweights = { v1 = 0.95, v2 = 0.05 }\ntraffic_cap = 0.1\n"),
        );
        let json = serde_json::to_value(&report).unwrap();
        check(&json, &schema, &schema, "report");
    }
}

#[test]
fn winsorizing_caps_a_whale_and_says_where() {
    let mut treatment = users(2000, 2, 0, 80.0);
    treatment.users[1].revenue = 1_000_000.0; // one purchase worth more than everyone else's together
    let variants = vec![
        ("control", users(2000, 2, 0, 80.0)),
        ("treatment", treatment),
    ];
    let e = experiment(variants.clone());
    let revenue = |r: &Report| {
        r.variants
            .iter()
            .find(|v| v.name == "treatment")
            .and_then(|v| v.revenue_per_user)
            .unwrap()
    };

    let raw = decide("x", &e, &settings("[experiments.x]\nmethod = \"fixed\"\n"));
    assert_eq!(raw.data_quality.revenue_winsorized_at, None);
    assert!(revenue(&raw) > 500.0);

    // The plan caps revenue where the settings winsorize; the decision reports the cap.
    let capped = decide(
        "x",
        &ExperimentSummary::from_user_rows(variants, Some(0.99)),
        &settings("[experiments.x]\nmethod = \"fixed\"\nwinsorize_revenue = 0.99\n"),
    );
    // 10% of users spend 25: the 99th percentile is 25, so the whale counts as 25:
    // (200 × 25 + 25) / 2000.
    assert_eq!(capped.data_quality.revenue_winsorized_at, Some(25.0));
    assert!(
        (revenue(&capped) - 2.5125).abs() < 1e-9,
        "{}",
        revenue(&capped)
    );
    let e = ExperimentsFile::parse("[defaults]\nwinsorize_revenue = 1.5\n").unwrap_err();
    assert!(
        e.contains("winsorize_revenue") && e.contains("between 0.5 and 1"),
        "{e}"
    );
}

#[test]
fn the_rank_test_sees_a_slower_variant() {
    let e = experiment(vec![
        ("control", users(500, 4, 0, 80.0)),
        ("treatment", users(500, 4, 0, 120.0)),
    ]);
    let r = decide("x", &e, &settings(""));
    let rank = r
        .comparisons
        .iter()
        .find(|c| c.metric == Metric::LatencyRank)
        .expect("a rank comparison");
    assert!(
        rank.variant_value.unwrap() > 0.6 && rank.p_value.unwrap() < 1e-6,
        "{rank:?}"
    );
    assert!(rank.guardrail.is_none());
    assert_eq!(r.method, "sequential");
}

/// Errors confined to one endpoint: diluted overall, caught in the segment, and only once that
/// segment has its own minimum sample.
#[test]
fn a_regression_in_one_endpoint_rolls_back_through_its_segment() {
    let segment = |errors_every: u64, n: usize| -> crate::read::summary::SegmentUsers {
        [
            ("v1", users(n * 19, 3, 200, 80.0)),
            ("v2", users(n, 3, errors_every, 80.0)),
        ]
        .into_iter()
        .map(|(v, rows)| (v.to_string(), ArmSummary::from_rows(&rows, None)))
        .collect()
    };
    let build = |n: usize| {
        let mut e = experiment(vec![
            ("v1", users(n * 19 * 10, 3, 200, 80.0)),
            ("v2", users(n * 10, 3, 200, 80.0)),
        ]);
        e.segments
            .insert(("endpoint".into(), "GET /cart".into()), segment(6, n));
        e.segments.insert(
            ("endpoint".into(), "GET /search".into()),
            segment(200, n * 9),
        );
        e
    };
    let s = settings("[experiments.x]\nmethod = \"fixed\"\n");
    let r = decide("x", &build(150), &s);
    assert_eq!(r.verdict, Verdict::Rollback, "{:?}", r.reasons);
    assert!(
        r.reasons
            .iter()
            .any(|m| m.contains("endpoint GET /cart") && m.contains("error_rate")),
        "{:?}",
        r.reasons
    );
    assert!(r
        .segments
        .iter()
        .any(|g| g.segment == "GET /cart" && g.guardrail.breached));
    assert!(!r
        .segments
        .iter()
        .any(|g| g.segment == "GET /search" && g.guardrail.breached));

    // The same regression with 60 canary users in the segment, under its minimum of 100: no rollback from it.
    let r = decide("x", &build(60), &s);
    assert!(
        r.segments.iter().all(|g| !g.guardrail.breached),
        "{:?}",
        r.segments
    );
    assert!(
        !r.reasons.iter().any(|m| m.contains("GET /cart")),
        "{:?}",
        r.reasons
    );
}

/// `users` whose conversion is every `every`-th user instead of every tenth.
fn converting(mut rows: UserRows, every: usize) -> UserRows {
    for (u, row) in rows.users.iter_mut().enumerate() {
        row.converted = u % every == 0;
    }
    rows
}

#[test]
fn a_configured_conversion_guardrail_rolls_back_a_drop_and_blocks_promotion_until_bounded() {
    let guardrails = "[experiments.x]\nguardrails = [\n  { metric = \"error_rate\", threshold = 2.0 },\n  { metric = \"conversion_rate\", threshold = 0.85 },\n]\n";
    // Conversion 10% in the baseline, 5% in the canary: half, far below 0.85×.
    let e = experiment(vec![
        ("v1", users(10_000, 5, 100, 80.0)),
        ("v2", converting(users(4_000, 5, 100, 80.0), 20)),
    ]);
    let r = decide("x", &e, &settings(guardrails));
    assert_eq!(r.verdict, Verdict::Rollback, "{:?}", r.reasons);
    assert!(
        r.reasons
            .iter()
            .any(|x| x.contains("conversion_rate") && x.contains("significantly below")),
        "{:?}",
        r.reasons
    );
    let c = r
        .comparisons
        .iter()
        .find(|c| c.metric == Metric::ConversionRate)
        .unwrap();
    let g = c.guardrail.as_ref().unwrap();
    assert_eq!(
        (g.kind, g.direction, g.limit),
        (Scale::Ratio, Harm::Decrease, 0.85)
    );
    assert!(g.breached && g.bound.unwrap() < 0.85, "{g:?}");
    assert!(
        r.comparisons
            .iter()
            .all(|c| c.metric == Metric::ConversionRate
                || c.metric == Metric::ErrorRate
                || c.guardrail.is_none()),
        "p99 is no guardrail once the list leaves it out"
    );

    // Equal conversion: the lower bound clears 0.85× and the experiment promotes.
    let e = experiment(vec![
        ("v1", users(10_000, 5, 100, 80.0)),
        ("v2", users(10_000, 5, 100, 80.0)),
    ]);
    let r = decide("x", &e, &settings(guardrails));
    assert_eq!(r.verdict, Verdict::Promote, "{:?}", r.reasons);
    assert!(
        r.reasons
            .iter()
            .any(|x| x.contains("conversion_rate bound") && x.contains("above the limit of 0.85×")),
        "{:?}",
        r.reasons
    );
}

#[test]
fn an_absolute_latency_guardrail_is_tested_on_the_difference() {
    // p50 of the canary 20% slower (about +16 ms at 80 ms): past "at most +5 ms".
    let e = experiment(vec![
        ("v1", users(5_000, 5, 100, 80.0)),
        ("v2", users(5_000, 5, 100, 96.0)),
    ]);
    let r = decide(
        "x",
        &e,
        &settings("[experiments.x]\nguardrails = [{ metric = \"latency_p50\", kind = \"absolute\", threshold = 5 }]\n"),
    );
    assert_eq!(r.verdict, Verdict::Rollback, "{:?}", r.reasons);
    let g = r
        .comparisons
        .iter()
        .find(|c| c.metric == Metric::LatencyP50)
        .and_then(|c| c.guardrail.clone())
        .unwrap();
    assert_eq!(
        (g.kind, g.limit, g.test.as_str()),
        (Scale::Absolute, 5.0, "quantile_z")
    );
    assert!(g.observed.unwrap() > 10.0 && g.breached, "{g:?}");
}

#[test]
fn pre_exposure_revenue_narrows_the_revenue_interval_with_cuped() {
    // Revenue that persists: each user's spend after exposure repeats the spend before it.
    let spending = |mut rows: UserRows| -> UserRows {
        for (u, row) in rows.users.iter_mut().enumerate() {
            row.pre_revenue = (u % 7) as f64 * 10.0;
            row.revenue = row.pre_revenue + (u % 3) as f64;
        }
        rows
    };
    let plain = experiment(vec![
        ("v1", users(2_000, 5, 100, 80.0)),
        ("v2", users(2_000, 5, 100, 80.0)),
    ]);
    let r = decide("x", &plain, &settings(""));
    let revenue = |r: &Report| {
        r.comparisons
            .iter()
            .find(|c| c.metric == Metric::RevenuePerUser)
            .cloned()
            .unwrap()
    };
    assert!(
        revenue(&r).cuped.is_none(),
        "no pre-exposure values: no CUPED"
    );

    let with_history = experiment(vec![
        ("v1", spending(users(2_000, 5, 100, 80.0))),
        ("v2", spending(users(2_000, 5, 100, 80.0))),
    ]);
    let c = revenue(&decide("x", &with_history, &settings("")));
    let cuped = c.cuped.clone().expect("pre-exposure revenue: CUPED");
    assert!(cuped.variance_reduction > 0.9, "{cuped:?}");
    assert!((cuped.theta - 1.0).abs() < 0.05, "{cuped:?}");
    let width = c.ci_high.unwrap() - c.ci_low.unwrap();
    // Unadjusted, revenue spreads over 0–62 with SD ≈ 20: a CI several units wide. Adjusted, the
    // leftover spread is the 0–2 remainder.
    assert!(width < 1.0, "CI width {width}: {c:?}");
}
