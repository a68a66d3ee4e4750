//! `latency_distribution(x)`: the aggregate that turns latencies into a
//! [`DistributionBuilder`](crate::stats::DistributionBuilder) — exact within its budget, bucketed
//! within 0.5% past it — with the per-user prefix sums the clustered quantile CIs need.
//!
//! `x` is either one user's latencies (`List<Float64>`: the user is the cluster, as the
//! `analysis_users` rows give them) or one request's latency (`Float64`: each request its own
//! cluster, for side traffic and plain quantiles). The result is the distribution's bytes
//! (`Binary`), read back by `DistributionBuilder::decode`; its state is the same bytes, so
//! partial aggregates, spills and a cluster's shuffles merge it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{exec_err, Result as DFResult};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::udaf::{bad_state, binary, cast, selected, state_per_row, OneGroup};
use crate::stats::DistributionBuilder;

/// The function's SQL name.
pub const NAME: &str = "latency_distribution";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LatencyDistributionUdaf {
    signature: Signature,
}

impl Default for LatencyDistributionUdaf {
    fn default() -> Self {
        LatencyDistributionUdaf {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// What the argument holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// One user's latencies.
    User,
    /// One request's latency.
    Request,
}

fn input(t: &DataType) -> DFResult<Input> {
    match t {
        DataType::List(_) | DataType::LargeList(_) => Ok(Input::User),
        t if t.is_numeric() || t == &DataType::Null => Ok(Input::Request),
        t => exec_err!(
            "{NAME} takes a latency (a number) or a user's latencies (a list of numbers), not {t}"
        ),
    }
}

impl AggregateUDFImpl for LatencyDistributionUdaf {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        input(&arg_types[0])?;
        Ok(DataType::Binary)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DFResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "distribution"),
            DataType::Binary,
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup(DistributionGroups::new(input(
            args.expr_fields[0].data_type(),
        )?))))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DFResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(DistributionGroups::new(input(
            args.expr_fields[0].data_type(),
        )?)))
    }
}

/// One distribution per group.
pub struct DistributionGroups {
    input: Input,
    groups: Vec<DistributionBuilder>,
}

impl DistributionGroups {
    fn new(input: Input) -> Self {
        DistributionGroups {
            input,
            groups: Vec::new(),
        }
    }

    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let taken = emit_to.take_needed(&mut self.groups);
        Arc::new(BinaryArray::from_iter_values(
            taken.iter().map(DistributionBuilder::encode),
        ))
    }
}

impl GroupsAccumulator for DistributionGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DFResult<()> {
        self.groups
            .resize_with(total_num_groups, DistributionBuilder::default);
        match self.input {
            Input::Request => {
                let v = cast(&values[0], &DataType::Float64)?;
                let v = v.as_primitive::<Float64Type>();
                for (i, &g) in group_indices.iter().enumerate() {
                    let x = v.value(i);
                    if selected(opt_filter, i) && v.is_valid(i) && x.is_finite() {
                        self.groups[g].add_sorted_user(&[x]);
                    }
                }
            }
            Input::User => {
                let lists = cast(
                    &values[0],
                    &DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
                )?;
                let lists = lists.as_list::<i32>();
                for (i, &g) in group_indices.iter().enumerate() {
                    if !selected(opt_filter, i) || lists.is_null(i) {
                        continue;
                    }
                    let user = lists.value(i);
                    let user = user.as_primitive::<Float64Type>();
                    let values: Vec<f64> = user.iter().flatten().collect();
                    self.groups[g].add_user(&values);
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DFResult<ArrayRef> {
        Ok(self.emit(emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> DFResult<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DFResult<()> {
        self.groups
            .resize_with(total_num_groups, DistributionBuilder::default);
        let states = binary(&values[0])?;
        for (i, &g) in group_indices.iter().enumerate() {
            if states.is_null(i) {
                continue;
            }
            let other =
                DistributionBuilder::decode(states.value(i)).ok_or_else(|| bad_state(NAME))?;
            self.groups[g].merge(other);
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DFResult<Vec<ArrayRef>> {
        state_per_row(DistributionGroups::new(self.input), values, opt_filter)
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.groups.capacity() * std::mem::size_of::<DistributionBuilder>()
            + self
                .groups
                .iter()
                .map(DistributionBuilder::heap_bytes)
                .sum::<usize>()
    }
}
