//! `serve`, `watch` and `analyze --fail-on` through the binary, over the demo's data: a regressed
//! canary (ROLLBACK under the sequential method) and a healthy one (PROMOTE). Every endpoint is
//! read with a real HTTP client, as Argo Rollouts and Flagger would.

mod common;

use std::time::{Duration, Instant};

use common::serve::{
    conforms, demo_data, get, publishing, seeded_state, Server, DECISIONS, HEALTHY, REGRESSED,
    REVISION,
};
use common::{shiftright, text};
use serde_json::Value;

fn canary(experiment: &str) -> String {
    format!(
        r#"{{"name":"web","namespace":"shop","phase":"Progressing","checksum":"rev-1","metadata":{{"experiment":"{experiment}"}}}}"#
    )
}

#[test]
fn the_verdict_endpoint_answers_argo_with_every_field() {
    let server = Server::start(&[]);
    let bad = server.verdict(REGRESSED);
    assert_eq!(bad["verdict"], "ROLLBACK", "{bad}");
    assert_eq!(bad["rollback"], true);
    assert_eq!(bad["safe"], false);
    assert_eq!(bad["exit_code"], 3);
    assert_eq!(bad["variant"], "v2");
    let good = server.verdict(HEALTHY);
    assert_eq!(good["verdict"], "PROMOTE", "{good}");
    assert_eq!(
        (
            &good["safe"],
            &good["fresh"],
            &good["promote"],
            &good["rollback"]
        ),
        (
            &Value::Bool(true),
            &Value::Bool(true),
            &Value::Bool(true),
            &Value::Bool(false)
        )
    );
    for v in [&bad, &good] {
        for field in [
            "verdict",
            "safe",
            "rollback",
            "promote",
            "invalid",
            "fresh",
            "reasons",
            "data_through",
            "evaluated_at",
            "decision_id",
            "exit_code",
        ] {
            assert!(v.get(field).is_some_and(|f| !f.is_null()), "{field}: {v}");
        }
        assert!(!v["decision_id"].as_str().unwrap().is_empty());
    }
    // An unknown experiment: 404 naming those it knows.
    let (status, body) = get(&server.url("/v1/experiments/nope/verdict"), None);
    assert_eq!(status, 404);
    assert!(body.contains(REGRESSED) && body.contains(HEALTHY), "{body}");
    // Every verdict at once.
    let (status, body) = get(&server.url("/v1/experiments"), None);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Prometheus: the verdict and the guardrails.
    let (status, metrics) = get(&server.url("/metrics"), None);
    assert_eq!(status, 200);
    for line in [
        format!("shiftright_verdict{{experiment=\"{REGRESSED}\",verdict=\"ROLLBACK\"}} 1"),
        format!("shiftright_verdict{{experiment=\"{HEALTHY}\",verdict=\"PROMOTE\"}} 1"),
        format!("shiftright_verdict_safe{{experiment=\"{HEALTHY}\"}} 1"),
    ] {
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
    for family in [
        "shiftright_guardrail_observed{",
        "shiftright_guardrail_bound{",
        "shiftright_harm_budget_used_ratio{",
        "shiftright_data_age_seconds{",
        "shiftright_evaluation_duration_seconds{",
    ] {
        assert!(metrics.contains(family), "{family} missing");
    }
    assert_eq!(get(&server.url("/healthz"), None).0, 200);
    assert_eq!(get(&server.url("/elsewhere"), None).0, 404);
}

#[test]
fn flagger_webhooks_pass_only_on_what_they_mean() {
    let dir = tempfile::tempdir().unwrap();
    let state = seeded_state(dir.path());
    let server = Server::start(&["--state", state.to_str().unwrap()]);
    let bad = canary(REGRESSED);
    let good = canary(HEALTHY);
    // rollout: a 4xx (counted toward Flagger's threshold) only on ROLLBACK or INVALID.
    assert_eq!(server.hook("rollout", &bad).0, 409);
    assert_eq!(server.hook("rollout", &good).0, 200);
    // rollback: a 2xx rolls back at once, so only on ROLLBACK.
    let (status, body) = server.hook("rollback", &bad);
    assert_eq!(status, 200);
    assert!(body.contains("harm budget"), "the reasons travel: {body}");
    assert_eq!(server.hook("rollback", &good).0, 409);
    assert_eq!(server.hook("confirm-promotion", &good).0, 200);
    assert_eq!(server.hook("confirm-promotion", &bad).0, 409);
    assert_eq!(server.hook("confirm-traffic-increase", &good).0, 200);
    assert_eq!(server.hook("confirm-traffic-increase", &bad).0, 409);
    // A canary without data is never rolled back, and does not advance.
    let empty =
        r#"{"name":"fresh-canary","namespace":"shop","phase":"Progressing","checksum":"a"}"#;
    assert_eq!(server.hook("rollout", empty).0, 200);
    assert_eq!(server.hook("rollback", empty).0, 409);
    assert_eq!(server.hook("confirm-traffic-increase", empty).0, 409);
    let waiting = server.verdict("shop/fresh-canary");
    assert_eq!(
        (&waiting["safe"], &waiting["rollback"]),
        (&Value::Bool(false), &Value::Bool(false))
    );
    // Malformed bodies: a 400 that names the problem; unknown hooks a 404 naming the served ones.
    for body in ["{not json", "{}", r#"{"name":"","namespace":"shop"}"#] {
        let (status, text) = server.hook("rollout", body);
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains("error"), "{text}");
    }
    let (status, text) = server.hook("pre-rollout", &good);
    assert_eq!(status, 404);
    assert!(text.contains("confirm-promotion"), "{text}");
    let huge = format!(r#"{{"name":"x","namespace":"{}"}}"#, "y".repeat(200_000));
    assert_eq!(server.hook("rollout", &huge).0, 413);
    // A new checksum starts a new window: the old verdict no longer stands, and the revisions
    // file says so for the next start.
    assert_eq!(server.hook("event", &bad).0, 200);
    assert_eq!(server.verdict(REGRESSED)["rollback"], true);
    let next = bad.replace(REVISION, "rev-2");
    let (status, body) = server.hook("event", &next);
    assert_eq!(status, 200);
    assert!(body.contains("\"new_window\":true"), "{body}");
    let renewed = server.verdict(REGRESSED);
    assert_eq!(renewed["rollback"], false, "{renewed}");
    assert_eq!(renewed["phase"], "Progressing");
    assert_eq!(server.hook("rollback", &next).0, 409);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved[REGRESSED]["revision"], "rev-2", "{saved}");
    assert_eq!(saved[HEALTHY]["revision"], REVISION);
}

