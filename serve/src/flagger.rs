//! Flagger's webhooks: which status each hook answers for a verdict.
//!
//! Flagger treats a status ≤ 202 as success, retries a 5xx (losing the body) and counts each
//! failure of a `rollout` hook toward the canary's `threshold`. So the rules are chosen for the
//! hook's meaning, never to make Flagger roll back a canary that merely lacks data:
//! - `rollout`: 200 on CONTINUE and PROMOTE, 409 with the reasons on ROLLBACK or INVALID;
//! - `confirm-traffic-increase`: 200 unless ROLLBACK, INVALID or stale (Flagger waits);
//! - `confirm-promotion`: 200 only on PROMOTE (Flagger waits otherwise);
//! - `rollback`: 200 only on ROLLBACK (a 2xx there rolls back at once), else 409;
//! - `event`: records the phase; a new `checksum` starts a new window for the experiment.
//!
//! Never a 5xx: a verdict that cannot be had is a 409 that says why.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::verdict::LiveVerdict;

/// The hooks served under `/v1/flagger/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Rollout,
    Rollback,
    ConfirmPromotion,
    ConfirmTrafficIncrease,
    Event,
}

impl Hook {
    /// Every hook, in the order the README lists them.
    pub const ALL: [Hook; 5] = [
        Hook::Rollout,
        Hook::Rollback,
        Hook::ConfirmPromotion,
        Hook::ConfirmTrafficIncrease,
        Hook::Event,
    ];

    /// The hook's path segment (Flagger's hook type).
    pub fn name(self) -> &'static str {
        match self {
            Hook::Rollout => "rollout",
            Hook::Rollback => "rollback",
            Hook::ConfirmPromotion => "confirm-promotion",
            Hook::ConfirmTrafficIncrease => "confirm-traffic-increase",
            Hook::Event => "event",
        }
    }

    /// The hook named `name`.
    pub fn parse(name: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.name() == name)
    }

    /// Whether the hook passes (Flagger's 2xx) for `verdict`; `event` always does.
    pub fn passes(self, verdict: &LiveVerdict) -> bool {
        match self {
            Hook::Rollout => !verdict.rollback && !verdict.invalid,
            Hook::ConfirmTrafficIncrease => verdict.safe,
            Hook::ConfirmPromotion => verdict.promote && verdict.fresh,
            Hook::Rollback => verdict.rollback,
            Hook::Event => true,
        }
    }
}

/// The body Flagger posts to every webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Payload {
    /// The Canary's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its phase (`Progressing`, `Promoting`, `Failed`, …).
    #[serde(default)]
    pub phase: String,
    /// The checksum of the canary's spec: a new one is a new revision, and a new window.
    #[serde(default)]
    pub checksum: String,
    /// The webhook's `metadata`; `experiment` names the experiment.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Payload {
    /// Parses a webhook body, saying what is wrong with one that does not fit.
    pub fn parse(body: &[u8]) -> Result<Payload, String> {
        let payload: Payload = serde_json::from_slice(body).map_err(|e| {
            format!(
                "not a Flagger webhook body ({e}); expected JSON {{\"name\", \"namespace\", \
                 \"phase\", \"checksum\", \"metadata\": {{\"experiment\": …}}}}"
            )
        })?;
        if payload.name.is_empty() && !payload.metadata.contains_key("experiment") {
            return Err(
                "the body names no canary: `name` is empty and metadata has no \
                        `experiment`"
                    .into(),
            );
        }
        Ok(payload)
    }

    /// The experiment: `metadata.experiment`, else `namespace/name`.
    pub fn experiment(&self) -> String {
        match self.metadata.get("experiment").filter(|e| !e.is_empty()) {
            Some(e) => e.clone(),
            None => format!("{}/{}", self.namespace, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(name: &str, fresh: bool) -> LiveVerdict {
        let mut v = crate::verdict::LiveVerdict::of(
            "x",
            &Default::default(),
            crate::verdict::Clock {
                now_ms: 0,
                stale_after_ms: 1,
                evaluation_stale_ms: 1,
            },
        );
        v.verdict = name.into();
        v.rollback = name == "ROLLBACK";
        v.invalid = name == "INVALID";
        v.promote = name == "PROMOTE";
        v.fresh = fresh;
        v.safe = fresh && !v.rollback && !v.invalid;
        v
    }

    #[test]
    fn each_hook_passes_only_on_what_it_means() {
        use Hook::*;
        // (verdict, fresh) → which hooks pass.
        let cases = [
            ("CONTINUE", true, [true, false, false, true]),
            ("PROMOTE", true, [true, false, true, true]),
            ("ROLLBACK", true, [false, true, false, false]),
            ("INVALID", true, [false, false, false, false]),
            // Stale: the canary is never rolled back for it, but does not advance either.
            ("CONTINUE", false, [true, false, false, false]),
            ("PROMOTE", false, [true, false, false, false]),
        ];
        for (name, fresh, expected) in cases {
            let v = verdict(name, fresh);
            let got =
                [Rollout, Rollback, ConfirmPromotion, ConfirmTrafficIncrease].map(|h| h.passes(&v));
            assert_eq!(got, expected, "{name} fresh={fresh}");
            assert!(Event.passes(&v));
        }
    }

    #[test]
    fn the_experiment_comes_from_metadata_else_the_canary() {
        let p = Payload::parse(br#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"abc","metadata":{}}"#).unwrap();
        assert_eq!(p.experiment(), "test/podinfo");
        let p = Payload::parse(
            br#"{"name":"podinfo","namespace":"test","metadata":{"experiment":"checkout"}}"#,
        )
        .unwrap();
        assert_eq!(p.experiment(), "checkout");
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        for body in [&b"not json"[..], b"{}", br#"{"name":1,"namespace":"x"}"#] {
            let e = Payload::parse(body).unwrap_err();
            assert!(e.contains("Flagger webhook body"), "{e}");
        }
        let e = Payload::parse(br#"{"name":"","namespace":"x"}"#).unwrap_err();
        assert!(e.contains("names no canary"), "{e}");
        for hook in Hook::ALL {
            assert_eq!(Hook::parse(hook.name()), Some(hook));
        }
        assert_eq!(Hook::parse("pre-rollout"), None);
    }
}
