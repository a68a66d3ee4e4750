//! The plan against what it must compute: `analysis_users` row for row against `user_metrics`
//! (the same per-user figures said with joins), the loader's summaries (duplicates, side
//! traffic, segments), and the same summaries when the aggregates spill under a small memory
//! limit across several partitions.

use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use datafusion::datasource::MemTable;
use datafusion::physical_plan::{collect, ExecutionPlan};
use datafusion::prelude::SessionContext;
use shiftright_schemas::Table;

use crate::config::ExperimentsFile;
use crate::read::engine::Engine;
use crate::read::queries;

/// One stored event; fields a table does not have are ignored there.
#[derive(Debug, Clone)]
pub(super) struct Event {
    pub experiment: &'static str,
    pub event_id: String,
    pub ts: i64,
    pub user: String,
    pub synthetic: bool,
    pub variant: &'static str,
    /// `mode` of a request, `kind` of a business event.
    pub mode: &'static str,
    pub value: f64,
    pub status: i32,
    pub latency: f64,
    pub endpoint: Option<&'static str>,
    pub region: Option<&'static str>,
    pub shadow_match: Option<bool>,
    /// An exposure's allocation, as the ingest stores it.
    pub weights: Option<String>,
}

/// (experiment, event_id, ts, user, synthetic, variant, mode or kind, value).
fn ev(
    (experiment, event_id, ts, user, synthetic, variant, mode, value): (
        &'static str,
        &'static str,
        i64,
        &'static str,
        bool,
        &'static str,
        &'static str,
        f64,
    ),
) -> Event {
    Event {
        experiment,
        event_id: event_id.into(),
        ts,
        user: user.into(),
        synthetic,
        variant,
        mode,
        value,
        status: 200,
        latency: 10.0,
        endpoint: Some("/a"),
        region: Some("eu"),
        shadow_match: None,
        weights: None,
    }
}

/// `events` as `table`, in `partitions` partitions, with the table's full schema.
fn register(ctx: &SessionContext, table: Table, events: &[Event], partitions: usize) {
    let schema = table.schema();
    let chunk = events.len().div_ceil(partitions).max(1);
    // Batches of DataFusion's batch size, as a Parquet scan gives them.
    let batches: Vec<Vec<RecordBatch>> = events
        .chunks(chunk)
        .map(|part| part.chunks(8192).map(|e| batch(table, e)).collect())
        .collect();
    // An empty table is one empty partition.
    let batches = if batches.is_empty() {
        vec![Vec::new()]
    } else {
        batches
    };
    let provider = MemTable::try_new(schema, batches).unwrap();
    ctx.register_table(table.name(), Arc::new(provider))
        .unwrap();
}

/// `events` as one batch of `table`'s schema.
pub(super) fn batch(table: Table, events: &[Event]) -> RecordBatch {
    let schema = table.schema();
    {
        let text = |f: &dyn Fn(&Event) -> Option<String>| -> Arc<dyn Array> {
            Arc::new(events.iter().map(f).collect::<StringArray>())
        };
        let columns: Vec<Arc<dyn Array>> = schema
            .fields()
            .iter()
            .map(|field| -> Arc<dyn Array> {
                match field.name().as_str() {
                    "experiment" => text(&|e| Some(e.experiment.into())),
                    "event_id" => text(&|e| Some(e.event_id.clone())),
                    "ts" => Arc::new(
                        TimestampMillisecondArray::from_iter_values(events.iter().map(|e| e.ts))
                            .with_timezone("UTC"),
                    ),
                    "user_id" => text(&|e| Some(e.user.clone())),
                    "synthetic" => Arc::new(
                        events
                            .iter()
                            .map(|e| Some(e.synthetic))
                            .collect::<BooleanArray>(),
                    ),
                    "variant" => text(&|e| Some(e.variant.into())),
                    "mode" | "kind" => text(&|e| Some(e.mode.into())),
                    "value" => Arc::new(Float64Array::from_iter_values(
                        events.iter().map(|e| e.value),
                    )),
                    "status" => Arc::new(Int32Array::from_iter_values(
                        events.iter().map(|e| e.status),
                    )),
                    "latency_ms" => Arc::new(Float64Array::from_iter_values(
                        events.iter().map(|e| e.latency),
                    )),
                    "endpoint" => text(&|e| e.endpoint.map(Into::into)),
                    "region" => text(&|e| e.region.map(Into::into)),
                    "weights" => text(&|e| e.weights.clone()),
                    "shadow_match" => Arc::new(
                        events
                            .iter()
                            .map(|e| e.shadow_match)
                            .collect::<BooleanArray>(),
                    ),
                    _ => Arc::new(StringArray::from(vec![None::<&str>; events.len()])),
                }
            })
            .collect();
        RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
    }
}