/// After a restart without `--state`, a revision is first seen with the data of the one it may
/// have replaced: its window opens then, and the old ROLLBACK never reaches it. Argo's
/// `?revision=` does the same as Flagger's checksum.
#[test]
fn a_revision_first_seen_is_never_judged_by_older_events() {
    let server = Server::start(&[]);
    assert_eq!(server.verdict(REGRESSED)["rollback"], true);
    let (status, _) = server.hook("rollback", &canary(REGRESSED));
    assert_eq!(
        status, 409,
        "a first-seen revision is not rolled back for older events"
    );
    let fresh = server.verdict(REGRESSED);
    assert_eq!(
        (&fresh["rollback"], &fresh["safe"]),
        (&Value::Bool(false), &Value::Bool(false))
    );
    assert!(
        fresh["reasons"][0]
            .as_str()
            .unwrap()
            .contains("waiting for data"),
        "{fresh}"
    );
    let url = server.url(&format!(
        "/v1/experiments/{HEALTHY}/verdict?revision=abc123"
    ));
    let (status, body) = get(&url, None);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&v["promote"], &v["safe"]),
        (&Value::Bool(false), &Value::Bool(false)),
        "{v}"
    );
    // The same revision again keeps the window.
    let again: Value = serde_json::from_str(&get(&url, None).1).unwrap();
    assert_eq!(again["window_start"], v["window_start"]);
}

