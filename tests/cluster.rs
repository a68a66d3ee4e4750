//! The analysis on a Ballista cluster: a `shiftright scheduler` and two `shiftright executor`s on
//! loopback ports (started as the benchmark starts them, `shiftright_bench::cluster`); `analyze`,
//! `query` and `report` run there with `--cluster`, and give the same
//! answers as in one process (floats within 1e-9 relative).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, shiftright, text};

/// Runs `shiftright args` to its end, failing after `limit` (a hung cluster must not hang CI).
fn run_within(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shiftright"))
        .args(args)
        .env_remove("SHIFTRIGHT_LOG")
        // The cluster is chosen by --cluster alone: a local run must stay local.
        .env_remove("SHIFTRIGHT_CLUSTER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shiftright");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "shiftright {args:?} did not finish within {limit:?}:\n{}",
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn the_analysis_on_a_scheduler_and_two_executors_gives_the_local_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let data_s = data.to_str().unwrap();
    let demo = shiftright(&["demo", "--out", data_s, "--users", "20000"]);
    assert!(demo.status.success(), "demo failed: {}", text(&demo.stderr));
    // The demo's experiments, with metrics of our own: their SQL needs DataFusion's nested
    // functions on the executors too.
    let experiments = dir.path().join("experiments.toml");
    let mut settings = std::fs::read_to_string(data.join("experiments.toml")).unwrap();
    settings.push_str(
        "\n[[metrics]]\nname = \"engagement\"\nkinds = [\"engagement\"]\nthreshold = 0.8\n\
         [[metrics]]\nname = \"purchases\"\nkinds = [\"purchase\"]\n\
         [[metrics]]\nname = \"purchases_per_engagement\"\nnumerator = \"purchases\"\ndenominator = \"engagement\"\n",
    );
    std::fs::write(&experiments, settings).unwrap();
    let exp = experiments.to_str().unwrap();

    let mut cluster = shiftright_bench::cluster::LocalCluster::start(
        Path::new(env!("CARGO_BIN_EXE_shiftright")),
        2,
        2,
        512 << 20,
        dir.path(),
    )
    .expect("a scheduler and two executors on loopback");
    let address = cluster.address.clone();
    let cluster_flag = address.as_str();

    let limit = Duration::from_secs(300);
    let analyze = |extra: &[&str]| {
        let mut args = vec![
            "analyze",
            "--data",
            data_s,
            "--experiments",
            exp,
            "--format",
            "json",
            "--no-history",
        ];
        args.extend_from_slice(extra);
        let out = run_within(&args, limit);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "analyze {extra:?}: no JSON report ({e}):\n{}",
                text(&out.stderr)
            )
        });
        (out.status.code(), report)
    };
    let (local_code, local) = analyze(&[]);
    let (cluster_code, remote) = analyze(&["--cluster", cluster_flag]);
    if let Err(exited) = cluster.check_running() {
        panic!("{exited}; logs in {}", dir.path().display());
    }
    assert_eq!(local_code, Some(3), "the demo's bad canary is rolled back");
    assert_eq!(cluster_code, local_code);
    assert!(local.as_array().is_some_and(|r| r.len() >= 2), "{local}");
    assert!(
        local[0]["variants"][0]["metrics"]["purchases_per_engagement"]["value"].is_number(),
        "{local}"
    );
    if let Some(difference) = shiftright_bench::cluster::json_difference(&local, &remote, 1e-9) {
        panic!("the cluster's report differs from the local one: {difference}");
    }

    // SQL over the analysis' stages, our functions included, on the cluster.
    let sql = "SELECT experiment, variant, users, latency_quantile(latency, 0.99) AS p99 \
               FROM analysis_arms WHERE dimension = 'all' AND NOT synthetic \
               ORDER BY experiment, variant";
    let query = |extra: &[&str]| {
        let mut args = vec!["query", "--data", data_s, "--format", "csv", sql];
        args.extend_from_slice(extra);
        let out = run_within(&args, limit);
        assert!(
            out.status.success(),
            "query {extra:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let local_rows = query(&[]);
    assert!(local_rows.lines().count() > 2, "{local_rows}");
    assert_eq!(query(&["--cluster", cluster_flag]), local_rows);

    // Writing is refused on the cluster as it is locally.
    let write = run_within(
        &[
            "query",
            "--data",
            data_s,
            "--cluster",
            cluster_flag,
            "COPY (SELECT 1) TO '/tmp/x.csv'",
        ],
        limit,
    );
    assert_eq!(write.status.code(), Some(1), "{}", text(&write.stderr));
    assert!(
        text(&write.stderr).contains("read only"),
        "{}",
        text(&write.stderr)
    );

    // The daily report's pages on the cluster.
    let pages = dir.path().join("pages");
    let report = run_within(
        &[
            "report",
            "--data",
            data_s,
            "--experiments",
            exp,
            "--out",
            pages.to_str().unwrap(),
            "--cluster",
            cluster_flag,
        ],
        limit,
    );
    assert!(report.status.success(), "report: {}", text(&report.stderr));
    assert!(pages.join("index.html").is_file());

    // A scheduler nobody runs is an error naming the address, not a hang.
    let nobody = format!("df://127.0.0.1:{}", free_port());
    let refused = run_within(
        &[
            "query",
            "--data",
            data_s,
            "--cluster",
            &nobody,
            "SELECT COUNT(*) FROM requests",
        ],
        limit,
    );
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains(&nobody) && stderr.contains("shiftright scheduler"),
        "{stderr}"
    );
}
