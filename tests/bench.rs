//! `shiftright bench` as BENCHMARKS.md runs it, at tiny sizes: each benchmark must run to its end
//! and print its table, and the analysis benchmark must find DuckDB and shiftright agreeing on the
//! answers, and the cluster giving the local report. No figure is asserted: speed is read from the full runs, never checked by a test.

mod common;

use std::process::{Command, Output};

use common::{required, text, Tansu};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftright"))
        .arg("bench")
        .args(args)
        .env_remove("SHIFTRIGHT_LOG")
        .output()
        .expect("run shiftright bench")
}

fn duckdb_available() -> bool {
    Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn analysis_benchmark_runs_both_sides_over_the_same_files() {
    let with_duckdb = duckdb_available();
    if !with_duckdb {
        assert!(
            !required("SHIFTRIGHT_REQUIRE_INTEROP"),
            "python3 -c 'import duckdb' failed and SHIFTRIGHT_REQUIRE_INTEROP=1"
        );
        eprintln!("skipping DuckDB in this test: pip install duckdb");
    }
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_str().unwrap();
    let mut args = vec![
        "analysis",
        "--sizes",
        "20k",
        "--work-dir",
        work,
        "--cluster-executors",
        "2",
    ];
    if !with_duckdb {
        args.push("--no-duckdb");
    }
    let out = bench(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("| request events |"), "{stdout}");
    if with_duckdb {
        assert!(stdout.contains("| yes: "), "the two disagree:\n{stdout}");
    }
    // The cluster row: the same report from a scheduler and two executors.
    assert!(
        stdout.contains("(scheduler + 2 executors)") && stdout.contains("| yes |"),
        "{stdout}"
    );
    assert!(stderr.contains("generating Parquet"), "{stderr}");
    // A second run reuses the data rather than generating it again.
    let again = bench(&args);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("reusing the data"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn ingest_and_freshness_benchmarks_run_on_tansu() {
    if Tansu::binary().is_none() {
        assert!(
            !required("SHIFTRIGHT_REQUIRE_TANSU"),
            "tansu is not installed and SHIFTRIGHT_REQUIRE_TANSU=1"
        );
        eprintln!("skipping: tansu is not installed");
        return;
    }
    let out = bench(&[
        "ingest",
        "--events",
        "20k",
        "--partitions",
        "2",
        "--timeout",
        "3m",
        "--instances",
        "1,2",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("Ingest / bare consumer"), "{stdout}");
    assert!(stdout.contains("| members |"), "{stdout}");
    assert!(
        stdout.contains("Durable: 20000 rows and dead letters"),
        "{stdout}"
    );

    let out = bench(&[
        "freshness",
        "--rate",
        "500",
        "--duration",
        "3s",
        "--partitions",
        "2",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("| produce → queryable |"), "{stdout}");
}

#[test]
fn bad_sizes_are_usage_errors() {
    let out = bench(&["analysis", "--sizes", "ten"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected a positive count"),
        "{}",
        text(&out.stderr)
    );
}