pub(super) async fn session(
    engine: &Engine,
    tables: [(&[Event], Table); 3],
    partitions: usize,
) -> SessionContext {
    let ctx = engine.context().unwrap();
    for (events, table) in tables {
        register(&ctx, table, events, partitions);
    }
    super::register_views(&ctx, super::tables::Users::Events)
        .await
        .unwrap();
    ctx
}

/// Rows of `sql` as text, sorted, whatever their column types.
async fn rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| arrow::util::display::array_value_to_string(c, i).unwrap())
                .collect();
            out.push(cells.join(" "));
        }
    }
    out.sort();
    out
}

/// A small store: two experiments sharing user u1, resent copies, a synthetic user, a user in
/// two variants, a shadow call, business events before and after first exposure.
fn small_store() -> [Vec<Event>; 3] {
    let requests: Vec<Event> = [
        ("a", "r1", 3_000, "u1", false, "v1", "live", 0.0),
        ("a", "r1", 3_000, "u1", false, "v1", "live", 0.0),
        ("a", "r2", 5_000, "u2", false, "v2", "live", 0.0),
        ("a", "r3", 5_000, "u3", true, "v2", "live", 0.0),
        ("a", "r4", 1_000, "u4", false, "v1", "shadow", 0.0),
        ("a", "r5", 2_000, "u5", false, "v1", "live", 0.0),
        ("b", "r1", 8_000, "u1", false, "v9", "live", 0.0),
    ]
    .map(ev)
    .to_vec();
    let exposures: Vec<Event> = [
        ("a", "x1", 4_000, "u1", false, "v1", "", 0.0),
        ("a", "x1", 4_000, "u1", false, "v1", "", 0.0),
        ("a", "x2", 6_000, "u1", false, "v1", "", 0.0),
        ("a", "x3", 4_500, "u2", false, "v2", "", 0.0),
        ("a", "x4", 4_000, "u5", false, "v2", "", 0.0),
        ("a", "x5", 4_000, "u6", false, "v1", "", 0.0),
    ]
    .map(ev)
    .to_vec();
    let business: Vec<Event> = [
        // u1: before its first exposure (4 s) in a, after its first request (8 s) in b
        ("", "b1", 3_500, "u1", false, "", "purchase", 10.0),
        ("", "b1", 3_500, "u1", false, "", "purchase", 10.0),
        ("", "b2", 9_000, "u1", false, "", "engagement", 2.5),
        ("", "b3", 4_600, "u2", false, "", "conversion", 0.0),
        ("", "b4", 100, "u6", false, "", "purchase", 7.0),
        ("", "b5", 100, "nobody", false, "", "purchase", 7.0),
    ]
    .map(ev)
    .to_vec();
    [requests, exposures, business]
}

