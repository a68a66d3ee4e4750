//! The outside attacks of issue 13, each run the way it was found: the `shiftright` binary
//! against a real broker (librdkafka's mock cluster, served on loopback by this test process) and
//! the files it writes. Each test says which defect it holds shut.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, shiftright, text, IngestProcess};
use shiftright_traffic::{EmbeddedBroker, RawSink};

/// A broker with the three event topics, one partition each.
fn broker() -> EmbeddedBroker {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    for topic in ["requests", "business", "exposures"] {
        broker.create_topic(topic, 1).expect("topic");
    }
    broker
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn request(id: &str, experiment: &str, variant: &str, user: &str, status: u16) -> String {
    serde_json::json!({
        "event_id": id, "ts": now_ms(), "user_id": user, "experiment": experiment,
        "variant": variant, "status": status, "latency_ms": 20.0
    })
    .to_string()
}

fn exposure(id: &str, experiment: &str, variant: &str, user: &str) -> String {
    serde_json::json!({
        "event_id": id, "ts": now_ms(), "user_id": user, "experiment": experiment, "variant": variant
    })
    .to_string()
}

/// Produces `(topic, payload)` messages, each on its own (no producer batching).
fn produce(brokers: &str, messages: &[(&str, String)]) {
    let options = vec![("batch.num.messages".to_string(), "1".to_string())];
    let sink = RawSink::with_options(brokers, &options).expect("producer");
    for (topic, payload) in messages {
        sink.send(topic, Some("k"), payload.as_bytes())
            .expect("queued");
    }
    sink.finish(Duration::from_secs(60)).expect("delivered");
}

/// Runs `shiftright ingest --idle-exit 3s` to its end; returns its exit code and log.
fn ingest_to_idle(brokers: &str, out: &Path, group: &str, extra: &[&str]) -> (Option<i32>, String) {
    let log = out.with_extension(format!("{group}.{}.log", now_ms()));
    let mut args = vec!["--idle-exit", "3s", "--flush-interval", "500ms"];
    args.extend_from_slice(extra);
    let mut process = IngestProcess::spawn(brokers, out, group, &args, log);
    let status = process.wait(Duration::from_secs(120));
    (status.code(), process.log_text())
}

fn count(out: &Path, sql: &str) -> i64 {
    let o = shiftright(&[
        "query",
        "--data",
        out.to_str().unwrap(),
        "--format",
        "csv",
        sql,
    ]);
    assert!(o.status.success(), "{sql}: {}", text(&o.stderr));
    text(&o.stdout)
        .lines()
        .nth(1)
        .expect("a row")
        .trim()
        .parse()
        .expect("a count")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                pending.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// `SELECT COUNT(*) FROM requests` as CSV with `--skip-corrupt`.
fn skipping_count(data: &str) -> std::process::Output {
    shiftright(&[
        "query",
        "--data",
        data,
        "--skip-corrupt",
        "--format",
        "csv",
        "SELECT COUNT(*) FROM requests",
    ])
}

/// Defect 1: an experiment name too long for a directory name stopped the ingest for good. Now
/// the partition directory is bounded, every event is written, and the rows keep the full name.
#[test]
fn a_huge_experiment_name_is_written_and_the_events_behind_it_too() {
    let broker = broker();
    let brokers = broker.bootstrap_servers().to_string();
    let long = "x".repeat(245);
    let emoji = "😀".repeat(21);
    let huge = "y".repeat(5000);
    let mut messages = Vec::new();
    for i in 0..10 {
        messages.push(("requests", request(&format!("a{i}"), "ok", "v1", "u1", 200)));
    }
    for (i, name) in [&long, &emoji, &huge].iter().enumerate() {
        messages.push((
            "requests",
            request(&format!("poison{i}"), name, "v1", "u2", 200),
        ));
        messages.push(("exposures", exposure(&format!("px{i}"), name, "v1", "u2")));
    }
    for i in 0..10 {
        messages.push(("requests", request(&format!("b{i}"), "ok", "v1", "u1", 200)));
    }
    produce(&brokers, &messages);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, log) = ingest_to_idle(&brokers, &out, "poison", &[]);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(count(&out, "SELECT COUNT(*) FROM requests"), 23);
    assert_eq!(count(&out, "SELECT COUNT(*) FROM exposures"), 3);
    for name in [&long, &emoji, &huge] {
        let sql = format!("SELECT COUNT(*) FROM requests WHERE experiment = '{name}'");
        assert_eq!(count(&out, &sql), 1, "{} chars", name.chars().count());
    }
    for f in files_under(&out) {
        for part in f.iter() {
            assert!(part.len() <= 255, "{}", f.display());
        }
    }
    // A restart reads nothing twice.
    let (code, log) = ingest_to_idle(&brokers, &out, "poison", &[]);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(count(&out, "SELECT COUNT(*) FROM requests"), 23);
}

/// Defects 2 and 5 over one data set: `query` is read only, and a damaged file is named (and
/// can be skipped) by every reader, and is quarantined by the ingest when it is a batch file.
#[test]
fn queries_are_read_only_and_damaged_files_are_named() {
    let broker = broker();
    let brokers = broker.bootstrap_servers().to_string();
    let messages: Vec<(&str, String)> = (0..300)
        .map(|i| {
            (
                "requests",
                request(
                    &format!("r{i}"),
                    "exp",
                    ["v1", "v2"][i % 2],
                    &format!("u{}", i % 50),
                    200,
                ),
            )
        })
        .collect();
    produce(&brokers, &messages);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = out.to_str().unwrap();
    let (code, log) = ingest_to_idle(&brokers, &out, "readers", &[]);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(count(&out, "SELECT COUNT(*) FROM requests"), 300);

    // Defect 2: nothing that writes, or reads outside the data, is run.
    let outside = dir.path().join("outside.csv");
    let attacks = [
        "INSERT INTO requests SELECT * FROM requests".to_string(),
        format!("COPY (SELECT * FROM requests) TO '{}'", outside.display()),
        format!(
            "COPY (SELECT * FROM requests) TO '{data}/exposures/date=2026-01-01/forged.parquet'"
        ),
        "CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'".to_string(),
        "CREATE VIEW v AS SELECT 1".to_string(),
        "DROP TABLE requests".to_string(),
        "SET datafusion.execution.target_partitions = 1".to_string(),
        "DELETE FROM requests".to_string(),
    ];
    for sql in &attacks {
        let o = shiftright(&["query", "--data", data, sql]);
        assert_eq!(o.status.code(), Some(1), "{sql} ran: {}", text(&o.stdout));
        assert!(
            text(&o.stderr).contains("read only"),
            "{sql}: {}",
            text(&o.stderr)
        );
    }
    let o = shiftright(&["query", "--data", data, "SELECT * FROM '/etc/passwd'"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a path as a table name was read: {}",
        text(&o.stdout)
    );
    assert!(!outside.exists(), "COPY wrote outside the data");
    // Nor does --out put a result where it would be read back as data.
    let forged = format!("{data}/requests/forged.parquet");
    let o = shiftright(&[
        "query",
        "--data",
        data,
        "--format",
        "parquet",
        "--out",
        &forged,
        "SELECT * FROM requests",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("inside the table directory"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(count(&out, "SELECT COUNT(*) FROM requests"), 300);
    assert_eq!(count(&out, "SELECT COUNT(*) FROM exposures"), 0);

    // Defect 5, readers: a truncated file that is not a batch file.
    let good = files_under(&out.join("requests"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    let junk = good.with_file_name("copied-by-hand.parquet");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&junk, &bytes[..bytes.len() / 2]).unwrap();
    for args in [
        vec!["query", "--data", data, "SELECT COUNT(*) FROM requests"],
        vec!["analyze", "--data", data, "--no-history"],
    ] {
        let o = shiftright(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("copied-by-hand.parquet") && err.contains("--skip-corrupt"),
            "{args:?}: {err}"
        );
    }
    let o = skipping_count(data);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().nth(1), Some("300"));
    assert!(
        text(&o.stderr).contains("copied-by-hand.parquet"),
        "the skipped file is named: {}",
        text(&o.stderr)
    );
    std::fs::remove_file(&junk).unwrap();

    // Defect 5, ingest: its newest batch damaged. It is quarantined and its rows read again.
    let batch: Vec<PathBuf> = files_under(&out.join("requests"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    let newest = batch.last().unwrap().clone();
    let before = count(&out, "SELECT COUNT(*) FROM requests");
    let bytes = std::fs::read(&newest).unwrap();
    let rows_lost = {
        // The damaged file's rows: everything minus what the other files hold.
        std::fs::write(&newest, &bytes[..bytes.len() - 10]).unwrap();
        let o = skipping_count(data);
        before
            - text(&o.stdout)
                .lines()
                .nth(1)
                .unwrap()
                .parse::<i64>()
                .unwrap()
    };
    assert!(rows_lost > 0);
    let (code, log) = ingest_to_idle(&brokers, &out, "readers", &[]);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("quarantine"), "{log}");
    assert_eq!(count(&out, "SELECT COUNT(*) FROM requests"), 300);
    assert_eq!(
        count(&out, "SELECT COUNT(DISTINCT event_id) FROM requests"),
        300
    );
    assert!(files_under(&out.join("_quarantine"))
        .iter()
        .any(|p| p.file_name() == newest.file_name()));
}

/// Defect 3: experiments `checkout/v2` and `checkout_v2` once shared one page, the healthy one's
/// replacing the failing one's. Every experiment now has pages of its own.
#[test]
fn experiments_whose_names_look_alike_get_pages_of_their_own() {
    let broker = broker();
    let brokers = broker.bootstrap_servers().to_string();
    let names = ["checkout/v2", "checkout_v2", "Checkout_v2", "index"];
    let mut messages = Vec::new();
    for (n, name) in names.iter().enumerate() {
        for u in 0..20 {
            for variant in ["v1", "v2"] {
                let user = format!("{n}-{variant}-{u}");
                let status = if n == 0 && variant == "v2" { 500 } else { 200 };
                messages.push((
                    "exposures",
                    exposure(&format!("x{user}"), name, variant, &user),
                ));
                messages.push((
                    "requests",
                    request(&format!("r{user}"), name, variant, &user, status),
                ));
            }
        }
    }
    produce(&brokers, &messages);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, log) = ingest_to_idle(&brokers, &out, "pages", &[]);
    assert_eq!(code, Some(0), "{log}");
    let pages = dir.path().join("pages");
    let today = chrono::Utc::now().date_naive().to_string();
    let o = shiftright(&[
        "report",
        "--data",
        out.to_str().unwrap(),
        "--out",
        pages.to_str().unwrap(),
        "--date",
        &today,
        "--no-history",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut seen = Vec::new();
    for file in files_under(&pages) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            let report: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            seen.push(report["experiment"].as_str().unwrap().to_string());
            if report["experiment"] == "checkout/v2" {
                assert_eq!(
                    report["variants"][1]["errors"], 20,
                    "the failing experiment's own page"
                );
            }
        }
    }
    seen.sort();
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected, "one JSON page per experiment");
    let index = std::fs::read_to_string(pages.join("index.html")).unwrap();
    let links: std::collections::BTreeSet<&str> = index
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|l| l.ends_with(".html"))
        .collect();
    assert_eq!(links.len(), names.len(), "index links: {links:?}");
}

/// Defect 4: a topic recreated (here: a new cluster, the same output) restarts at offset 0, and
/// the ingest skipped the new log's first 1,000 messages. Now the partition is stopped loudly,
/// and `--accept-offset-reset` reads the new log into a new epoch without touching the old files.
#[test]
fn a_log_that_went_back_to_offset_zero_is_stopped_or_read_into_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let first = broker();
    let batch = |prefix: &str| -> Vec<(&'static str, String)> {
        (0..1000)
            .map(|i| {
                (
                    "requests",
                    request(&format!("{prefix}{i}"), "e", "v1", &format!("u{i}"), 200),
                )
            })
            .collect()
    };
    produce(first.bootstrap_servers(), &batch("old"));
    let (code, log) = ingest_to_idle(first.bootstrap_servers(), &out, "reset", &[]);
    assert_eq!(code, Some(0), "{log}");
    drop(first);
    let old_files = files_under(&out.join("requests"));

    let second = broker();
    let brokers = second.bootstrap_servers().to_string();
    produce(&brokers, &batch("new"));
    let (code, log) = ingest_to_idle(&brokers, &out, "reset", &[]);
    assert_eq!(code, Some(1), "a reset log must stop the ingest: {log}");
    assert!(
        log.contains("--accept-offset-reset") && log.contains("requests[0]"),
        "{log}"
    );
    assert_eq!(
        count(&out, "SELECT COUNT(*) FROM requests"),
        1000,
        "nothing written past the reset"
    );

    let (code, log) = ingest_to_idle(&brokers, &out, "reset", &["--accept-offset-reset"]);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(count(&out, "SELECT COUNT(*) FROM requests"), 2000);
    assert_eq!(
        count(
            &out,
            "SELECT COUNT(*) FROM requests WHERE event_id LIKE 'new%'"
        ),
        1000
    );
    let files = files_under(&out.join("requests"));
    for f in &old_files {
        assert!(files.contains(f), "old file {} kept", f.display());
    }
    assert!(files.iter().any(|f| f
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("p00000e1-")));

    // The new epoch continues normally, without the flag.
    produce(&brokers, &batch("more"));
    let (code, log) = ingest_to_idle(&brokers, &out, "reset", &[]);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        count(&out, "SELECT COUNT(DISTINCT event_id) FROM requests"),
        3000
    );
    assert_eq!(count(&out, "SELECT COUNT(*) FROM requests"), 3000);
}

/// Defect 6: two ingest groups on one output wrote every row twice. The second now fails at start,
/// naming the first. Also: the metrics endpoint answers a request that arrives in two TCP segments,
/// and idle connections cannot starve it.
#[test]
fn a_second_group_on_the_same_output_is_refused() {
    let broker = broker();
    let brokers = broker.bootstrap_servers().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let log = dir.path().join("first.log");
    let first = IngestProcess::spawn(&brokers, &out, "first-group", &[], log);
    let port = first.metrics_port();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !out.join("_ingest_locks").exists()
        || first.metric("shiftright_messages_consumed_total").is_none()
    {
        assert!(
            Instant::now() < deadline,
            "first ingest never came up: {}",
            first.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, log) = ingest_to_idle(&brokers, &out, "second-group", &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("\"first-group\"") && log.contains("in use"),
        "{log}"
    );

    // A request split across two segments gets its metrics.
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(b"GET /met").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stream
        .write_all(b"rics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    assert!(
        body.starts_with("HTTP/1.1 200") && body.contains("shiftright_messages_consumed_total"),
        "{body}"
    );
    // Slowloris: more idle connections than the endpoint serves at once. They are cut after the
    // header timeout, and scrapes are answered again.
    let idle: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.metric("shiftright_messages_consumed_total").is_none() {
        assert!(
            Instant::now() < deadline,
            "idle connections starved the metrics endpoint"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(idle);
    first.kill();
    // Its lock went with it.
    let (code, log) = ingest_to_idle(&brokers, &out, "second-group", &[]);
    assert_eq!(code, Some(0), "{log}");
}

/// `--idle-exit` with the broker unreachable, or a misspelt topic, used to exit 0 having read
/// nothing. Now it exits 1 and says what was never read.
#[test]
fn an_idle_exit_that_read_nothing_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let nowhere = format!("127.0.0.1:{}", free_port());
    let (code, log) = ingest_to_idle(&nowhere, &out, "nothing", &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("no partition was assigned") && log.contains(&nowhere),
        "{log}"
    );

    let broker = broker();
    let (code, log) = ingest_to_idle(
        broker.bootstrap_servers(),
        &out,
        "typo",
        &["--business-topic", "buisness"],
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("buisness"), "{log}");
}

/// Risks settled in the experiments file: weights that do not sum to 1 (or 100), and no
/// guardrails at all, are refused with the key named.
#[test]
fn experiment_files_that_would_mislead_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("requests")).unwrap();
    for (toml, key) in [
        (
            "[experiments.x]\nweights = { v1 = 0.95, v2 = 0.5 }\n",
            "sum to 1.45",
        ),
        ("[defaults]\nguardrails = []\n", "guardrails"),
    ] {
        let file = dir.path().join("experiments.toml");
        std::fs::write(&file, toml).unwrap();
        let o = shiftright(&[
            "analyze",
            "--data",
            dir.path().to_str().unwrap(),
            "--experiments",
            file.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o.stderr).contains(key), "{}", text(&o.stderr));
    }
}
