//! Helpers of the `serve` tests: the demo's data, a `shiftright serve` child on a free loopback
//! port, a real HTTP client, and a check of records against the JSON Schemas.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{shiftright, text};

/// The demo's regressed canary (ROLLBACK) and healthy one (PROMOTE).
pub const REGRESSED: &str = "checkout-canary";
pub const HEALTHY: &str = "search-canary";

/// The demo's data, made once for every test of this file.
pub fn demo_data() -> &'static Path {
    static DATA: OnceLock<tempfile::TempDir> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = shiftright(&["demo", "--out", dir.path().to_str().unwrap()]);
        assert!(out.status.success(), "demo: {}", text(&out.stderr));
        dir
    })
    .path()
}

/// A `shiftright serve` child, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `serve` on a free loopback port with `extra` flags and waits until it is ready.
    pub fn start(extra: &[&str]) -> Server {
        let data = demo_data();
        let experiments = data.join("experiments.toml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_shiftright"))
            .args([
                "serve",
                "--data",
                data.to_str().unwrap(),
                "--experiments",
                experiments.to_str().unwrap(),
                "--bind",
                "127.0.0.1:0",
                "--interval",
                "2s",
            ])
            .args(extra)
            .env_remove("SHIFTRIGHT_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("shiftright serve: listening on ")
            .unwrap_or_else(|| panic!("first line: {line:?}"))
            .to_string();
        let server = Server { child, base };
        // With a token, the readiness probe needs it too.
        let token = extra
            .iter()
            .position(|a| *a == "--auth-token-file")
            .and_then(|i| std::fs::read_to_string(extra[i + 1]).ok())
            .map(|t| t.trim().to_string());
        let started = Instant::now();
        while get(&server.url("/readyz"), token.as_deref()).0 != 200 {
            assert!(started.elapsed() < Duration::from_secs(120), "never ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn verdict(&self, experiment: &str) -> Value {
        let (status, body) = get(
            &self.url(&format!("/v1/experiments/{experiment}/verdict")),
            None,
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn hook(&self, hook: &str, body: &str) -> (u16, String) {
        let mut response = agent()
            .post(&self.url(&format!("/v1/flagger/{hook}")))
            .header("Content-Type", "application/json")
            .send(body)
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }
}

/// The revision the tests' Flagger bodies and Argo URLs carry.
pub const REVISION: &str = "rev-1";

/// A revisions file (`serve --state`) in `dir` in which both demo experiments are at
/// [`REVISION`] with a window over all of the demo's data, as a server that has been judging
/// them since before the data would have it.
pub fn seeded_state(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("revisions.json");
    let window = serde_json::json!({"revision": REVISION, "window_start_ms": 0});
    let state = serde_json::json!({ REGRESSED: window, HEALTHY: window });
    std::fs::write(&path, state.to_string()).unwrap();
    path
}

/// The decisions topic of [`publishing`].
pub const DECISIONS: &str = "shiftright.decisions";

/// An embedded broker with the decisions topic, and a server publishing to it every
/// `heartbeat`. The server is dropped first (it is the second of the pair).
pub fn publishing(heartbeat: &str) -> (shiftright_traffic::EmbeddedBroker, Server) {
    let broker = shiftright_traffic::EmbeddedBroker::start(1).unwrap();
    broker.create_topic(DECISIONS, 1).unwrap();
    let server = Server::start(&[
        "--decisions-topic",
        DECISIONS,
        "--brokers",
        broker.bootstrap_servers(),
        "--heartbeat",
        heartbeat,
    ]);
    (broker, server)
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

pub fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = agent().get(url);
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().expect("GET");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

/// Checks `value` against the subset of JSON Schema that `schemas/*.schema.json` use: `type`
/// (one or several), `enum`, `required`, `properties`, `additionalProperties` and `items`.
pub fn conforms(value: &Value, schema: &Value, at: &str) -> Result<(), String> {
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        if !choices.contains(value) {
            return Err(format!("{at}: {value} is none of {choices:?}"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = |t: &str| match t {
            "string" => value.is_string(),
            "number" => value.is_number(),
            "integer" => value.is_u64() || value.is_i64(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            "null" => value.is_null(),
            _ => false,
        };
        if !types.iter().any(|t| fits(t)) {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap();
            if !object.contains_key(name) {
                return Err(format!("{at}: required {name} is missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, v) in object {
            match (
                properties.and_then(|p| p.get(name)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => conforms(v, s, &format!("{at}.{name}"))?,
                (None, Some(Value::Bool(false))) => {
                    return Err(format!("{at}: {name} is not in the schema"))
                }
                (None, Some(s)) if s.is_object() => conforms(v, s, &format!("{at}.{name}"))?,
                _ => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            conforms(v, items, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}