#[tokio::test]
async fn analysis_users_computes_what_user_metrics_says() {
    let [requests, exposures, business] = small_store();
    let tables = [
        (&requests[..], Table::Requests),
        (&exposures[..], Table::Exposures),
        (&business[..], Table::Business),
    ];
    // One partition and three: partial states merge to the same rows.
    for partitions in [1, 3] {
        let ctx = session(&Engine::default(), tables, partitions).await;
        let from_plan = rows(
            &ctx,
            "SELECT experiment, variant, user_id, multiple_variants, synthetic, exposure_duplicates, \
             CAST(converted AS BIGINT), revenue, CAST(pre_converted AS BIGINT), pre_revenue \
             FROM analysis_users WHERE dimension = 'all'",
        )
        .await;
        let from_sql = rows(&ctx, queries::named("user_metrics").unwrap().sql).await;
        assert_eq!(from_plan, from_sql, "{partitions} partitions");
        assert_eq!(
            from_sql,
            vec![
                "a v1 u1 false false 1 0 2.5 1 10.0",
                "a v1 u5 true false 0 0 0.0 0 0.0",
                "a v1 u6 false false 0 0 0.0 1 7.0",
                "a v2 u2 false false 0 1 0.0 0 0.0",
                "a v2 u3 false true 0 0 0.0 0 0.0",
                "b v9 u1 false false 0 0 2.5 1 10.0",
            ]
        );
        // u1's resent request counts once: its row has one request.
        let u1 = rows(
            &ctx,
            "SELECT requests, request_duplicates, latencies FROM analysis_users \
             WHERE experiment = 'a' AND dimension = 'all' AND user_id = 'u1'",
        )
        .await;
        assert_eq!(u1, vec!["1 1 [10.0]"]);
        // The stages are tables too, and a distribution reads back through latency_quantile.
        let p50 = rows(
            &ctx,
            "SELECT users, latency_quantile(latency, 0.5), latency_quantile(latency, 2.0) \
             FROM analysis_arms WHERE experiment = 'a' AND dimension = 'all' AND variant = 'v1' \
             AND NOT synthetic AND NOT multiple_variants",
        )
        .await;
        assert_eq!(p50, vec!["2 10.0 "], "u1 and u6; ν outside [0, 1] is NULL");
    }
}

/// A generated experiment: `users` users, a few requests each over two endpoints and regions,
/// one resent request in a hundred, some synthetic probes and shadow calls.
fn generated(users: usize) -> [Vec<Event>; 3] {
    let (mut requests, mut exposures, mut business) = (Vec::new(), Vec::new(), Vec::new());
    for u in 0..users {
        let user = format!("user-{u}");
        let variant = if u % 4 == 0 { "v2" } else { "v1" };
        let base = Event {
            experiment: "gen",
            event_id: String::new(),
            ts: 1_000 + u as i64,
            user: user.clone(),
            synthetic: u % 97 == 0,
            variant,
            mode: "live",
            value: 0.0,
            status: 200,
            latency: 0.0,
            endpoint: Some("/a"),
            region: Some("eu"),
            shadow_match: None,
            weights: None,
        };
        exposures.push(Event {
            event_id: format!("x{u}"),
            ..base.clone()
        });
        for r in 0..(1 + u % 7) {
            let e = Event {
                event_id: format!("r{u}-{r}"),
                ts: base.ts + 10 + r as i64,
                status: if (u + r) % 23 == 0 { 503 } else { 200 },
                latency: (5 + (u * 31 + r * 17) % 400) as f64,
                endpoint: [Some("/a"), Some("/b"), None][(u + r) % 3],
                region: [Some("eu"), Some("us")][r % 2],
                ..base.clone()
            };
            if (u + r) % 100 == 0 {
                requests.push(e.clone());
            }
            requests.push(e);
        }
        if u % 11 == 0 {
            requests.push(Event {
                event_id: format!("s{u}"),
                mode: "shadow",
                latency: 42.0,
                shadow_match: Some(u % 22 == 0),
                synthetic: false,
                ..base.clone()
            });
        }
        if u % 5 == 0 {
            business.push(Event {
                event_id: format!("b{u}"),
                ts: base.ts + 100,
                mode: "purchase",
                value: (u % 50) as f64,
                ..base.clone()
            });
        }
    }
    [requests, exposures, business]
}

