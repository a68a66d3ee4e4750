//! A physical optimizer rule: the per-user aggregate (`user_experiments`) runs in one step on
//! events shuffled by user, instead of DataFusion's partial aggregate, shuffle of its states and
//! final aggregate.
//!
//! Why: the partial step pays off when it shrinks the rows a lot. Grouped by user it does not
//! (each batch holds a few events of many users: a quarter as many states as events), and every
//! state is the user's events encoded as bytes, then decoded and merged after the shuffle. Hashing
//! the events themselves to their user's partition and aggregating there once skips the encoding,
//! the second hash table and the merge. The rule only reorders what EnsureRequirements planned
//! (Final ← hash shuffle ← Partial becomes SinglePartitioned ← the same hash shuffle), so the plan
//! runs the same way on one machine and on a Ballista cluster (a scheduler adds the rule too), and
//! the aggregate still spills past the memory pool (its spilled states are merged as before).

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

use super::user_state;

/// The rule; add it after DataFusion's own (`SessionStateBuilder::with_physical_optimizer_rule`).
#[derive(Debug, Default)]
pub struct UserAggregateInOneStep;

impl PhysicalOptimizerRule for UserAggregateInOneStep {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match in_one_step(&node)? {
                Some(single) => Transformed::yes(single),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "UserAggregateInOneStep"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` as one SinglePartitioned aggregate when it is the final step of a `user_experiments`
/// aggregate over a hash shuffle of its partial step.
fn in_one_step(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(last) = node.downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    let ours = last.aggr_expr().iter().any(|a| {
        user_state::Form::ALL
            .iter()
            .any(|f| a.fun().name() == f.name())
    });
    if *last.mode() != AggregateMode::FinalPartitioned || !ours {
        return Ok(None);
    }
    let Some(shuffle) = last.input().downcast_ref::<RepartitionExec>() else {
        return Ok(None);
    };
    // An order-preserving shuffle keeps an order some parent may need: leave it as planned.
    let Partitioning::Hash(_, partitions) = shuffle.partitioning() else {
        return Ok(None);
    };
    if shuffle.preserve_order() {
        return Ok(None);
    }
    let Some(first) = shuffle.input().downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    if *first.mode() != AggregateMode::Partial || first.group_expr().has_grouping_set() {
        return Ok(None);
    }
    let keys = first
        .group_expr()
        .expr()
        .iter()
        .map(|(e, _)| Arc::clone(e))
        .collect();
    let events = Arc::new(RepartitionExec::try_new(
        Arc::clone(first.input()),
        Partitioning::Hash(keys, *partitions),
    )?);
    let single = AggregateExec::try_new(
        AggregateMode::SinglePartitioned,
        first.group_expr().clone(),
        first.aggr_expr().to_vec(),
        first.filter_expr().to_vec(),
        events,
        first.input_schema(),
    )?
    .with_limit_options(last.limit_options());
    Ok(Some(Arc::new(single)))
}
