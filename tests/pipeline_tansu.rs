//! The same pipeline against tansu, a Kafka broker written independently of librdkafka, so that
//! the ingest is not only ever tested against librdkafka's own mock. Completeness is checked by
//! counting rows, never by tansu's high watermarks (which under-report).

mod common;

use std::time::Duration;

use common::{count_rows, produce_and_ingest, required, test_config, Tansu};
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
    let tansu = Tansu::start(binary, 3);
    // One consumer that never restarts mid-stream: tansu's mid-batch resume fault does not apply,
    // so the producer batches normally.
    let scenario = Scenario {
        users: 12_000,
        malformed_share: 0.002,
        experiments: vec![Scenario::bad_canary("checkout-canary")],
        ..Scenario::demo(12_000, 5)
    };
    let out = tempfile::tempdir().unwrap();
    let config = test_config(&tansu.bootstrap, out.path(), "tansu-e2e");
    let (produced, summary) =
        produce_and_ingest(config, scenario, vec![], Duration::from_secs(240)).await;
    assert_eq!(summary.dead_letters, produced.malformed);
    assert_eq!(count_rows(out.path(), "requests").await, produced.requests);
    assert_eq!(
        count_rows(out.path(), "exposures").await,
        produced.exposures
    );
    assert_eq!(count_rows(out.path(), "business").await, produced.business);

    let experiments = ExperimentsFile::parse(
        "[experiments.checkout-canary]\nweights = { v1 = 0.95, v2 = 0.05 }\n",
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
    for v in &reports[0].variants {
        let truth = &produced.truth[&("checkout-canary".to_string(), v.name.clone())];
        assert_eq!(
            (v.users, v.requests, v.errors),
            (truth.users, truth.requests, truth.errors),
            "{}",
            v.name
        );
    }
}
