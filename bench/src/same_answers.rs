//! Whether DuckDB, computing shiftright's answers (`duckdb_same_answers.py`), found what
//! `shiftright analyze --method fixed` reported: per variant the users, requests and errors
//! exactly, the error rate and its delta-method CI to 1e-9 and 1e-6, p50/p95/p99 and their
//! clustered CIs within [`QUANTILE_TOLERANCE`]; per endpoint and region the users and the values
//! the segment tests compared.
//!
//! Quantiles get a tolerance because shiftright's distribution is exact only up to 65,536
//! distinct values per arm and log-bucketed within 0.5% past it, while DuckDB sorts every value; a
//! CI end is an order statistic at a computed rank, so it moves with the bucket too.

use std::collections::BTreeMap;

use serde_json::Value;

/// Relative difference allowed between the two tools' quantiles and quantile CI ends.
pub const QUANTILE_TOLERANCE: f64 = 0.01;

/// How close the answers were: figures compared and the largest relative quantile difference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// Figures compared.
    pub figures: usize,
    /// The largest relative difference between two quantiles or CI ends.
    pub largest_quantile_difference: f64,
}

/// Compares shiftright's JSON report with the script's output; the first disagreement otherwise.
pub fn compare(ours_json: &str, duckdb: &Value) -> Result<Agreement, String> {
    let reports: Value =
        serde_json::from_str(ours_json).map_err(|e| format!("shiftright printed no JSON: {e}"))?;
    let mut arms: BTreeMap<(String, String, String, String), &Value> = BTreeMap::new();
    for arm in duckdb["arms"].as_array().into_iter().flatten() {
        let key = |k: &str| arm[k].as_str().unwrap_or_default().to_string();
        arms.insert(
            (
                key("experiment"),
                key("dimension"),
                key("segment"),
                key("variant"),
            ),
            arm,
        );
    }
    let mut check = Check::default();
    for report in reports.as_array().into_iter().flatten() {
        let experiment = report["experiment"].as_str().unwrap_or_default();
        let arm = |dimension: &str, segment: &str, variant: &str| {
            let key = (
                experiment.into(),
                dimension.into(),
                segment.into(),
                variant.into(),
            );
            arms.get(&key).copied().ok_or_else(|| {
                format!("DuckDB has no arm {experiment}/{dimension}/{segment}/{variant}")
            })
        };
        for v in report["variants"].as_array().into_iter().flatten() {
            let name = v["name"].as_str().unwrap_or_default();
            let theirs = arm("all", "", name)?;
            let at = format!("{experiment} {name}");
            for field in ["users", "requests", "errors"] {
                check.exact(&at, field, &v[field], &theirs[field])?;
            }
            check.close(
                &at,
                "error_rate",
                &v["error_rate"],
                &theirs["error_rate"],
                1e-9,
            )?;
            let ci = &v["error_rate_ci"];
            let their_ci = &theirs["error_rate_ci"];
            check.close(&at, "error_rate_ci.low", &ci["low"], &their_ci[0], 1e-6)?;
            check.close(&at, "error_rate_ci.high", &ci["high"], &their_ci[1], 1e-6)?;
            for q in ["p50", "p95", "p99"] {
                let ours = &v["latency_ci"][q];
                let theirs = &theirs[q];
                check.quantile(&at, q, &ours["value"], &theirs["value"])?;
                check.quantile(&at, q, &ours["ci_low"], &theirs["ci"][0])?;
                check.quantile(&at, q, &ours["ci_high"], &theirs["ci"][1])?;
            }
        }
        let baseline = report["baseline"].as_str().unwrap_or_default();
        for s in report["segments"].as_array().into_iter().flatten() {
            let (dimension, segment) = (
                s["dimension"].as_str().unwrap_or_default(),
                s["segment"].as_str().unwrap_or_default(),
            );
            let variant = s["variant"].as_str().unwrap_or_default();
            let at = format!("{experiment} {dimension}={segment} {variant}");
            let (ours_b, ours_v) = (
                arm(dimension, segment, baseline)?,
                arm(dimension, segment, variant)?,
            );
            check.exact(
                &at,
                "baseline_users",
                &s["baseline_users"],
                &ours_b["users"],
            )?;
            check.exact(&at, "variant_users", &s["variant_users"], &ours_v["users"])?;
            match s["metric"].as_str() {
                Some("error_rate") => {
                    check.close(
                        &at,
                        "baseline",
                        &s["baseline_value"],
                        &ours_b["error_rate"],
                        1e-9,
                    )?;
                    check.close(
                        &at,
                        "variant",
                        &s["variant_value"],
                        &ours_v["error_rate"],
                        1e-9,
                    )?;
                }
                Some(q @ ("latency_p50" | "latency_p95" | "latency_p99")) => {
                    let q = &q["latency_".len()..];
                    check.quantile(&at, q, &s["baseline_value"], &ours_b[q]["value"])?;
                    check.quantile(&at, q, &s["variant_value"], &ours_v[q]["value"])?;
                }
                _ => {}
            }
        }
    }
    if check.agreement.figures == 0 {
        return Err("nothing to compare: no variants in shiftright's report".into());
    }
    Ok(check.agreement)
}

