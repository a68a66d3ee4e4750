//! The examples in `examples/` against a running `serve`: the URL paths, JSON paths and
//! conditions are read from the YAML files themselves and evaluated as Argo Rollouts and Flagger
//! evaluate them, through a healthy, a regressed and a stale canary. An example that drifts from
//! the API fails here.

mod common;

use std::path::Path;
use std::time::Duration;

use common::serve::{
    agent, publishing, seeded_state, Server, DECISIONS, HEALTHY, REGRESSED, REVISION,
};
use serde_json::Value;

/// The host the examples name, replaced by the test server's address.
const EXAMPLE_HOST: &str = "http://shiftright.shiftright.svc:8080";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn yaml(path: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An Argo condition over `result`: `result.FIELD` terms joined by `&&` and `||`, each maybe
/// negated with `!`. Anything else fails the test, so an example cannot use what is not checked.
fn condition(expression: &str, result: &Value) -> bool {
    expression.split("||").any(|conjunction| {
        conjunction.split("&&").all(|term| {
            let term = term.trim();
            let (negated, term) = match term.strip_prefix('!') {
                Some(t) => (true, t.trim()),
                None => (false, term),
            };
            let field = term
                .strip_prefix("result.")
                .unwrap_or_else(|| panic!("unsupported condition term {term:?}"));
            let value = result[field]
                .as_bool()
                .unwrap_or_else(|| panic!("result.{field} is not a boolean in {result}"));
            value != negated
        })
    })
}

/// What Argo Rollouts makes of one measurement (`utils/evaluate`): with both conditions set and
/// neither true, Inconclusive.
fn argo_outcome(metric: &Value, result: &Value) -> &'static str {
    let success = metric["successCondition"].as_str();
    let failure = metric["failureCondition"].as_str();
    match (success, failure) {
        (Some(s), Some(f)) => {
            if condition(f, result) {
                "Failed"
            } else if condition(s, result) {
                "Successful"
            } else {
                "Inconclusive"
            }
        }
        (Some(s), None) => {
            if condition(s, result) {
                "Successful"
            } else {
                "Failed"
            }
        }
        (None, Some(f)) => {
            if condition(f, result) {
                "Failed"
            } else {
                "Successful"
            }
        }
        (None, None) => "Successful",
    }
}

/// One measurement of `metric` (an AnalysisTemplate's) against `server` for `experiment`.
fn measure(server: &Server, metric: &Value, experiment: &str) -> &'static str {
    let web = &metric["provider"]["web"];
    let url = web["url"]
        .as_str()
        .unwrap()
        .replace(EXAMPLE_HOST, &server.base)
        .replace("{{args.experiment}}", experiment)
        .replace("{{args.revision}}", REVISION);
    assert!(
        url.starts_with(&server.base),
        "the example names another host: {url}"
    );
    let mut request = agent().get(&url);
    for header in web["headers"].as_array().into_iter().flatten() {
        let value = header["value"]
            .as_str()
            .unwrap()
            .replace("{{args.token}}", TOKEN);
        request = request.header(header["key"].as_str().unwrap(), &value);
    }
    let mut response = request.call().unwrap();
    // A non-2xx is an Error to Argo, not a verdict: the examples must never meet one here.
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    let result = match web["jsonPath"].as_str().unwrap_or("{$}") {
        "{$}" => body,
        path => {
            let field = path
                .strip_prefix("{$.")
                .and_then(|p| p.strip_suffix('}'))
                .unwrap_or_else(|| panic!("unsupported jsonPath {path}"));
            body.get(field)
                .cloned()
                .unwrap_or_else(|| panic!("{field} missing: an Error"))
        }
    };
    argo_outcome(metric, &result)
}

fn token_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), TOKEN).unwrap();
    file
}