fn spills(plan: &Arc<dyn ExecutionPlan>) -> usize {
    plan.metrics().and_then(|m| m.spill_count()).unwrap_or(0)
        + plan.children().into_iter().map(spills).sum::<usize>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_are_the_same_when_the_aggregates_spill() {
    let [requests, exposures, business] = generated(60_000);
    let tables = [
        (&requests[..], Table::Requests),
        (&exposures[..], Table::Exposures),
        (&business[..], Table::Business),
    ];
    let file = ExperimentsFile::parse("").unwrap();
    let roomy = session(&Engine::default(), tables, 1).await;
    let expected = super::load::load(&roomy, &[], &file).await.unwrap();

    let spill = tempfile::tempdir().unwrap();
    let tight = Engine {
        threads: 2,
        memory_limit: 32 << 20,
        spill_dir: Some(spill.path().join("spill")),
        cluster: None,
    };
    let ctx = session(&tight, tables, 3).await;
    let got = super::load::load(&ctx, &[], &file).await.unwrap();
    assert_eq!(format!("{got:?}"), format!("{expected:?}"));

    let plan = ctx
        .sql(queries::named("analysis_arms").unwrap().sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    // The per-user aggregate runs in one step over events shuffled by user (`one_step`).
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(false)
        .to_string();
    let user_steps: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("AggregateExec") && l.contains("user_experiments"))
        .collect();
    assert!(
        user_steps.len() == 1 && user_steps[0].contains("mode=SinglePartitioned"),
        "{text}"
    );
    collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
    assert!(
        spills(&plan) > 0,
        "the per-user aggregate should spill under 32 MiB"
    );

    let e = &expected["gen"];
    let decided: u64 = e.variants.values().map(|v| v.users).sum();
    assert_eq!(decided + e.synthetic.values().sum::<u64>(), 60_000);
    assert_eq!(
        e.synthetic.values().sum::<u64>(),
        619,
        "every 97th user is a probe"
    );
    let resent = requests.len()
        - requests
            .iter()
            .map(|r| &r.event_id)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
    assert_eq!(e.duplicates_dropped, resent as u64);
    let segments: Vec<_> = e.segments.keys().map(|(d, s)| format!("{d}={s}")).collect();
    assert_eq!(
        segments,
        [
            "endpoint=(none)",
            "endpoint=/a",
            "endpoint=/b",
            "region=eu",
            "region=us"
        ]
    );
    // Every 11th user's shadow call, matching the live result for every 22nd.
    let shadow = e.modes.iter().filter(|m| m.mode == "shadow");
    let sum = |f: fn(&crate::read::summary::ModeRow) -> u64| shadow.clone().map(f).sum::<u64>();
    assert_eq!(
        (
            sum(|m| m.requests),
            sum(|m| m.compared),
            sum(|m| m.mismatches)
        ),
        (5_455, 5_455, 5_455 - 2_728)
    );
}

/// `analyze -e NAME` reads only that experiment's requests and exposures, and finds what the
/// whole analysis finds for it: a user's rows in one experiment depend on nothing of another's.
#[tokio::test]
async fn one_experiment_alone_gives_its_rows_of_the_whole_analysis() {
    let [mut requests, mut exposures, business] = generated(3_000);
    // A second experiment over a third of the same users, in other variants and at other times,
    // so business events fall after the first exposure in one and before it in the other.
    let other = |events: &[Event], shift: i64| -> Vec<Event> {
        events
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == 0)
            .map(|(i, e)| Event {
                experiment: "other",
                variant: if i % 2 == 0 { "control" } else { "treatment" },
                ts: e.ts + shift,
                ..e.clone()
            })
            .collect()
    };
    let (more_requests, more_exposures) = (other(&requests, 40), other(&exposures, 40));
    requests.extend(more_requests);
    exposures.extend(more_exposures);
    let tables = [
        (&requests[..], Table::Requests),
        (&exposures[..], Table::Exposures),
        (&business[..], Table::Business),
    ];
    let file = ExperimentsFile::parse("[defaults]\nwinsorize_revenue = 0.9\n").unwrap();
    let ctx = session(&Engine::default(), tables, 2).await;
    // The filter is put on the scans themselves, below the per-user aggregate.
    let (_, plan) = ctx
        .sql("SELECT * FROM analysis_arms")
        .await
        .unwrap()
        .into_parts();
    let scoped = super::load::scope_inputs(plan, &["gen".to_string()]).unwrap();
    let text = format!("{}", scoped.display_indent());
    for table in ["requests", "exposures"] {
        assert!(
            text.contains(&format!("Filter: {table}.experiment IN")),
            "{table}: {text}"
        );
    }
    assert!(!text.contains("business.experiment"), "{text}");
    let all = super::load::load(&ctx, &[], &file).await.unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["gen", "other"]);
    for name in ["gen", "other"] {
        let alone = super::load::load(&ctx, &[name.to_string()], &file)
            .await
            .unwrap();
        assert_eq!(alone.keys().collect::<Vec<_>>(), [name]);
        assert_eq!(
            format!("{:?}", alone[name]),
            format!("{:?}", all[name]),
            "{name}"
        );
    }
}

