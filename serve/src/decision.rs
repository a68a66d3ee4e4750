//! A decision as the decisions topic carries it (`schemas/decision.schema.json`): what changed,
//! what to do about it (`disable`, `promote`, `hold`), and the evidence, so that a feature-flag
//! service can flip a kill switch without reading the report.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shiftright_analyze::{Report, Verdict};

/// What a flag system should do with a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// ROLLBACK: turn the variant off (kill switch).
    Disable,
    /// PROMOTE: roll the variant out.
    Promote,
    /// CONTINUE or INVALID: change nothing.
    Hold,
}

impl Action {
    /// The action a verdict asks for.
    pub fn of(verdict: Verdict) -> Action {
        match verdict {
            Verdict::Rollback => Action::Disable,
            Verdict::Promote => Action::Promote,
            Verdict::Continue | Verdict::Invalid => Action::Hold,
        }
    }
}

/// Whether a record is a verdict change or a heartbeat that repeats the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// The verdict changed (or was first reached).
    Decision,
    /// The current verdict, repeated every heartbeat: the publisher is alive.
    Heartbeat,
}

/// One record of the decisions topic; its Kafka key is the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `decision` or `heartbeat`.
    pub kind: RecordKind,
    /// The experiment (also the record's key).
    pub experiment: String,
    /// The variant the verdict is about.
    pub variant: String,
    /// `CONTINUE`, `PROMOTE`, `ROLLBACK` or `INVALID`.
    pub verdict: String,
    /// The verdict before this one; null for the first.
    pub previous_verdict: Option<String>,
    /// `disable`, `promote` or `hold`.
    pub action: Action,
    /// Why, most important first.
    pub reasons: Vec<String>,
    /// The numbers behind it: users per variant, SRM, each guardrail's observed value, bound and
    /// limit, each variant's harm budget.
    pub evidence: Value,
    /// The newest event time the verdict saw (RFC 3339).
    pub data_through: String,
    /// When it was decided (RFC 3339).
    pub decided_at: String,
    /// The decision's id, as the verdict endpoint shows it.
    pub decision_id: String,
    /// Who published it: `serve` or `watch`.
    pub source: String,
}

/// The evidence of `report`, compact enough for a record.
pub fn evidence(report: &Report) -> Value {
    let users: serde_json::Map<String, Value> = report
        .variants
        .iter()
        .map(|v| (v.name.clone(), json!(v.users)))
        .collect();
    let guardrails: Vec<Value> = report
        .comparisons
        .iter()
        .filter_map(|c| {
            let g = c.guardrail.as_ref()?;
            Some(json!({
                "metric": c.metric.name(),
                "variant": c.variant,
                "kind": g.kind,
                "observed": g.observed,
                "bound": g.bound,
                "limit": g.limit,
                "breached": g.breached,
                "non_inferior": g.non_inferior,
            }))
        })
        .collect();
    let harm: Vec<Value> = report
        .blast_radius
        .iter()
        .map(|b| {
            json!({
                "variant": b.variant,
                "excess_errors_low": b.excess_errors_low,
                "harm_budget": b.harm_budget,
                "exceeded": b.harm_budget_exceeded,
            })
        })
        .collect();
    json!({
        "method": report.method,
        "baseline": report.baseline,
        "users": users,
        "srm_p_value": report.srm.p_value,
        "guardrails": guardrails,
        "harm_budget": harm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verdict_has_its_action() {
        assert_eq!(Action::of(Verdict::Rollback), Action::Disable);
        assert_eq!(Action::of(Verdict::Promote), Action::Promote);
        assert_eq!(Action::of(Verdict::Continue), Action::Hold);
        assert_eq!(Action::of(Verdict::Invalid), Action::Hold);
        assert_eq!(serde_json::to_value(Action::Disable).unwrap(), "disable");
        assert_eq!(
            serde_json::to_value(RecordKind::Heartbeat).unwrap(),
            "heartbeat"
        );
    }
}
