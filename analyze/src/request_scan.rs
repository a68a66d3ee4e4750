//! The analysis' one pass over `requests` (`queries/request_scan.sql`): each request event once
//! (by experiment, `event_id` and mode: a shadow or mirror call that reuses the live request's id
//! is not its copy), folded into its experiment's [`ExperimentEvents`] — the user's
//! assignment and live tally, the live request's latency, endpoint, region and error flag, or the
//! side group of a synthetic check or shadow/mirror call.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int32Type, TimestampMillisecondType};
use datafusion::prelude::SessionContext;

use crate::error::Result;
use crate::fold::{self, Fingerprints, Folds};
use crate::queries;

const QUERY: &str = "request_scan";

/// One request, as the fold reads it.
struct Request<'a> {
    experiment: &'a str,
    event_id: &'a str,
    user_id: &'a str,
    variant: &'a str,
    mode: &'a str,
    synthetic: bool,
    endpoint: &'a str,
    region: &'a str,
    status: i32,
    latency_ms: f64,
    shadow_match: Option<bool>,
    /// ms since the epoch.
    ts: i64,
}

fn add(folds: &mut Folds, seen: &mut Fingerprints, r: Request<'_>) {
    let first = seen.first_time((r.experiment, r.event_id, r.mode));
    let e = folds.experiment(r.experiment);
    if !first {
        e.request_duplicates += 1;
        return;
    }
    let user = e.user(r.user_id);
    let error = r.status >= 500;
    if r.mode == "live" {
        // Live requests assign, synthetic or not (a synthetic user is set aside by its flag).
        e.assign(user, r.variant, r.synthetic);
        let state = &mut e.user_states[user as usize];
        state.first_live = Some(state.first_live.map_or(r.ts, |t| t.min(r.ts)));
        if !r.synthetic {
            state.live.requests += 1;
            state.live.errors += u32::from(error);
            e.live.latency.push(r.latency_ms);
            e.live.user.push(user);
            e.live.endpoint.push(e.endpoints.intern(r.endpoint));
            e.live.region.push(e.regions.intern(r.region));
            e.live.error.push(error);
            return;
        }
    }
    let group = e.side_group(r.variant, r.mode, r.synthetic);
    group.requests += 1;
    group.errors += u64::from(error);
    group.failures += u64::from(r.status >= 400);
    group.compared += u64::from(r.shadow_match.is_some());
    group.mismatches += u64::from(r.shadow_match == Some(false));
    group.latencies.push((r.latency_ms, user));
}

fn add_batch(folds: &mut Folds, seen: &mut Fingerprints, batch: &RecordBatch) -> Result<()> {
    let col = |name: &str, to: &DataType| queries::column(batch, QUERY, name, to);
    let text: Vec<_> = [
        "experiment",
        "event_id",
        "user_id",
        "variant",
        "mode",
        "endpoint",
        "region",
    ]
    .iter()
    .map(|n| col(n, &DataType::Utf8View))
    .collect::<Result<_>>()?;
    let synthetic = col("synthetic", &DataType::Boolean)?;
    let status = col("status", &DataType::Int32)?;
    let latency = col("latency_ms", &DataType::Float64)?;
    let shadow_match = col("shadow_match", &DataType::Boolean)?;
    let ts = col("ts", &shiftright_schemas::timestamp_type())?;
    // Views, as DataFusion reads Parquet strings: casting to `Utf8` copied every string.
    let text: Vec<_> = text.iter().map(|a| a.as_string_view()).collect();
    let (synthetic, shadow_match) = (synthetic.as_boolean(), shadow_match.as_boolean());
    let status = status.as_primitive::<Int32Type>();
    let latency = latency.as_primitive::<Float64Type>();
    let ts = ts.as_primitive::<TimestampMillisecondType>();
    // Endpoint and region are optional: a request without one is in segment `(none)`.
    let or_none = |k: usize, i: usize| {
        if text[k].is_null(i) {
            "(none)"
        } else {
            text[k].value(i)
        }
    };
    for i in 0..batch.num_rows() {
        let request = Request {
            experiment: text[0].value(i),
            event_id: text[1].value(i),
            user_id: text[2].value(i),
            variant: text[3].value(i),
            mode: text[4].value(i),
            synthetic: synthetic.value(i),
            endpoint: or_none(5, i),
            region: or_none(6, i),
            status: status.value(i),
            latency_ms: latency.value(i),
            shadow_match: (!shadow_match.is_null(i)).then(|| shadow_match.value(i)),
            ts: ts.value(i),
        };
        add(folds, seen, request);
    }
    Ok(())
}

/// Reads `requests` (only the experiments in `only`, when given) once into `folds`.
pub async fn load(ctx: &SessionContext, only: &[String], folds: &mut Folds) -> Result<()> {
    fold::scan(ctx, QUERY, only, true, |batch, seen| {
        add_batch(folds, seen, batch)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(event_id: &'a str, user_id: &'a str, mode: &'a str) -> Request<'a> {
        Request {
            experiment: "e",
            event_id,
            user_id,
            variant: "v1",
            mode,
            synthetic: false,
            endpoint: "/a",
            region: "eu",
            status: 200,
            latency_ms: 10.0,
            shadow_match: None,
            ts: 1_000,
        }
    }

    #[test]
    fn resent_events_count_once_and_side_traffic_is_kept_apart() {
        let (mut folds, mut seen) = (Folds::default(), Fingerprints::with_capacity(0));
        let mut add = |r| add(&mut folds, &mut seen, r);
        add(request("r1", "u1", "live"));
        add(request("r1", "u1", "live"));
        add(Request {
            status: 503,
            ts: 900,
            ..request("r2", "u1", "live")
        });
        add(request("r3", "u2", "live"));
        add(Request {
            shadow_match: Some(false),
            ..request("r4", "u3", "shadow")
        });
        // A shadow call that reuses a live request's id is a call of its own, not a copy.
        add(request("r3", "u3", "shadow"));
        add(Request {
            synthetic: true,
            status: 404,
            ..request("r5", "probe", "live")
        });
        // The same event_id in another experiment is another event.
        add(Request {
            experiment: "f",
            ..request("r1", "u1", "live")
        });
        let all = folds.into_map();
        let e = &all["e"];
        assert_eq!(e.request_duplicates, 1);
        assert_eq!(e.live.len(), 3);
        let u1 = e.user_states[e.users.find("u1").unwrap() as usize];
        assert_eq!(
            (u1.live.requests, u1.live.errors, u1.first_live),
            (2, 1, Some(900))
        );
        let u3 = e.user_states[e.users.find("u3").unwrap() as usize];
        assert_eq!(u3.variants, None, "shadow calls do not assign");
        let probe = e.user_states[e.users.find("probe").unwrap() as usize];
        assert!(probe.synthetic && probe.variants.is_some() && probe.live.requests == 0);
        let side = |mode: &str, synthetic: bool| {
            let key = ("v1".to_string(), mode.to_string(), synthetic);
            &e.side.iter().find(|(k, _)| *k == key).unwrap().1
        };
        let shadow = side("shadow", false);
        assert_eq!(
            (shadow.requests, shadow.compared, shadow.mismatches),
            (2, 1, 1)
        );
        let probe = side("live", true);
        assert_eq!((probe.requests, probe.failures, probe.errors), (1, 1, 0));
        assert_eq!(all["f"].live.len(), 1);
    }
}