/// `[[metrics]]`: per arm, the sums of each user's count or value of the named kinds at or after
/// first exposure, and a ratio's product sums, as the users' events say.
#[tokio::test]
async fn user_defined_metrics_sum_what_each_users_events_say() {
    use crate::read::metric_columns::UserMetricStats;
    let [requests, exposures, business] = small_store();
    let tables = [
        (&requests[..], Table::Requests),
        (&exposures[..], Table::Exposures),
        (&business[..], Table::Business),
    ];
    let file = ExperimentsFile::parse(
        r#"
        [[metrics]]
        name = "engagement"
        kinds = ["engagement"]
        [[metrics]]
        name = "purchase_value"
        kinds = ["purchase"]
        aggregate = "sum"
        [[metrics]]
        name = "actions"
        kinds = ["engagement", "conversion"]
        [[metrics]]
        name = "engaged_share"
        numerator = "engagement"
        denominator = "actions"
        "#,
    )
    .unwrap();
    for partitions in [1, 3] {
        let ctx = session(&Engine::default(), tables, partitions).await;
        let all = super::load::load(&ctx, &[], &file).await.unwrap();
        let mean = |e: &str, v: &str, i: usize| match all[e].variants[v].user_metrics[i] {
            UserMetricStats::Mean(m) => (m.n, m.sum, m.sum_sq),
            other => panic!("{other:?}"),
        };
        // a/v1: u1 (engagement at 9 s, after its exposure at 4 s; its purchase at 3.5 s is
        // before) and u6 (a purchase before its exposure); u5 is in two variants.
        assert_eq!(mean("a", "v1", 0), (2.0, 1.0, 1.0), "{partitions}");
        assert_eq!(mean("a", "v1", 1), (2.0, 0.0, 0.0));
        assert_eq!(mean("a", "v1", 2), (2.0, 1.0, 1.0));
        // a/v2: u2's conversion at 4.6 s, after its exposure at 4.5 s.
        assert_eq!(mean("a", "v2", 0), (1.0, 0.0, 0.0));
        assert_eq!(mean("a", "v2", 2), (1.0, 1.0, 1.0));
        // b/v9: u1, first seen at 8 s: the engagement counts, the purchase does not.
        assert_eq!(mean("b", "v9", 0), (1.0, 1.0, 1.0));
        assert_eq!(mean("b", "v9", 1), (1.0, 0.0, 0.0));
        match all["a"].variants["v1"].user_metrics[3] {
            UserMetricStats::Ratio(r) => assert_eq!(
                (r.n, r.sum_x, r.sum_y, r.sum_xx, r.sum_yy, r.sum_xy),
                (2.0, 1.0, 1.0, 1.0, 1.0, 1.0)
            ),
            other => panic!("{other:?}"),
        }
        // The report shows them per variant and compares them with the baseline.
        let report = crate::decide::decide("a", &all["a"], &file.settings("a"));
        let v1 = report.variants.iter().find(|v| v.name == "v1").unwrap();
        assert_eq!(v1.metrics["engagement"].value, Some(0.5));
        assert_eq!(v1.metrics["engaged_share"].value, Some(1.0));
        for name in ["engagement", "purchase_value", "actions", "engaged_share"] {
            assert!(
                report.comparisons.iter().any(|c| c.metric.name() == name),
                "no comparison of {name}"
            );
        }
        // The variant tables (terminal, Markdown, pages) have a column per defined metric.
        let markdown = crate::present::render::to_markdown(std::slice::from_ref(&report));
        let header = markdown
            .lines()
            .find(|l| l.starts_with("| variant |"))
            .unwrap();
        assert!(
            header.ends_with(
                "| revenue/user | actions | engaged_share | engagement | purchase_value |"
            ),
            "{header}"
        );
        let v1_row = markdown.lines().find(|l| l.starts_with("| v1 |")).unwrap();
        assert!(v1_row.contains("| 0.500"), "{v1_row}");
    }
}

