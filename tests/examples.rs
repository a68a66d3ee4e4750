//! The examples in `examples/` against a running `serve`: the URL paths, JSON paths and
//! conditions are read from the YAML files themselves and evaluated as Argo Rollouts and Flagger
//! evaluate them, through a healthy, a regressed and a stale canary. An example that drifts from
//! the API fails here.

mod common;

use std::path::Path;
use std::time::Duration;

use common::serve::{agent, publishing, Server, DECISIONS, HEALTHY, REGRESSED};
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
        .replace("{{args.experiment}}", experiment);
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

/// A server whose data is stale by the time it is asked.
fn stale_server(extra: &[&str]) -> Server {
    let mut args = vec!["--stale-after", "1s"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    std::thread::sleep(Duration::from_millis(1500));
    server
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
    let fresh = Server::start(&["--auth-token-file", token.path().to_str().unwrap()]);
    let stale = stale_server(&["--auth-token-file", token.path().to_str().unwrap()]);
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
    // A canary without data yet is a pause, never an Error or a Failure.
    let none = "newly-deployed";
    let (status, _) = common::serve::get(
        &fresh.url(&format!("/v1/experiments/{none}/verdict")),
        Some(TOKEN),
    );
    assert_eq!(
        status, 404,
        "unknown to this server: named neither by data nor configuration"
    );
}

#[test]
fn the_flagger_canary_gates_each_step_as_meant() {
    let canary = yaml("examples/flagger/canary.yaml");
    let name = canary["metadata"]["name"].as_str().unwrap();
    let namespace = canary["metadata"]["namespace"].as_str().unwrap();
    let hooks = canary["spec"]["analysis"]["webhooks"].as_array().unwrap();
    let fresh = Server::start(&[]);
    let stale = stale_server(&[]);
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
                    "checksum": "rev-1", "metadata": metadata,
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
