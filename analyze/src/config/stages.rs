//! Rollout stages: a canary ramps (1% → 5% → 25%), so the allocation new users get changes over
//! time, and one weight vector would make a ramp that follows its plan look like a sample ratio
//! mismatch.
//!
//! ```toml
//! [experiments.checkout-canary]
//! weights = { v1 = 99, v2 = 1 }      # before the first stage (optional)
//! stages = [
//!   { from = "2026-12-01T10:00:00Z", weights = { v1 = 95, v2 = 5 } },
//!   { from = "2026-12-01T11:00:00Z", weights = { v1 = 75, v2 = 25 } },
//! ]
//! ```
//!
//! A user belongs to the stage in force at its first exposure (its assignment: the allocation it
//! was drawn under). Stage 0 is the time before the first `from`, with `weights` as its
//! allocation; stage i ≥ 1 is the i-th entry. Without `stages` in the file, exposures that carry
//! `weights` (the flag SDK's allocation at assignment) are the stages: one per allocation, in the
//! order each was first seen, users by the allocation of their first exposure (stage 0: users
//! whose first exposure carried none, with `weights` from the file). The analysis tests SRM in every stage against that
//! stage's weights, and compares the variants within the latest stage only (`decide`): within one
//! stage the allocation is constant, so its users are one randomized experiment, while pooling
//! stages would weigh the canary towards the later stages' hours and confound it with anything
//! that changed over time.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One stage as the file writes it; `from` a TOML date-time or an RFC 3339 string.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StageEntry {
    from: When,
    weights: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum When {
    Toml(toml::value::Datetime),
    Text(String),
}

/// One rollout stage: from `from_ms` (epoch milliseconds) on, new users are drawn with `weights`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub from_ms: i64,
    pub weights: BTreeMap<String, f64>,
}

impl Stage {
    /// `from` as RFC 3339 (UTC).
    pub fn from_rfc3339(&self) -> String {
        rfc3339(self.from_ms)
    }
}

/// Epoch milliseconds as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// The stages of `entries`, checked: each `from` a date-time with an offset, strictly later than
/// the one before; each stage's weights valid by `check_weights`. Errors name the key.
pub(crate) fn parse(
    at: &str,
    entries: &[StageEntry],
    check_weights: impl Fn(&str, &BTreeMap<String, f64>) -> Result<(), String>,
) -> Result<Vec<Stage>, String> {
    let mut stages: Vec<Stage> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let key = format!("stages[{i}]");
        let text = match &entry.from {
            When::Toml(t) => t.to_string(),
            When::Text(s) => s.clone(),
        };
        let from = chrono::DateTime::parse_from_rfc3339(&text).map_err(|e| {
            format!(
                "[{at}] {key}.from = {text:?}: allowed an RFC 3339 date-time with an offset \
                 (e.g. \"2026-12-01T10:00:00Z\"): {e}"
            )
        })?;
        let from_ms = from.timestamp_millis();
        if let Some(before) = stages.last() {
            if from_ms <= before.from_ms {
                return Err(format!(
                    "[{at}] {key}.from = {text:?}: allowed a time after stages[{}].from ({}): list the stages in the order they start",
                    i - 1,
                    before.from_rfc3339()
                ));
            }
        }
        check_weights(&format!("{key}.weights"), &entry.weights)?;
        stages.push(Stage {
            from_ms,
            weights: entry.weights.clone(),
        });
    }
    Ok(stages)
}

/// The stage of a user assigned at `assigned_ms`: 0 before the first stage, else the 1-based
/// index of the last stage started by then (the rule `read::queries::stage_sql` writes in SQL).
pub fn stage_of(stages: &[Stage], assigned_ms: i64) -> usize {
    stages
        .iter()
        .take_while(|s| s.from_ms <= assigned_ms)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(text: &str) -> Result<Vec<Stage>, String> {
        #[derive(Deserialize)]
        struct File {
            stages: Vec<StageEntry>,
        }
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        parse("experiments.x", &f.stages, |_, _| Ok(()))
    }

    #[test]
    fn stages_take_toml_and_rfc3339_times_in_order() {
        let s = stages(
            "stages = [{ from = 2026-12-01T10:00:00Z, weights = { a = 1, b = 1 } }, \
             { from = \"2026-12-01T12:00:00+01:00\", weights = { a = 3, b = 1 } }]",
        )
        .unwrap();
        assert_eq!(s[1].from_ms - s[0].from_ms, 3_600_000);
        assert_eq!(s[0].from_rfc3339(), "2026-12-01T10:00:00.000Z");
        assert_eq!(stage_of(&s, s[0].from_ms - 1), 0);
        assert_eq!(stage_of(&s, s[0].from_ms), 1);
        assert_eq!(stage_of(&s, s[1].from_ms + 5), 2);

        let err = stages(
            "stages = [{ from = \"2026-12-01T10:00:00Z\", weights = {} }, \
             { from = \"2026-12-01T09:00:00Z\", weights = {} }]",
        )
        .unwrap_err();
        assert!(
            err.contains("stages[1].from") && err.contains("order"),
            "{err}"
        );
        let err = stages("stages = [{ from = \"2026-12-01 10:00\", weights = {} }]").unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
        let err = stages("stages = [{ from = 2026-12-01T10:00:00, weights = {} }]").unwrap_err();
        assert!(err.contains("offset"), "a local time has no offset: {err}");
    }
}
