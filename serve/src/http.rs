//! The HTTP API of `shiftright serve`, on axum (served by the ingest's connection-limited loop,
//! [`shiftright_ingest::metrics::serve_router`]).
//!
//! - `GET /v1/experiments/{name}/verdict`: the [`LiveVerdict`]; 404 naming the experiments known;
//! - `GET /v1/experiments`: every known experiment's verdict;
//! - `POST /v1/flagger/{hook}`: Flagger's webhooks ([`crate::flagger`]);
//! - `GET /metrics`: Prometheus ([`crate::metrics`]);
//! - `GET /healthz` (alive), `GET /readyz` (after the first evaluation).
//!
//! Read only: no endpoint changes data or configuration (a Flagger hook records the phase, and a
//! new revision starts a new window, in memory and in `--state`). Bodies are limited to [`MAX_BODY`] bytes; with a token,
//! every endpoint but `/healthz` needs `Authorization: Bearer TOKEN`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::board::Board;
use crate::evaluate::{now_ms, EvaluateConfig};
use crate::flagger::{Hook, Payload};
use crate::metrics::Counts;
use crate::verdict::LiveVerdict;

/// The largest request body accepted (Flagger's are a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// Hundreds of pollers, each a short request: no keep-alive, so an idle client holds no slot.
pub const LIMITS: shiftright_ingest::metrics::Limits = shiftright_ingest::metrics::Limits {
    max_connections: 512,
    keep_alive: false,
};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Api {
    /// The verdicts.
    pub board: Board,
    /// Evaluation counts for `/metrics`.
    pub counts: Arc<Counts>,
    /// Freshness settings and the lookback of new windows.
    pub config: Arc<EvaluateConfig>,
    /// The Bearer token every endpoint but `/healthz` needs; none: no authentication.
    pub token: Option<Arc<String>>,
}

/// The routes, with authentication and the body limit.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/experiments", get(list))
        .route("/v1/experiments/{*rest}", get(verdict))
        .route("/v1/flagger/{hook}", post(flagger))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(api.clone(), authenticate))
        .with_state(api)
}

async fn authenticate(State(api): State<Api>, request: Request, next: Next) -> Response {
    let Some(token) = &api.token else {
        return next.run(request).await;
    };
    // The liveness probe says nothing of the experiments; kubelet sends it no token.
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "this endpoint needs `Authorization: Bearer TOKEN` with the token of --auth-token-file"})),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Compares without stopping at the first difference, so the time taken says nothing of where
/// a guess went wrong.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn readyz(State(api): State<Api>) -> Response {
    if api.board.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first evaluation is running\n",
        )
            .into_response()
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    let text = crate::metrics::render(&api.board, &api.counts, api.config.clock(now_ms()));
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

async fn list(State(api): State<Api>) -> Json<Vec<LiveVerdict>> {
    Json(api.board.verdicts(api.config.clock(now_ms())))
}

/// `?revision=` of the verdict endpoint: Argo's pod-template hash of the canary
/// (`valueFrom.podTemplateHashValue: Latest`), which starts a new window like Flagger's checksum.
#[derive(Debug, serde::Deserialize)]
struct VerdictQuery {
    #[serde(default)]
    revision: String,
}

async fn verdict(
    State(api): State<Api>,
    Path(rest): Path<String>,
    Query(query): Query<VerdictQuery>,
) -> Response {
    let Some(name) = rest.strip_suffix("/verdict").filter(|n| !n.is_empty()) else {
        return not_found().await;
    };
    if !query.revision.is_empty() {
        let now = now_ms();
        let default_window = now - api.config.lookback.as_millis() as i64;
        if api
            .board
            .revision(name, &query.revision, "", now, default_window)
        {
            tracing::info!(experiment = %name, revision = %query.revision, "new revision: a new window starts");
        }
    }
    match api.board.verdict(name, api.config.clock(now_ms())) {
        Some(v) => Json(v).into_response(),
        None => {
            let known = api.board.names();
            (
                StatusCode::NOT_FOUND,
                Json(json!({
                    "error": format!(
                        "no experiment {name:?}: it has no events within --lookback and neither \
                         the experiments file nor a Flagger webhook names it; known: {}",
                        if known.is_empty() { "none yet".to_string() } else { known.join(", ") }
                    ),
                    "known": known,
                })),
            )
                .into_response()
        }
    }
}

async fn flagger(State(api): State<Api>, Path(hook): Path<String>, body: Bytes) -> Response {
    let Some(hook) = Hook::parse(&hook) else {
        let hooks: Vec<&str> = Hook::ALL.iter().map(|h| h.name()).collect();
        return (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": format!("no Flagger hook {hook:?}; served: {}", hooks.join(", "))}),
            ),
        )
            .into_response();
    };
    let payload = match Payload::parse(&body) {
        Ok(p) => p,
        Err(why) => return bad_request(why),
    };
    let experiment = payload.experiment();
    let now = now_ms();
    let default_window = now - api.config.lookback.as_millis() as i64;
    // Every hook carries the canary's checksum: a new one (or the first since the start) is a
    // new revision and a new window, and the canary is known from its first webhook on.
    let renewed = api.board.revision(
        &experiment,
        &payload.checksum,
        &payload.phase,
        now,
        default_window,
    );
    if renewed {
        tracing::info!(%experiment, checksum = %payload.checksum, "new canary revision: a new window starts");
    }
    if hook == Hook::Event {
        return Json(
            json!({"experiment": experiment, "recorded": payload.phase, "new_window": renewed}),
        )
        .into_response();
    }
    let Some(v) = api.board.verdict(&experiment, api.config.clock(now)) else {
        return bad_request(format!("no experiment {experiment:?}"));
    };
    let passed = hook.passes(&v);
    let status = if passed {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    (
        status,
        Json(json!({
            "hook": hook.name(),
            "passed": passed,
            "experiment": experiment,
            "verdict": v.verdict,
            "fresh": v.fresh,
            "reasons": v.reasons,
            "decision_id": v.decision_id,
        })),
    )
        .into_response()
}

fn bad_request(why: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": why}))).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "shiftright serve: GET /v1/experiments/{name}/verdict, GET /v1/experiments, POST /v1/flagger/{rollout,rollback,confirm-promotion,confirm-traffic-increase,event}, GET /metrics, /healthz, /readyz"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