/// Writes `events` of `table` as file `index` of `count` of the flush batch at `offset`, in the
/// ingest's layout (`table/date=D/experiment=E/`).
pub(super) fn write_file(
    data: &std::path::Path,
    table: Table,
    events: &[Event],
    (offset, index, count): (i64, usize, usize),
) {
    let name = shiftright_schemas::BatchFile {
        topic: table.name().into(),
        partition: 0,
        epoch: 0,
        first_offset: offset,
        last_offset: offset + 100,
        index,
        count,
        compacted: false,
    };
    write_named(data, table, events, &name);
}

/// Writes `events` of `table` as the file `name`, in the ingest's layout.
fn write_named(
    data: &std::path::Path,
    table: Table,
    events: &[Event],
    name: &shiftright_schemas::BatchFile,
) {
    let date = chrono::DateTime::from_timestamp_millis(events[0].ts)
        .unwrap()
        .date_naive();
    let dir = data
        .join(table.dir_name())
        .join(format!("date={date}"))
        .join(format!(
            "experiment={}",
            shiftright_schemas::partition_value(Some(events[0].experiment))
        ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(dir.join(name.file_name())).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, table.schema(), None).unwrap();
    writer.write(&batch(table, events)).unwrap();
    writer.close().unwrap();
}

/// A compaction's merge is read in place of the files it replaced, whether they are still there
/// (a crash before their removal) or gone; and a batch that lost a file to the merge is still
/// read whole.
#[tokio::test]
async fn a_merge_is_read_once_and_the_batches_it_split_stay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let day = 1_796_083_200_000; // 2026-12-01T00:00Z
    let request = |i: usize| {
        ev(("a", "", day + i as i64, "", false, "v1", "live", 0.0))
            .with(format!("r{i}"), format!("u{i}"))
    };
    let requests: Vec<Event> = (0..10).map(request).collect();
    write_file(data, Table::Requests, &requests[..5], (0, 1, 1));
    write_file(data, Table::Requests, &requests[5..], (200, 1, 2));
    // The batch's other file, of the same topic and partition (in the ingest that is a dead
    // letter beside the rows; any second directory shows the rule).
    let exposure = ev(("a", "x", day, "u0", false, "v1", "", 0.0));
    let other = shiftright_schemas::BatchFile {
        topic: "requests".into(),
        partition: 0,
        epoch: 0,
        first_offset: 200,
        last_offset: 300,
        index: 2,
        count: 2,
        compacted: false,
    };
    write_named(data, Table::Exposures, &[exposure], &other);
    let merged = shiftright_schemas::BatchFile {
        topic: "requests".into(),
        partition: 0,
        epoch: 0,
        first_offset: 0,
        last_offset: 300,
        index: 1,
        count: 1,
        compacted: true,
    };
    write_named(data, Table::Requests, &requests, &merged);
    let counts = || async {
        let batches = crate::query(
            data,
            "SELECT (SELECT COUNT(*) FROM requests) AS r, (SELECT COUNT(*) FROM exposures) AS x",
        )
        .await
        .unwrap();
        let col = |i: usize| {
            batches[0]
                .column(i)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .value(0)
        };
        (col(0), col(1))
    };
    assert_eq!(counts().await, (10, 1), "the merged files left beside it");
    let requests_dir = data.join("requests/date=2026-12-01/experiment=a");
    for entry in std::fs::read_dir(&requests_dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().contains("compacted") {
            std::fs::remove_file(path).unwrap();
        }
    }
    assert_eq!(
        counts().await,
        (10, 1),
        "the exposure's batch lost its request file to the merge"
    );
}

