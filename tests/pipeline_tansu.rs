//! The same pipeline against tansu, a Kafka broker written independently of librdkafka, so that
//! the ingest is not only ever tested against librdkafka's own mock. Completeness is checked by
//! counting rows, never by tansu's high watermarks (which under-report).

mod common;

use std::time::Duration;

use common::{
    assert_output_matches, assert_report_matches_truth, produce_and_ingest, required, test_config,
    Tansu,
};
use shiftright_analyze::{ExperimentsFile, Verdict};
use shiftright_traffic::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_canary_flows_through_tansu() {
    let Some(binary) = Tansu::binary() else {
        assert!(
            !required("SHIFTRIGHT_REQUIRE_TANSU"),
            "tansu is required here (.ci/run installs it)"
        );
        eprintln!("skipping: tansu is not installed (cargo install tansu --version 0.6.0 --locked --features dynostore)");
        return;
    };
    tokio::time::timeout(Duration::from_secs(300), run(binary))
        .await
        .expect("the tansu test took over 5 minutes");
}

async fn run(binary: std::path::PathBuf) {
    let tansu = common::start_tansu(binary, 3);
    // One consumer that never restarts mid-stream: tansu's mid-batch resume fault does not apply,
    // so the producer batches normally.
    let scenario = Scenario {
        users: 12_000,
        malformed_share: 0.002,
        experiments: vec![Scenario::bad_canary("checkout-canary")],
        ..Scenario::demo(12_000, 5)
    };
    let out = tempfile::tempdir().unwrap();
    let config = test_config(tansu.bootstrap_servers(), out.path(), "tansu-e2e");
    let (produced, summary) =
        produce_and_ingest(config, scenario, vec![], Duration::from_secs(240)).await;
    assert_eq!(summary.dead_letters, produced.malformed);
    assert_output_matches(out.path(), &produced).await;

    // One look at a finished run of 600 canary users: the fixed-horizon test is the valid one
    // here (the sequential default pays for repeated looks with power this small run lacks).
    let experiments = ExperimentsFile::parse(
        "[experiments.checkout-canary]\nweights = { v1 = 0.95, v2 = 0.05 }\nmethod = \"fixed\"\n",
    )
    .unwrap();
    let reports = shiftright_analyze::analyze(out.path(), &experiments, &[])
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].verdict,
        Verdict::Rollback,
        "{:?}",
        reports[0].reasons
    );
    assert_report_matches_truth(&reports[0], &produced);
}