#[test]
fn stale_data_is_never_safe_and_never_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let state = seeded_state(dir.path());
    let server = Server::start(&["--stale-after", "1s", "--state", state.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(1500));
    let good = server.verdict(HEALTHY);
    assert_eq!(good["verdict"], "PROMOTE");
    assert_eq!(
        (&good["fresh"], &good["safe"]),
        (&Value::Bool(false), &Value::Bool(false)),
        "{good}"
    );
    assert!(
        good["reasons"][0].as_str().unwrap().starts_with("stale"),
        "{good}"
    );
    let body = canary(HEALTHY);
    assert_eq!(server.hook("confirm-traffic-increase", &body).0, 409);
    assert_eq!(server.hook("confirm-promotion", &body).0, 409);
    assert_eq!(server.hook("rollout", &body).0, 200);
}

#[test]
fn a_server_other_hosts_reach_needs_a_token() {
    let data = demo_data().to_str().unwrap();
    let open = shiftright(&["serve", "--data", data, "--bind", "0.0.0.0:0"]);
    assert_eq!(open.status.code(), Some(1));
    let err = text(&open.stderr);
    assert!(
        err.contains("--auth-token-file") && err.contains("--no-auth"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let weak = shiftright(&[
        "serve",
        "--data",
        data,
        "--auth-token-file",
        short.to_str().unwrap(),
    ]);
    assert!(
        text(&weak.stderr).contains("at least 16 characters"),
        "{}",
        text(&weak.stderr)
    );
    let token = "0123456789abcdef0123456789abcdef";
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    // Loopback is used here so the test stays on it; the token applies whatever the address.
    let server = Server::start(&["--auth-token-file", file.to_str().unwrap()]);
    assert_eq!(get(&server.url("/healthz"), None).0, 200);
    assert_eq!(get(&server.url("/readyz"), None).0, 401);
    let url = server.url(&format!("/v1/experiments/{HEALTHY}/verdict"));
    assert_eq!(get(&url, None).0, 401);
    assert_eq!(get(&url, Some("wrong-token-wrong-token")).0, 401);
    assert_eq!(get(&url, Some(token)).0, 200);
    assert_eq!(get(&server.url("/metrics"), None).0, 401);
}

#[test]
fn watch_ends_on_the_decision() {
    let data = demo_data().to_str().unwrap();
    let experiments = demo_data().join("experiments.toml");
    let experiments = experiments.to_str().unwrap();
    let watch = |experiment: &str, timeout: &str| {
        shiftright(&[
            "watch",
            "-e",
            experiment,
            "--data",
            data,
            "--experiments",
            experiments,
            "--interval",
            "1s",
            "--timeout",
            timeout,
        ])
    };
    let bad = watch(REGRESSED, "2m");
    assert_eq!(bad.status.code(), Some(3), "{}", text(&bad.stderr));
    assert!(
        text(&bad.stdout).contains("ROLLBACK"),
        "{}",
        text(&bad.stdout)
    );
    let good = watch(HEALTHY, "2m");
    assert_eq!(good.status.code(), Some(0), "{}", text(&good.stderr));
    assert!(text(&good.stdout).contains("PROMOTE"));
    let none = watch("no-such-experiment", "3s");
    assert_eq!(none.status.code(), Some(5), "{}", text(&none.stderr));
    assert!(
        text(&none.stderr).contains("no decision"),
        "{}",
        text(&none.stderr)
    );
}

#[test]
fn analyze_fails_only_on_the_verdicts_named() {
    let data = demo_data().to_str().unwrap();
    let experiments = demo_data().join("experiments.toml");
    let analyze = |fail_on: Option<&str>| {
        let mut args = vec![
            "analyze",
            "--data",
            data,
            "--experiments",
            experiments.to_str().unwrap(),
            "--no-history",
        ];
        if let Some(f) = fail_on {
            args.extend(["--fail-on", f]);
        }
        shiftright(&args).status.code()
    };
    assert_eq!(analyze(None), Some(3));
    assert_eq!(analyze(Some("invalid")), Some(0));
    assert_eq!(analyze(Some("none")), Some(0));
    assert_eq!(analyze(Some("promote")), Some(6));
    assert_eq!(analyze(Some("promote,rollback")), Some(3));
}

#[test]
fn the_schema_check_catches_what_it_must() {
    let schema: Value =
        serde_json::from_str(include_str!("../schemas/decision.schema.json")).unwrap();
    let record = serde_json::json!({
        "kind": "decision", "experiment": "x", "variant": "v2", "verdict": "ROLLBACK",
        "previous_verdict": null, "action": "disable", "reasons": ["r"],
        "evidence": {"method": "sequential", "baseline": "v1", "users": {"v1": 3},
                     "srm_p_value": null, "guardrails": [], "harm_budget": []},
        "data_through": "2026-12-02T00:00:00Z", "decided_at": "2026-12-02T00:00:00Z",
        "decision_id": "0123456789abcdef", "source": "serve",
    });
    conforms(&record, &schema, "$").unwrap();
    for (field, bad) in [
        ("verdict", serde_json::json!("MAYBE")),
        ("action", serde_json::json!(null)),
        ("reasons", serde_json::json!("one")),
    ] {
        let mut r = record.clone();
        r[field] = bad;
        assert!(conforms(&r, &schema, "$").is_err(), "{field}");
    }
    let mut extra = record.clone();
    extra["surprise"] = serde_json::json!(1);
    assert!(conforms(&extra, &schema, "$").is_err());
    let mut missing = record;
    missing.as_object_mut().unwrap().remove("decision_id");
    assert!(conforms(&missing, &schema, "$").is_err());
}

#[test]
fn decisions_reach_the_topic_with_heartbeats() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let (broker, server) = publishing("1s");
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", "decisions-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    {
        let mut assignment = rdkafka::TopicPartitionList::new();
        assignment
            .add_partition_offset(DECISIONS, 0, rdkafka::Offset::Beginning)
            .unwrap();
        consumer.assign(&assignment).unwrap();
    }
    let schema: Value =
        serde_json::from_str(include_str!("../schemas/decision.schema.json")).unwrap();
    let mut decisions = std::collections::BTreeMap::new();
    let mut heartbeats = 0;
    let started = Instant::now();
    while (decisions.len() < 2 || heartbeats < 2) && started.elapsed() < Duration::from_secs(90) {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("a record");
        let record: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        conforms(&record, &schema, "$").unwrap_or_else(|e| panic!("{e}: {record}"));
        let key = std::str::from_utf8(message.key().unwrap()).unwrap();
        assert_eq!(record["experiment"], key);
        match record["kind"].as_str().unwrap() {
            "decision" => {
                decisions.insert(key.to_string(), record);
            }
            _ => heartbeats += 1,
        }
    }
    assert!(heartbeats >= 2, "heartbeats: {heartbeats}");
    let bad = &decisions[REGRESSED];
    assert_eq!(
        (&bad["verdict"], &bad["action"]),
        (&Value::from("ROLLBACK"), &Value::from("disable"))
    );
    assert_eq!(bad["previous_verdict"], Value::Null);
    assert_eq!(bad["variant"], "v2");
    assert_eq!(bad["source"], "serve");
    assert!(bad["evidence"]["guardrails"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["breached"] == true));
    let good = &decisions[HEALTHY];
    assert_eq!(
        (&good["verdict"], &good["action"]),
        (&Value::from("PROMOTE"), &Value::from("promote"))
    );
    // The record and the endpoint name the same decision.
    assert_eq!(server.verdict(REGRESSED)["decision_id"], bad["decision_id"]);
    drop(consumer);
}