/// A live evaluation reads only its experiment's files from its window's dates on (a damaged
/// file of an earlier day is never opened), keeps a flush batch whose other file lies on a date
/// it does not list, leaves out one that is truly incomplete; a day's report counts only that
/// day's events, however much later data the store holds.
#[tokio::test]
async fn a_scope_reads_only_its_experiment_and_window() {
    const DAY: i64 = 86_400_000;
    let day1 = 1_796_083_200_000; // 2026-12-01T00:00Z
    let day2 = day1 + DAY;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let request = |experiment: &'static str, id: String, ts: i64, user: String, variant| {
        Event {
            status: 200,
            latency: 10.0,
            ..ev((experiment, "", ts, "", false, variant, "live", 0.0))
        }
        .with(id, user)
    };
    let requests = |experiment, ts0: i64, n: usize, tag: &str| -> Vec<Event> {
        (0..n)
            .map(|i| {
                let variant = if i % 2 == 0 { "v1" } else { "v2" };
                request(
                    experiment,
                    format!("{tag}{i}"),
                    ts0 + i as i64,
                    format!("{tag}u{i}"),
                    variant,
                )
            })
            .collect()
    };
    // Day 1: 10 requests of a, and a damaged file of a.
    write_file(
        data,
        Table::Requests,
        &requests("a", day1 + 1_000, 10, "d1"),
        (0, 1, 1),
    );
    let damaged = data.join("requests/date=2026-12-01/experiment=a/p00009-x.parquet");
    std::fs::write(&damaged, b"not parquet").unwrap();
    // Day 2: 6 requests of a in a batch of two files, the other file (one late event) on day 1;
    // 4 requests of b; and half of a batch whose second file never landed.
    write_file(
        data,
        Table::Requests,
        &requests("a", day2 + 1_000, 6, "d2"),
        (1000, 1, 2),
    );
    let late = requests("a", day1 + 50_000, 1, "late");
    let late_dir = data.join("requests/date=2026-12-01/experiment=a");
    write_file(data, Table::Requests, &late, (1000, 2, 2));
    assert!(late_dir.is_dir());
    write_file(
        data,
        Table::Requests,
        &requests("b", day2 + 2_000, 4, "b"),
        (2000, 1, 1),
    );
    write_file(
        data,
        Table::Requests,
        &requests("a", day2 + 9_000, 3, "half"),
        (3000, 1, 2),
    );
    let experiments = ExperimentsFile::default();
    let read = crate::ReadOptions::default();

    let active = crate::active_since(data, read.clone(), day2).await.unwrap();
    assert_eq!(active.keys().collect::<Vec<_>>(), ["a", "b"]);
    // a on day 2: its 6 requests (the half batch left out), newest at day2 + 1 s + 5 ms.
    assert_eq!(active["a"].events, 6);
    assert_eq!(active["a"].data_through_ms, day2 + 1_005);
    let (report, fresh) = crate::analyze_live(data, read.clone(), &experiments, "a", Some(day2))
        .await
        .expect("the damaged day-1 file is never opened")
        .unwrap();
    assert_eq!(fresh.events, 6);
    assert_eq!(report.variants.iter().map(|v| v.requests).sum::<u64>(), 6);
    assert!(
        crate::analyze_live(data, read.clone(), &experiments, "c", Some(day2))
            .await
            .unwrap()
            .is_none()
    );
    // The whole store still fails on the damaged file, as before.
    assert!(crate::analyze_with(data, read.clone(), &experiments, &[])
        .await
        .is_err());

    std::fs::remove_file(&damaged).unwrap();
    let pages = tempfile::tempdir().unwrap();
    let written = crate::present::pages::write_day(
        data,
        read,
        &experiments,
        chrono::DateTime::from_timestamp_millis(day1)
            .unwrap()
            .date_naive(),
        pages.path(),
        &mut |_| {},
    )
    .await
    .unwrap();
    let a = written
        .reports
        .iter()
        .find(|r| r.experiment == "a")
        .unwrap();
    // Day 1's 10 requests and the late one: none of day 2's.
    assert_eq!(a.variants.iter().map(|v| v.requests).sum::<u64>(), 11);
    assert!(written.reports.iter().all(|r| r.experiment != "b"));
}

impl Event {
    fn with(mut self, event_id: String, user: String) -> Event {
        self.event_id = event_id;
        self.user = user;
        self
    }
}