#[derive(Default)]
struct Check {
    agreement: Agreement,
}

impl Default for Agreement {
    fn default() -> Self {
        Agreement {
            figures: 0,
            largest_quantile_difference: 0.0,
        }
    }
}

impl Check {
    fn exact(&mut self, at: &str, field: &str, ours: &Value, theirs: &Value) -> Result<(), String> {
        self.agreement.figures += 1;
        (ours.as_f64() == theirs.as_f64())
            .then_some(())
            .ok_or_else(|| format!("{at} {field}: shiftright {ours}, DuckDB {theirs}"))
    }

    /// Both absent (no CI on either side) or both within `tolerance` relative.
    fn close(
        &mut self,
        at: &str,
        field: &str,
        ours: &Value,
        theirs: &Value,
        tolerance: f64,
    ) -> Result<f64, String> {
        self.agreement.figures += 1;
        match (ours.as_f64(), theirs.as_f64()) {
            (None, None) => Ok(0.0),
            (Some(x), Some(y)) => {
                let difference = relative(x, y);
                (difference <= tolerance)
                    .then_some(difference)
                    .ok_or_else(|| format!("{at} {field}: shiftright {x}, DuckDB {y}"))
            }
            _ => Err(format!("{at} {field}: shiftright {ours}, DuckDB {theirs}")),
        }
    }

    fn quantile(&mut self, at: &str, q: &str, ours: &Value, theirs: &Value) -> Result<(), String> {
        let difference = self.close(at, q, ours, theirs, QUANTILE_TOLERANCE)?;
        let largest = &mut self.agreement.largest_quantile_difference;
        *largest = largest.max(difference);
        Ok(())
    }
}

fn relative(x: f64, y: f64) -> f64 {
    if x == y {
        return 0.0;
    }
    (x - y).abs() / x.abs().max(y.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reports(p99: f64, users: u64) -> String {
        json!([{
            "experiment": "e", "baseline": "v1",
            "variants": [{
                "name": "v1", "users": users, "requests": 10, "errors": 1, "error_rate": 0.1,
                "error_rate_ci": {"low": 0.05, "high": 0.15},
                "latency_ci": {
                    "p50": {"value": 5.0, "ci_low": 4.0, "ci_high": 6.0},
                    "p95": {"value": 9.0, "ci_low": null, "ci_high": null},
                    "p99": {"value": p99, "ci_low": null, "ci_high": null}
                }
            }],
            "segments": [{
                "dimension": "region", "segment": "eu", "metric": "error_rate", "variant": "v1",
                "baseline_users": 3, "variant_users": 3, "baseline_value": 0.2, "variant_value": 0.2
            }]
        }])
        .to_string()
    }

    fn duckdb() -> Value {
        let arm = |dimension: &str, segment: &str, users: u64, rate: f64| {
            json!({
                "experiment": "e", "dimension": dimension, "segment": segment, "variant": "v1",
                "users": users, "requests": 10, "errors": 1, "error_rate": rate,
                "error_rate_ci": [0.05, 0.15],
                "p50": {"value": 5.0, "ci": [4.0, 6.0]},
                "p95": {"value": 9.0, "ci": null},
                "p99": {"value": 10.0, "ci": null}
            })
        };
        json!({"arms": [arm("all", "", 7, 0.1), arm("region", "eu", 3, 0.2)]})
    }

    #[test]
    fn agreeing_answers_are_counted_and_a_difference_is_named() {
        let agreement = compare(&reports(10.05, 7), &duckdb()).unwrap();
        assert!(agreement.figures > 10, "{agreement:?}");
        assert!((agreement.largest_quantile_difference - 0.05 / 10.05).abs() < 1e-12);
        let far = compare(&reports(11.0, 7), &duckdb()).unwrap_err();
        assert!(far.contains("e v1 p99"), "{far}");
        let users = compare(&reports(10.0, 8), &duckdb()).unwrap_err();
        assert!(users.contains("users"), "{users}");
        assert!(compare("[]", &duckdb()).is_err());
    }
}
