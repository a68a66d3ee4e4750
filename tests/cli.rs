//! The binary as a user runs it: the demo, analyze's exit codes and JSON report, query's formats,
//! and errors that name what is wrong.

mod common;

use common::{shiftright, text};
use std::path::Path;
use std::process::Command;

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
fn engine_flags_are_documented_and_checked() {
    for command in ["analyze", "report", "query"] {
        let help = text(&shiftright(&[command, "--help"]).stdout);
        for needle in [
            "--memory-limit",
            "SHIFTRIGHT_MEMORY_LIMIT",
            "2GiB",
            "--threads",
            "--spill-dir",
            "--skip-corrupt",
        ] {
            assert!(
                help.contains(needle),
                "{command} --help lacks {needle}:\n{help}"
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = shiftright(&[
        "query",
        "--data",
        data,
        "--memory-limit",
        "lots",
        "SELECT 1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a size"),
        "{}",
        text(&out.stderr)
    );
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
    // Every named query of the library runs (parameters from their placeholders).
    for q in shiftright_analyze::read::queries::QUERIES {
        let mut args = vec!["query", "--data", data_s, "--name", q.name];
        for p in shiftright_analyze::read::queries::placeholders(q.sql) {
            args.push("--param");
            args.push(match p.as_str() {
                "experiment" => "experiment=checkout-canary",
                "metric" => "metric=error_rate",
                // The whole demo: from the epoch to 2100.
                "start_ms" => "start_ms=0",
                "end_ms" => "end_ms=4102444800000",
                other => panic!("no test value for parameter {other} of {}", q.name),
            });
        }
        let named = shiftright(&args);
        assert!(
            named.status.success(),
            "query --name {}: {}",
            q.name,
            text(&named.stderr)
        );
    }
    let active = shiftright(&[
        "query",
        "--data",
        data_s,
        "--name",
        "active_experiments",
        "--param",
        "start_ms=0",
        "--param",
        "end_ms=4102444800000",
        "--format",
        "csv",
    ]);
    let active = text(&active.stdout);
    assert!(
        active.starts_with("experiment\n") && active.contains("checkout-canary"),
        "{active}"
    );
    assert!(Path::new(data_s).join("requests").is_dir());

    results_history_is_queryable(data_s);
    duckdb_agrees_per_variant(data_s);
    daily_report_pages(data_s, exp, &dir.path().join("pages"));
}

/// `shiftright report` writes a page per experiment with its charts, an index, Markdown and
/// JSON; the pages render in headless Chromium.
fn daily_report_pages(data: &str, experiments: &str, pages: &Path) {
    let day = shiftright(&[
        "query",
        "--data",
        data,
        "--format",
        "csv",
        "SELECT CAST(CAST(MAX(ts) AS DATE) AS VARCHAR) AS day FROM exposures",
    ]);
    let day = text(&day.stdout).lines().nth(1).unwrap().to_string();
    let out = shiftright(&[
        "report",
        "--data",
        data,
        "--experiments",
        experiments,
        "--date",
        &day,
        "--out",
        pages.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "report: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ROLLBACK   checkout-canary") && stdout.contains("search-canary"),
        "{stdout}"
    );
    let index = std::fs::read_to_string(pages.join("index.html")).unwrap();
    assert!(
        index.contains("checkout-canary.html") && index.contains("search-canary.html"),
        "{index}"
    );
    let page = std::fs::read_to_string(pages.join("checkout-canary.html")).unwrap();
    for id in [
        "forest-plot",
        "latency-cdf",
        "hourly-error-rate",
        "hourly-p99",
    ] {
        let at = page
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id}"));
        let inner = page[at..].split_once('>').unwrap().1;
        assert!(
            inner.starts_with("<svg"),
            "{id} holds no SVG: {}",
            &inner[..80.min(inner.len())]
        );
    }
    assert!(page.contains("class=\"banner rollback\""), "verdict banner");
    // Self-contained: nothing fetched, no script.
    for outside in ["src=\"http", "<link", "<script", "@import"] {
        assert!(!page.contains(outside), "the page contains {outside}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pages.join("checkout-canary.json")).unwrap())
            .unwrap();
    assert_eq!(json["verdict"], "ROLLBACK");
    assert!(std::fs::read_to_string(pages.join("search-canary.md"))
        .unwrap()
        .contains("### Data quality"));
    // Both report runs are in the history too.
    let runs = shiftright(&[
        "query",
        "--data",
        data,
        "--format",
        "csv",
        "SELECT COUNT(*) AS n FROM decisions WHERE command = 'report'",
    ]);
    assert_eq!(text(&runs.stdout), "n\n2\n");
    renders_in_chromium(&pages.join("checkout-canary.html"));
}

/// Loads a page in headless Chromium: it must parse with its four charts, and the page must not
/// log a console error. Skipped without Chromium unless SHIFTRIGHT_REQUIRE_BROWSER=1.
fn renders_in_chromium(page: &Path) {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(browser) = browser else {
        assert!(
            std::env::var("SHIFTRIGHT_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "Chromium is required here (Debian package chromium)"
        );
        eprintln!("skipping the Chromium render check: no chromium on PATH");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let screenshot = profile.path().join("page.png");
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let run = |extra: &[String]| {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--enable-logging=stderr",
                "--v=0",
                &format!("--user-data-dir={}", profile.path().display()),
            ])
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium")
    };
    let dom = run(&["--dump-dom".to_string()]);
    assert!(dom.status.success(), "chromium: {}", text(&dom.stderr));
    let dom_text = text(&dom.stdout);
    assert!(
        dom_text.matches("<svg").count() >= 4,
        "the rendered DOM holds {} charts",
        dom_text.matches("<svg").count()
    );
    assert!(dom_text.contains("ROLLBACK"));
    let console = text(&dom.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .count();
    assert_eq!(console, 0, "console messages: {}", text(&dom.stderr));
    let shot = run(&[
        format!("--screenshot={}", screenshot.display()),
        "--window-size=1200,2400".to_string(),
    ]);
    assert!(shot.status.success(), "chromium: {}", text(&shot.stderr));
    let png = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(png > 10_000, "screenshot of {png} bytes");
}

/// The two `analyze` runs above were recorded in `_results/`: the library's history queries see
/// them, parameters are checked, and a result can be written as Parquet.
fn results_history_is_queryable(data: &str) {
    let verdicts = shiftright(&[
        "query",
        "--data",
        data,
        "--name",
        "decisions_over_time",
        "--param",
        "experiment=checkout-canary",
        "--format",
        "json",
    ]);
    assert!(verdicts.status.success(), "{}", text(&verdicts.stderr));
    let rows: Vec<serde_json::Value> = text(&verdicts.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "one recorded run of checkout-canary: {rows:?}"
    );
    assert_eq!(rows[0]["verdict"], "ROLLBACK");
    assert_eq!(rows[0]["command"], "analyze");
    assert!(
        rows[0]["first_reason"]
            .as_str()
            .is_some_and(|r| r.contains("error_rate") || r.contains("excess errors")),
        "{rows:?}"
    );

    let lift = shiftright(&[
        "query",
        "--data",
        data,
        "--name",
        "lift_over_time",
        "--param",
        "experiment=checkout-canary",
        "--param",
        "metric=error_rate",
        "--format",
        "json",
    ]);
    assert!(lift.status.success(), "{}", text(&lift.stderr));
    let lift: serde_json::Value = serde_json::from_str(text(&lift.stdout).trim()).unwrap();
    // The demo's regressed canary has about 3× the baseline's error rate.
    let observed =
        lift["variant_value"].as_f64().unwrap() / lift["baseline_value"].as_f64().unwrap();
    assert!((2.0..4.5).contains(&observed), "{lift}");

    let missing = shiftright(&["query", "--data", data, "--name", "hourly"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("--param experiment=VALUE"),
        "{}",
        text(&missing.stderr)
    );

    let file = Path::new(data).join("hourly.parquet");
    let parquet = shiftright(&[
        "query",
        "--data",
        data,
        "--name",
        "hourly",
        "--param",
        "experiment=search-canary",
        "--format",
        "parquet",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(parquet.status.success(), "{}", text(&parquet.stderr));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&file).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut from_file = 0_i64;
    for batch in reader {
        let batch = batch.unwrap();
        let requests = arrow::compute::cast(
            batch.column_by_name("requests").unwrap(),
            &arrow::datatypes::DataType::Int64,
        )
        .unwrap();
        from_file += arrow::compute::sum(arrow::array::AsArray::as_primitive::<
            arrow::datatypes::Int64Type,
        >(&requests))
        .unwrap_or(0);
    }
    let direct = shiftright(&[
        "query",
        "--data",
        data,
        "--format",
        "csv",
        "SELECT COUNT(*) AS n FROM requests WHERE experiment = 'search-canary' AND mode = 'live' AND NOT synthetic",
    ]);
    assert_eq!(
        format!("n\n{from_file}\n"),
        text(&direct.stdout),
        "the Parquet output holds every hour"
    );
}

/// DuckDB (PyPI), reading the same files on its own, computes the same per-variant counts and
/// sums as `shiftright query`.
fn duckdb_agrees_per_variant(data: &str) {
    let probe = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("SHIFTRIGHT_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "python3 with duckdb is required here"
        );
        eprintln!("skipping the DuckDB agreement check: python3 with duckdb is not installed");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/per_variant.py");
    let duck = Command::new("python3")
        .args([script, data])
        .output()
        .expect("run the DuckDB script");
    assert!(duck.status.success(), "{}", text(&duck.stderr));
    let ours = shiftright(&[
        "query",
        "--data",
        data,
        "--format",
        "json",
        "WITH r AS (SELECT CAST(experiment AS VARCHAR) AS experiment, variant, COUNT(*) AS requests, \
         SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors, SUM(latency_ms) AS latency_sum \
         FROM requests WHERE mode = 'live' GROUP BY 1, 2), \
         e AS (SELECT CAST(experiment AS VARCHAR) AS experiment, variant, COUNT(*) AS exposures FROM exposures GROUP BY 1, 2) \
         SELECT r.experiment, r.variant, r.requests, r.errors, r.latency_sum, e.exposures \
         FROM r JOIN e ON e.experiment = r.experiment AND e.variant = r.variant ORDER BY 1, 2",
    ]);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let parse = |out: &[u8]| -> Vec<serde_json::Value> {
        text(out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (duck, ours) = (parse(&duck.stdout), parse(&ours.stdout));
    assert_eq!(duck.len(), ours.len(), "{duck:?} vs {ours:?}");
    assert_eq!(duck.len(), 4, "two experiments of two variants: {duck:?}");
    for (d, o) in duck.iter().zip(&ours) {
        for key in ["experiment", "variant", "requests", "errors", "exposures"] {
            assert_eq!(d[key], o[key], "{key}: DuckDB {d} vs shiftright {o}");
        }
        let (a, b) = (
            d["latency_sum"].as_f64().unwrap(),
            o["latency_sum"].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-9 * a.abs(),
            "latency_sum: DuckDB {a} vs shiftright {b}"
        );
    }
}