/// A server that has judged both demo experiments at [`REVISION`] since before their data.
fn seeded_server(dir: &Path, extra: &[&str]) -> Server {
    let state = seeded_state(dir);
    let mut args = vec!["--state", state.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A seeded server whose data is stale by the time it is asked.
fn stale_server(dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--stale-after", "1s"];
    args.extend_from_slice(extra);
    let server = seeded_server(dir, &args);
    std::thread::sleep(Duration::from_millis(1500));
    server
}

/// What Argo Rollouts makes of a run of measurements (`assessMetricStatus`): Failed past
/// `failureLimit` failures, Inconclusive past `inconclusiveLimit` (counted over the run),
/// Successful at `consecutiveSuccessLimit` successes in a row or when `count` runs out; else
/// still running.
fn argo_run(metric: &Value, outcomes: &[&str]) -> &'static str {
    let limit = |key: &str, default: u64| metric[key].as_u64().unwrap_or(default);
    let (failure_limit, inconclusive_limit) =
        (limit("failureLimit", 0), limit("inconclusiveLimit", 0));
    let (in_a_row, count) = (
        metric["consecutiveSuccessLimit"].as_u64(),
        metric["count"].as_u64(),
    );
    let (mut failed, mut inconclusive, mut successes) = (0, 0, 0);
    for (i, outcome) in outcomes.iter().enumerate() {
        match *outcome {
            "Failed" => (failed, successes) = (failed + 1, 0),
            "Inconclusive" => (inconclusive, successes) = (inconclusive + 1, 0),
            _ => successes += 1,
        }
        if failed > failure_limit {
            return "Failed";
        }
        if inconclusive > inconclusive_limit {
            return "Inconclusive";
        }
        if in_a_row.is_some_and(|n| successes >= n) || count.is_some_and(|n| i as u64 + 1 >= n) {
            return "Successful";
        }
    }
    "Running"
}

#[test]
fn argo_rollouts_templates_abort_pause_and_promote_as_meant() {
    let guard = yaml("examples/argo-rollouts/analysis-template.yaml");
    let promote = yaml("examples/argo-rollouts/promote-template.yaml");
    let rollout = yaml("examples/argo-rollouts/rollout.yaml");
    let names = [&guard, &promote].map(|t| t["metadata"]["name"].as_str().unwrap().to_string());
    let text = serde_json::to_string(&rollout).unwrap();
    for name in &names {
        assert!(
            text.contains(&format!("\"templateName\":\"{name}\"")),
            "rollout.yaml uses {name}"
        );
    }
    let token = token_file();
    let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let fresh = seeded_server(
        dir1.path(),
        &["--auth-token-file", token.path().to_str().unwrap()],
    );
    let stale = stale_server(
        dir2.path(),
        &["--auth-token-file", token.path().to_str().unwrap()],
    );
    let guard = &guard["spec"]["metrics"][0];
    let promote = &promote["spec"]["metrics"][0];
    assert!(promote["consecutiveSuccessLimit"].as_u64().is_some());
    // Background guard: the regressed canary aborts, stale data pauses, the healthy one goes on.
    assert_eq!(measure(&fresh, guard, REGRESSED), "Failed");
    assert_eq!(measure(&fresh, guard, HEALTHY), "Successful");
    assert_eq!(measure(&stale, guard, HEALTHY), "Inconclusive");
    assert_eq!(measure(&stale, guard, REGRESSED), "Failed");
    // Promote step: success only on PROMOTE over fresh data.
    assert_eq!(measure(&fresh, promote, HEALTHY), "Successful");
    assert_eq!(measure(&fresh, promote, REGRESSED), "Failed");
    assert_eq!(measure(&stale, promote, HEALTHY), "Inconclusive");
    // Over a run: the guard lets the new window's first measurements wait, then pauses on
    // stale data; the promote step never succeeds on CONTINUE alone, however long.
    let run = |metric: &Value, outcomes: &[&str]| argo_run(metric, outcomes);
    assert_eq!(
        run(
            guard,
            &["Inconclusive", "Inconclusive", "Successful", "Successful"]
        ),
        "Running"
    );
    let mut flapping = vec!["Successful"; 4];
    flapping.extend(["Inconclusive"; 4]);
    assert_eq!(run(guard, &flapping), "Inconclusive");
    assert_eq!(
        run(guard, &["Inconclusive", "Successful", "Failed"]),
        "Failed"
    );
    let count = promote["count"].as_u64().unwrap() as usize;
    assert_eq!(run(promote, &vec!["Inconclusive"; count]), "Inconclusive");
    let mut sparse = vec!["Inconclusive"; count - 3];
    sparse.extend(["Successful", "Inconclusive", "Successful"]);
    assert_ne!(
        run(promote, &sparse),
        "Successful",
        "two PROMOTEs never promote"
    );
    assert_eq!(
        run(
            promote,
            &["Inconclusive", "Successful", "Successful", "Successful"]
        ),
        "Successful"
    );
    // A revision the server has not seen: its window opens, and it waits (Inconclusive).
    let other = web_with_revision(guard, "new-hash");
    assert_eq!(measure(&fresh, &other, HEALTHY), "Inconclusive");
}

/// `metric` with another revision in its URL.
fn web_with_revision(metric: &Value, revision: &str) -> Value {
    let mut m = metric.clone();
    let url = m["provider"]["web"]["url"]
        .as_str()
        .unwrap()
        .replace("{{args.revision}}", revision);
    m["provider"]["web"]["url"] = Value::from(url);
    m
}

#[test]
fn the_flagger_canary_gates_each_step_as_meant() {
    let canary = yaml("examples/flagger/canary.yaml");
    let name = canary["metadata"]["name"].as_str().unwrap();
    let namespace = canary["metadata"]["namespace"].as_str().unwrap();
    let hooks = canary["spec"]["analysis"]["webhooks"].as_array().unwrap();
    let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let fresh = seeded_server(dir1.path(), &[]);
    let stale = stale_server(dir2.path(), &[]);
    // Flagger passes a hook on a status ≤ 202.
    let run = |server: &Server, experiment: &str| -> Vec<(String, bool)> {
        hooks
            .iter()
            .map(|hook| {
                let kind = hook["type"].as_str().unwrap().to_string();
                let url = hook["url"]
                    .as_str()
                    .unwrap()
                    .replace(EXAMPLE_HOST, &server.base);
                let mut metadata = hook["metadata"].clone();
                metadata["experiment"] = Value::from(experiment);
                let body = serde_json::json!({
                    "name": name, "namespace": namespace, "phase": "Progressing",
                    "checksum": REVISION, "metadata": metadata,
                });
                let response = agent()
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .send(body.to_string())
                    .unwrap();
                let status = response.status().as_u16();
                assert!(status < 500, "{kind}: never a 5xx ({status})");
                (kind, status <= 202)
            })
            .collect()
    };
    let expect = |outcome: Vec<(String, bool)>, passing: &[&str], what: &str| {
        for (kind, passed) in outcome {
            assert_eq!(passed, passing.contains(&kind.as_str()), "{what}: {kind}");
        }
    };
    let every = [
        "event",
        "rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
        "rollback",
    ];
    let kinds: Vec<&str> = hooks.iter().map(|h| h["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, every, "the example uses every hook served");
    expect(
        run(&fresh, HEALTHY),
        &[
            "event",
            "rollout",
            "confirm-traffic-increase",
            "confirm-promotion",
        ],
        "healthy",
    );
    expect(run(&fresh, REGRESSED), &["event", "rollback"], "regressed");
    expect(run(&stale, HEALTHY), &["event", "rollout"], "stale");
    expect(
        run(&fresh, "canary-without-data"),
        &["event", "rollout"],
        "no data yet",
    );
}

/// `examples/flagd/decisions_to_flagd.py` reads the decisions topic that `serve` publishes and
/// writes a flagd overlay that disables the regressed canary's flag, and only it.
#[test]
fn the_flagd_example_disables_the_rolled_back_flag() {
    let python = std::process::Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .status();
    if !python.is_ok_and(|s| s.success()) {
        assert!(
            !common::required("SHIFTRIGHT_REQUIRE_INTEROP"),
            "python3 with confluent-kafka is required (pip install confluent-kafka)"
        );
        eprintln!("skipped: python3 with confluent-kafka not found");
        return;
    }
    let (broker, server) = publishing("30s");
    // Both verdicts are on the board once the server is ready; give the producer a moment.
    assert_eq!(server.verdict(REGRESSED)["rollback"], true);
    std::thread::sleep(Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("killed.flagd.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flagd/decisions_to_flagd.py");
    let run = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--brokers",
            broker.bootstrap_servers(),
            "--topic",
            DECISIONS,
            "--once",
        ])
        .args(["--flag", &format!("{REGRESSED}=checkout-v2-enabled")])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let overlay: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let flags = overlay["flags"].as_object().unwrap();
    assert_eq!(
        flags.keys().collect::<Vec<_>>(),
        ["checkout-v2-enabled"],
        "{overlay}"
    );
    let flag = &flags["checkout-v2-enabled"];
    assert_eq!(flag["state"], "DISABLED");
    assert_eq!(flag["defaultVariant"], "off");
    assert_eq!(
        flag["metadata"]["shiftright_decision"],
        server.verdict(REGRESSED)["decision_id"]
    );
    drop(server);
}
