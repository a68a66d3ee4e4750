//! Cross-checks of the statistics against scipy and statsmodels on generated data. The data and
//! the reference results are in `fixtures/scipy.json`, made by `fixtures/make_scipy_fixtures.py`
//! (its header says how to rerun it); this test needs no Python.

use serde_json::Value;
use shiftright_analyze::stats::{self, dist, MeanStats};

fn fixtures() -> Value {
    serde_json::from_str(include_str!("fixtures/scipy.json")).expect("fixtures/scipy.json is JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number"))
}

/// Relative agreement to `digits` significant digits (absolute below 1e-300).
fn close(actual: f64, expected: f64, digits: i32, what: &str) {
    let tolerance = 0.5 * 10f64.powi(1 - digits) * expected.abs().max(1e-300);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: shiftright {actual}, scipy/statsmodels {expected}"
    );
}

#[test]
fn welch_matches_scipy_ttest_ind() {
    for (i, case) in fixtures()["welch"].as_array().unwrap().iter().enumerate() {
        let (mut c, mut t) = (MeanStats::default(), MeanStats::default());
        floats(&case["control"]).into_iter().for_each(|y| c.push(y));
        floats(&case["treatment"])
            .into_iter()
            .for_each(|y| t.push(y));
        let e = stats::welch_diff(&c, &t, 0.05).expect("testable");
        close(
            e.estimate / e.se,
            num(case, "t"),
            6,
            &format!("welch {i} t"),
        );
        close(e.p_value, num(case, "p_value"), 4, &format!("welch {i} p"));
        close(
            e.ci_low,
            num(case, "ci_low"),
            5,
            &format!("welch {i} ci_low"),
        );
        close(
            e.ci_high,
            num(case, "ci_high"),
            5,
            &format!("welch {i} ci_high"),
        );
    }
}

#[test]
fn mann_whitney_matches_scipy_asymptotic() {
    for (i, case) in fixtures()["mann_whitney"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let r = stats::mann_whitney_u(&floats(&case["control"]), &floats(&case["treatment"]))
            .expect("testable");
        close(r.u, num(case, "u"), 9, &format!("mann-whitney {i} U"));
        close(
            r.p_value,
            num(case, "p_value"),
            4,
            &format!("mann-whitney {i} p"),
        );
        close(
            r.p_greater,
            num(case, "p_greater"),
            4,
            &format!("mann-whitney {i} p_greater"),
        );
    }
}

#[test]
fn srm_matches_scipy_chisquare() {
    for (i, case) in fixtures()["chi2"].as_array().unwrap().iter().enumerate() {
        let counts: Vec<u64> = case["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        let r = stats::srm_test(&counts, &floats(&case["weights"])).expect("testable");
        close(r.chi2, num(case, "chi2"), 6, &format!("χ² {i} statistic"));
        close(r.p_value, num(case, "p_value"), 4, &format!("χ² {i} p"));
    }
}

#[test]
fn binomial_tail_matches_scipy_binomtest() {
    for (i, case) in fixtures()["binomial_greater"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let k = case["k"].as_u64().unwrap();
        let n = case["n"].as_u64().unwrap();
        close(
            dist::binomial_sf(k, n, num(case, "p")),
            num(case, "p_value"),
            4,
            &format!("binomial {i}"),
        );
    }
}

#[test]
fn holm_and_bh_match_statsmodels_multipletests() {
    for (i, case) in fixtures()["multiple"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let p = floats(&case["p"]);
        for (a, e) in stats::holm(&p).iter().zip(floats(&case["holm"])) {
            close(*a, e, 6, &format!("holm {i}"));
        }
        for (a, e) in stats::benjamini_hochberg(&p)
            .iter()
            .zip(floats(&case["bh"]))
        {
            close(*a, e, 6, &format!("bh {i}"));
        }
    }
}
