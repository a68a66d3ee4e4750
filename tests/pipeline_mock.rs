//! End to end on the embedded broker: a generated scenario is produced to Kafka, ingested into
//! Parquet, analysed, and the verdicts and metric values checked against the generator's truth.
//! The same Parquet is then read by DuckDB and pyarrow (outside readers) for the same row counts.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{
    assert_output_matches, assert_report_matches_truth, count_rows, produce_and_ingest, required,
    test_config,
};
use shiftright_analyze::{ExperimentsFile, Verdict};
use shiftright_traffic::{EmbeddedBroker, ExperimentSpec, Scenario, TopicNames, VariantSpec};

fn scenario() -> Scenario {
    let healthy_ab = ExperimentSpec {
        name: "search-ab".into(),
        variants: vec![
            VariantSpec::typical("control", 0.5),
            VariantSpec::typical("treatment", 0.5),
        ],
        endpoints: vec!["GET /search".into()],
        requests_per_user: 4.0,
        shadow_share: 0.05,
    };
    Scenario {
        seed: 11,
        users: 30_000,
        synthetic_share: 0.01,
        malformed_share: 0.001,
        duration_s: 3600,
        duplicate_share: 0.005,
        experiments: vec![Scenario::bad_canary("checkout-canary"), healthy_ab],
    }
}

const EXPERIMENTS: &str = r#"
[experiments.checkout-canary]
weights = { v1 = 0.95, v2 = 0.05 }
[experiments.search-ab]
weights = { control = 0.5, treatment = 0.5 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_canaries_flow_from_kafka_to_verdicts() {
    tokio::time::timeout(Duration::from_secs(300), run())
        .await
        .expect("the pipeline test took over 5 minutes");
}

async fn run() {
    let broker = EmbeddedBroker::start(1).unwrap();
    for topic in TopicNames::default().all() {
        broker.create_topic(topic, 3).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let config = test_config(broker.bootstrap_servers(), out.path(), "e2e");
    let (produced, summary) =
        produce_and_ingest(config, scenario(), vec![], Duration::from_secs(180)).await;
    assert!(
        produced.malformed > 0,
        "the scenario mixes in malformed messages"
    );
    assert_eq!(summary.request_rows, produced.requests);
    assert_eq!(summary.business_rows, produced.business);
    assert_eq!(summary.exposure_rows, produced.exposures);
    assert_eq!(summary.dead_letters, produced.malformed);

    assert_output_matches(out.path(), &produced).await;

    let experiments = ExperimentsFile::parse(EXPERIMENTS).unwrap();
    let reports = shiftright_analyze::analyze(out.path(), &experiments, &[])
        .await
        .unwrap();
    let by_name: BTreeMap<&str, _> = reports.iter().map(|r| (r.experiment.as_str(), r)).collect();

    let canary = by_name["checkout-canary"];
    // Two regions in the generated traffic: the guardrails are also tested per region.
    let regions: std::collections::BTreeSet<&str> = canary
        .segments
        .iter()
        .filter(|g| g.dimension == "region")
        .map(|g| g.segment.as_str())
        .collect();
    assert_eq!(regions.len(), 2, "{:?}", canary.segments);
    assert_eq!(
        canary.verdict,
        Verdict::Rollback,
        "reasons: {:?}",
        canary.reasons
    );
    assert!(
        canary.reasons.iter().any(|r| r.contains("error_rate")),
        "{:?}",
        canary.reasons
    );
    assert!(
        canary.reasons.iter().any(|r| r.contains("latency_p99")),
        "{:?}",
        canary.reasons
    );
    let ab = by_name["search-ab"];
    assert_ne!(
        ab.verdict,
        Verdict::Rollback,
        "a healthy 50/50 test must not roll back: {:?}",
        ab.reasons
    );
    assert_ne!(ab.verdict, Verdict::Invalid, "{:?}", ab.reasons);

    // Every metric value equals the generator's ground truth.
    for report in [canary, ab] {
        assert_report_matches_truth(report, &produced);
        let resent = produced
            .duplicates_by_experiment
            .get(&report.experiment)
            .copied()
            .unwrap_or(0);
        assert!(resent > 0, "the scenario resends some events");
        assert_eq!(
            report.data_quality.duplicates_dropped, resent,
            "{}: duplicates dropped",
            report.experiment
        );
        assert!(
            report.srm.checked && report.srm.p_value.unwrap() > 0.001,
            "{}: SRM {:?}",
            report.experiment,
            report.srm
        );
    }
    let v2 = canary.variants.iter().find(|v| v.name == "v2").unwrap();
    let v1 = canary.variants.iter().find(|v| v.name == "v1").unwrap();
    let p99_ratio = v2.latency_ms.p99.unwrap() / v1.latency_ms.p99.unwrap();
    assert!((1.6..2.5).contains(&p99_ratio), "p99 ratio {p99_ratio}");

    outside_readers_agree(out.path()).await;
}

/// DuckDB and pyarrow read our Parquet with the same row counts.
async fn outside_readers_agree(out: &std::path::Path) {
    let probe = Command::new("python3")
        .args(["-c", "import duckdb, pyarrow"])
        .output();
    let available = probe.as_ref().is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            !required("SHIFTRIGHT_REQUIRE_INTEROP"),
            "python3 with duckdb and pyarrow is required here"
        );
        eprintln!(
            "skipping the DuckDB/pyarrow check: python3 with duckdb and pyarrow is not installed"
        );
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/read_counts.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(out)
        .output()
        .expect("run the interop script");
    assert!(
        output.status.success(),
        "interop script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let counts: BTreeMap<String, BTreeMap<String, u64>> =
        serde_json::from_slice(&output.stdout).expect("script prints JSON");
    for table in ["requests", "business", "exposures", "dead_letters"] {
        let ours = count_rows(out, table).await;
        assert_eq!(counts["duckdb"][table], ours, "DuckDB count of {table}");
        assert_eq!(counts["pyarrow"][table], ours, "pyarrow count of {table}");
    }
}
