//! A healthy canary that ramps through four rollout stages (1% → 5% → 25% → 50%) while the
//! service itself gets worse for everyone (errors 0.5% → 5% from the third stage on), analysed
//! through the plan and `decide` after each stage: never INVALID, never ROLLBACK. The same data
//! judged as one experiment shows what the stages prevent: one weight vector calls the ramp a
//! sample ratio mismatch, and pooling the stages charges the canary for the hours it ramped into.

use shiftright_schemas::Table;

use super::engine::Engine;
use super::tests::{session, write_file, Event};
use crate::config::ExperimentsFile;
use crate::decide::{decide, report::Verdict};

pub(super) const HOUR: i64 = 3_600_000;
/// 2026-12-01T00:00:00Z, the first stage's start.
pub(super) const T0: i64 = 1_796_083_200_000;
/// Canary share of new users, per stage.
const CANARY: [f64; 4] = [0.01, 0.05, 0.25, 0.50];
const USERS_PER_STAGE: usize = 4_000;

/// A uniform number in [0, 1) from `seed` (splitmix64).
fn uniform(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// The ramp's events: each stage's new users drawn with its canary share and kept in their
/// variant (sticky assignment), one exposure (carrying the allocation, as a flag SDK may) then a
/// request every 20 minutes for an hour (so users come back in the next stage). Either variant errs at 0.5% of requests before the third
/// stage and 5% from then on.
pub(super) fn ramp() -> (Vec<Event>, Vec<Event>) {
    let (mut requests, mut exposures) = (Vec::new(), Vec::new());
    for (stage, share) in CANARY.iter().enumerate() {
        for i in 0..USERS_PER_STAGE {
            let u = (stage * USERS_PER_STAGE + i) as u64;
            let variant = if uniform(u) < *share { "v2" } else { "v1" };
            let assigned = T0 + stage as i64 * HOUR + (i as i64 * HOUR) / USERS_PER_STAGE as i64;
            let base = Event {
                experiment: "ramp",
                event_id: format!("x{u}"),
                ts: assigned,
                user: format!("user-{u}"),
                synthetic: false,
                variant,
                mode: "live",
                value: 0.0,
                status: 200,
                latency: 0.0,
                endpoint: Some("/a"),
                region: Some("eu"),
                shadow_match: None,
                weights: Some(format!("{{\"v1\":{},\"v2\":{}}}", 1.0 - share, share)),
            };
            exposures.push(base.clone());
            for r in 0..4u64 {
                let ts = assigned + r as i64 * HOUR / 3;
                let late = ts >= T0 + 2 * HOUR;
                let error_rate = if late { 0.05 } else { 0.005 };
                let seed = u * 16 + r + 1_000_000;
                requests.push(Event {
                    event_id: format!("r{u}-{r}"),
                    ts,
                    status: if uniform(seed) < error_rate { 503 } else { 200 },
                    latency: if late { 100.0 } else { 50.0 } + 20.0 * uniform(seed + 7),
                    ..base.clone()
                });
            }
        }
    }
    (requests, exposures)
}

pub(super) fn stages_file(extra: &str) -> String {
    let stages: Vec<String> = CANARY
        .iter()
        .enumerate()
        .map(|(i, share)| {
            let from = chrono::DateTime::from_timestamp_millis(T0 + i as i64 * HOUR).unwrap();
            format!(
                "{{ from = \"{}\", weights = {{ v1 = {}, v2 = {} }} }}",
                from.to_rfc3339(),
                100.0 - share * 100.0,
                share * 100.0
            )
        })
        .collect();
    format!(
        "[defaults]\nerror_rate_ratio = 1.2\n\n[experiments.ramp]\nbaseline = \"v1\"\n{extra}stages = [{}]\n",
        stages.join(", ")
    )
}

/// The summary of the events before `until` under `file`.
async fn summary_until(
    requests: &[Event],
    exposures: &[Event],
    until: i64,
    file: &ExperimentsFile,
) -> crate::read::summary::ExperimentSummary {
    let before = |events: &[Event]| -> Vec<Event> {
        events.iter().filter(|e| e.ts < until).cloned().collect()
    };
    let (requests, exposures) = (before(requests), before(exposures));
    let tables = [
        (&requests[..], Table::Requests),
        (&exposures[..], Table::Exposures),
        (&[][..], Table::Business),
    ];
    let ctx = session(&Engine::default(), tables, 2).await;
    let mut summaries = super::load::load(&ctx, &[], file).await.unwrap();
    summaries.remove("ramp").unwrap()
}

/// The report of the events before `until` under `file`.
async fn report_until(
    requests: &[Event],
    exposures: &[Event],
    until: i64,
    file: &str,
) -> crate::decide::report::Report {
    let file = ExperimentsFile::parse(file).unwrap();
    let summary = summary_until(requests, exposures, until, &file).await;
    decide("ramp", &summary, &file.settings("ramp"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_ramps_through_four_stages_without_invalid_or_rollback() {
    let (requests, exposures) = ramp();
    let staged = stages_file("");
    for stage in 1..=4 {
        let r = report_until(&requests, &exposures, T0 + stage as i64 * HOUR, &staged).await;
        let summary = format!("after stage {stage}: {} {:?}", r.verdict, r.reasons);
        assert!(
            !matches!(r.verdict, Verdict::Invalid | Verdict::Rollback),
            "{summary}"
        );
        let compared = r.rollout_stage.as_ref().expect("staged");
        assert_eq!(compared.stage, stage, "{summary}");
        assert_eq!(compared.users, USERS_PER_STAGE as u64, "{summary}");
        assert_eq!(
            compared.earlier_users,
            (stage as u64 - 1) * USERS_PER_STAGE as u64
        );
        assert_eq!(
            r.srm.stages.len(),
            stage,
            "every stage checked: {:?}",
            r.srm
        );
        assert!(r.srm.checked);
        assert!(
            r.srm.stages.iter().all(|s| s.adjusted_p_value.is_some()),
            "{:?}",
            r.srm.stages
        );
        // The comparison reads the latest stage's users only.
        let counts: u64 = r.srm.counts.values().sum();
        assert_eq!(counts, USERS_PER_STAGE as u64, "{summary}");
        assert!(
            r.blast_radius.iter().all(|b| !b.harm_budget_exceeded),
            "{summary}"
        );
    }

    let end = T0 + 4 * HOUR;
    // The same exposures without the allocations they carry (as older SDKs send them).
    let bare: Vec<Event> = exposures
        .iter()
        .map(|e| Event {
            weights: None,
            ..e.clone()
        })
        .collect();
    // The stages' rows come beside those over all users, which stay what they were.
    let with = ExperimentsFile::parse(&staged).unwrap();
    let without = ExperimentsFile::parse("").unwrap();
    let (a, b) = (
        summary_until(&requests, &exposures, end, &with).await,
        summary_until(&requests, &bare, end, &without).await,
    );
    assert_eq!(format!("{:?}", a.variants), format!("{:?}", b.variants));
    assert_eq!(a.stages.len(), 4);
    assert!(b.stages.is_empty());
    let by_stage: u64 = a.stages.values().map(|s| s.real_users()).sum();
    assert_eq!(by_stage, a.real_users());
    // One weight vector, the last stage's: the plan looks like a mismatch (the default
    // thresholds and no harm budget, so that the pooling below does not roll back first).
    let one_vector = "[experiments.ramp]\nbaseline = \"v1\"\nharm_budget = 1e9\nweights = { v1 = 50, v2 = 50 }\n";
    let r = report_until(&requests, &bare, end, one_vector).await;
    assert_eq!(r.verdict, Verdict::Invalid, "{:?}", r.reasons);
    assert!(r
        .reasons
        .iter()
        .any(|m| m.contains("sample ratio mismatch")));
    // Every user pooled: the canary's requests fall in the worse hours, and it is rolled back.
    let pooled = "[defaults]\nerror_rate_ratio = 1.2\n\n[experiments.ramp]\nbaseline = \"v1\"\n";
    let r = report_until(&requests, &bare, end, pooled).await;
    assert_eq!(r.verdict, Verdict::Rollback, "{:?}", r.reasons);
    assert!(r.rollout_stage.is_none());

    // Without stages in the file, the allocations the exposures carry are the stages.
    let events_only =
        "[defaults]\nerror_rate_ratio = 1.2\n\n[experiments.ramp]\nbaseline = \"v1\"\n";
    for stage in 1..=4 {
        let r = report_until(&requests, &exposures, T0 + stage as i64 * HOUR, events_only).await;
        let summary = format!("after stage {stage}: {} {:?}", r.verdict, r.reasons);
        assert!(
            !matches!(r.verdict, Verdict::Invalid | Verdict::Rollback),
            "{summary}"
        );
        let compared = r.rollout_stage.as_ref().expect("staged by the events");
        assert_eq!(
            (compared.stage, compared.users),
            (stage, USERS_PER_STAGE as u64),
            "{summary}"
        );
        let share = compared.weights.as_ref().expect("the events' allocation")["v2"];
        assert!((share - CANARY[stage - 1]).abs() < 1e-9, "{summary}");
        assert_eq!(r.srm.stages.len(), stage, "{:?}", r.srm);
        assert_eq!(
            r.srm.stages[0].from.as_deref(),
            Some("2026-12-01T00:00:00.000Z"),
            "a stage starts at its first assignment"
        );
    }
    // Exposures whose allocation is not the one users were drawn with are caught.
    let misreported: Vec<Event> = exposures
        .iter()
        .map(|e| match &e.weights {
            Some(w) if w.contains("0.25") => Event {
                weights: Some("{\"v1\":0.95,\"v2\":0.05}".into()),
                ..e.clone()
            },
            _ => e.clone(),
        })
        .collect();
    let r = report_until(&requests, &misreported, end, events_only).await;
    assert_eq!(r.verdict, Verdict::Invalid, "{:?}", r.reasons);

    // A ramp that departs from its plan is still caught: the third stage declared at 5%.
    let wrong = stages_file("").replace("v1 = 75, v2 = 25", "v1 = 95, v2 = 5");
    let r = report_until(&requests, &exposures, end, &wrong).await;
    assert_eq!(r.verdict, Verdict::Invalid, "{:?}", r.reasons);
    assert!(
        r.reasons
            .iter()
            .any(|m| m.contains("sample ratio mismatch in rollout stage 3")),
        "{:?}",
        r.reasons
    );
}

/// Exposure files written before exposures had `weights` read as exposures without them, beside
/// newer files that have them: those users are stage 0, the others the allocation they carried.
#[tokio::test]
async fn exposure_files_from_before_weights_read_as_stage_zero() {
    let (requests, exposures) = ramp();
    let first_hour = |events: &[Event]| -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.ts < T0 + HOUR)
            .cloned()
            .collect()
    };
    let (requests, exposures) = (first_hour(&requests), first_hour(&exposures));
    let (old, new) = exposures.split_at(exposures.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    write_file(data, Table::Requests, &requests, (0, 1, 1));
    write_file(data, Table::Exposures, new, (100_000, 1, 1));
    // The old layout: every column but `weights`.
    let schema = Table::Exposures.schema();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| schema.field(i).name() != "weights")
        .collect();
    let batch = super::tests::batch(Table::Exposures, old)
        .project(&keep)
        .unwrap();
    let path = data.join("exposures/date=2026-12-01/experiment=ramp").join(
        shiftright_schemas::BatchFile {
            topic: "exposures".into(),
            partition: 1,
            epoch: 0,
            first_offset: 0,
            last_offset: old.len() as i64 - 1,
            index: 1,
            count: 1,
            compacted: false,
        }
        .file_name(),
    );
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let file =
        ExperimentsFile::parse("[experiments.ramp]\nweights = { v1 = 99, v2 = 1 }\n").unwrap();
    let reports = crate::analyze_with(data, crate::ReadOptions::default(), &file, &[])
        .await
        .unwrap();
    let r = reports.iter().find(|r| r.experiment == "ramp").unwrap();
    let stages: Vec<(usize, u64)> = r
        .srm
        .stages
        .iter()
        .map(|s| (s.stage, s.counts.values().sum()))
        .collect();
    assert_eq!(
        stages,
        [(0, old.len() as u64), (1, new.len() as u64)],
        "{:?}",
        r.srm
    );
    assert!(
        r.srm.stages.iter().all(|s| s.adjusted_p_value.is_some()),
        "{:?}",
        r.srm
    );
    assert_eq!(r.rollout_stage.as_ref().map(|s| s.stage), Some(1));
    assert!(
        !matches!(r.verdict, Verdict::Invalid | Verdict::Rollback),
        "{:?}",
        r.reasons
    );
}
