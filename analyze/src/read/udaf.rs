//! What the analysis' aggregate functions share: one adapter from a [`GroupsAccumulator`] to the
//! single-group [`Accumulator`] DataFusion still asks for (an aggregate without GROUP BY), and
//! the casts that let one function read strings however the session stores them (`Utf8View`
//! locally, `Utf8` on a Ballista cluster, dictionaries from Hive partitions).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray, StringViewArray};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DFResult, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

/// A [`GroupsAccumulator`] run with one group.
pub struct OneGroup<G>(pub G);

impl<G> std::fmt::Debug for OneGroup<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneGroup")
    }
}

impl<G: GroupsAccumulator + Sync> Accumulator for OneGroup<G> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DFResult<()> {
        let rows = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; rows], None, 1)
    }

    fn evaluate(&mut self) -> DFResult<ScalarValue> {
        let out = self.0.evaluate(EmitTo::All)?;
        if out.is_empty() {
            return ScalarValue::try_from(out.data_type());
        }
        ScalarValue::try_from_array(&out, 0)
    }

    fn size(&self) -> usize {
        self.0.size()
    }

    fn state(&mut self) -> DFResult<Vec<ScalarValue>> {
        self.0
            .state(EmitTo::All)?
            .iter()
            .map(|a| {
                if a.is_empty() {
                    ScalarValue::try_from(a.data_type())
                } else {
                    ScalarValue::try_from_array(a, 0)
                }
            })
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DFResult<()> {
        let rows = states.first().map_or(0, |v| v.len());
        self.0.merge_batch(states, &vec![0; rows], 1)
    }
}

/// `array` as string views (a copy-free cast from `Utf8`, a lookup from dictionaries).
pub fn strings(array: &ArrayRef) -> DFResult<StringViewArray> {
    let view = if array.data_type() == &DataType::Utf8View {
        Arc::clone(array)
    } else {
        arrow::compute::cast(array, &DataType::Utf8View)?
    };
    Ok(view.as_string_view().clone())
}

/// `array` cast to `to`.
pub fn cast(array: &ArrayRef, to: &DataType) -> DFResult<ArrayRef> {
    if array.data_type() == to {
        return Ok(Arc::clone(array));
    }
    Ok(arrow::compute::cast(array, to)?)
}

/// The bytes of a `Binary` state column. (i32 offsets: one emitted array of states must stay
/// under 2 GiB, which the memory pool's share per aggregate keeps it below unless
/// `--memory-limit` is several GiB; `LargeBinary` cost a quarter of the analysis' time.)
pub fn binary(array: &ArrayRef) -> DFResult<&BinaryArray> {
    array.as_binary_opt::<i32>().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "an aggregate state must be Binary, got {}",
            array.data_type()
        ))
    })
}

/// `GroupsAccumulator::convert_to_state` by way of `fresh`, an empty accumulator given one group
/// per row.
pub fn state_per_row(
    mut fresh: impl GroupsAccumulator,
    values: &[ArrayRef],
    opt_filter: Option<&BooleanArray>,
) -> DFResult<Vec<ArrayRef>> {
    let rows = values.first().map_or(0, |v| v.len());
    let indices: Vec<usize> = (0..rows).collect();
    fresh.update_batch(values, &indices, opt_filter, rows)?;
    fresh.state(EmitTo::All)
}

/// Whether row `i` is selected by the aggregate's FILTER clause.
pub fn selected(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

/// A state that could not be read back: a bug or a foreign plan, never silently merged.
pub fn bad_state(what: &str) -> DataFusionError {
    DataFusionError::Internal(format!(
        "{what}: an aggregate state is not in the expected format"
    ))
}
