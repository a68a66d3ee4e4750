//! The binary as a user runs it: the demo, analyze's exit codes and JSON report, query's formats,
//! and errors that name what is wrong.

use std::path::Path;
use std::process::{Command, Output};

fn shiftright(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftright"))
        .args(args)
        .env_remove("SHIFTRIGHT_LOG")
        .output()
        .expect("run shiftright")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_documents_exit_codes_and_every_command() {
    let out = shiftright(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "ingest",
        "analyze",
        "query",
        "generate",
        "demo",
        "Exit codes",
        "ROLLBACK",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    let ingest = text(&shiftright(&["ingest", "--help"]).stdout);
    for needle in [
        "--flush-rows",
        "100000",
        "SHIFTRIGHT_BROKERS",
        "--max-buffer-bytes",
        "[default: 10s]",
    ] {
        assert!(
            ingest.contains(needle),
            "ingest --help lacks {needle}:\n{ingest}"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_runtime_errors_exit_1_naming_the_path() {
    assert_eq!(shiftright(&["analyze"]).status.code(), Some(2));
    let out = shiftright(&["analyze", "--data", "/nonexistent/shiftright-data"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/shiftright-data"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_experiments_file_is_named_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("experiments.toml");
    std::fs::write(&file, "[experiments.x]\np99_ratio = 0.5\n").unwrap();
    std::fs::create_dir_all(dir.path().join("requests")).unwrap();
    let out = shiftright(&[
        "analyze",
        "--data",
        dir.path().to_str().unwrap(),
        "--experiments",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("experiments.toml") && err.contains("p99_ratio"),
        "{err}"
    );
}

#[test]
fn demo_then_analyze_and_query_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let data_s = data.to_str().unwrap();
    let out = shiftright(&["demo", "--out", data_s, "--users", "30000"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("ROLLBACK") && stdout.contains(data_s),
        "{stdout}"
    );

    let experiments = data.join("experiments.toml");
    let exp = experiments.to_str().unwrap();
    let bad = shiftright(&[
        "analyze",
        "--data",
        data_s,
        "--experiments",
        exp,
        "-e",
        "checkout-canary",
        "--format",
        "json",
    ]);
    assert_eq!(bad.status.code(), Some(3), "{}", text(&bad.stderr));
    let report: serde_json::Value = serde_json::from_slice(&bad.stdout).expect("JSON report");
    assert_eq!(report[0]["verdict"], "ROLLBACK");
    assert!(report[0]["reasons"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    for key in ["srm", "variants", "comparisons"] {
        assert!(report[0].get(key).is_some(), "report lacks {key}");
    }
    let healthy = shiftright(&[
        "analyze",
        "--data",
        data_s,
        "--experiments",
        exp,
        "-e",
        "search-canary",
        "--format",
        "markdown",
    ]);
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy.stdout));
    assert!(text(&healthy.stdout).starts_with("## search-canary"));

    let csv = shiftright(&["query", "--data", data_s, "--format", "csv", "SELECT variant, COUNT(*) AS n FROM exposures WHERE experiment = 'checkout-canary' GROUP BY variant ORDER BY variant"]);
    assert!(csv.status.success(), "{}", text(&csv.stderr));
    let csv = text(&csv.stdout);
    assert!(
        csv.starts_with("variant,n\nv1,") && csv.contains("\nv2,"),
        "{csv}"
    );
    for name in [
        "error_rate",
        "latency",
        "srm_counts",
        "duplicates",
        "dead_letters_by_reason",
    ] {
        let named = shiftright(&["query", "--data", data_s, "--name", name]);
        assert!(
            named.status.success(),
            "query --name {name}: {}",
            text(&named.stderr)
        );
    }
    assert!(Path::new(data_s).join("requests").is_dir());
}
