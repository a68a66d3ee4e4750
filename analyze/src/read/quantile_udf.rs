//! `latency_quantile(distribution, nu)`: reads a quantile off a `latency_distribution` result, so
//! that the analysis' own stages stay readable in SQL (`SELECT variant,
//! latency_quantile(latency, 0.99) FROM analysis_arms`). The estimate is the one the report gives
//! (the order statistic at ⌈nν⌉, within 0.5% when the distribution is bucketed); NULL for an empty
//! distribution or ν outside [0, 1].

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{exec_err, Result as DFResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::udaf::cast;
use crate::stats::DistributionBuilder;

/// The function's SQL name.
pub const NAME: &str = "latency_quantile";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LatencyQuantileUdf {
    signature: Signature,
}

impl Default for LatencyQuantileUdf {
    fn default() -> Self {
        LatencyQuantileUdf {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for LatencyQuantileUdf {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        let bytes = matches!(
            arg_types[0],
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null
        );
        if !bytes || !(arg_types[1].is_numeric() || arg_types[1] == DataType::Null) {
            return exec_err!(
                "{NAME} takes a latency_distribution result and a quantile between 0 and 1, not ({}, {})",
                arg_types[0],
                arg_types[1]
            );
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (bytes, nu) = (
            cast(&arrays[0], &DataType::LargeBinary)?,
            cast(&arrays[1], &DataType::Float64)?,
        );
        let (bytes, nu) = (bytes.as_binary::<i64>(), nu.as_primitive::<Float64Type>());
        let mut out = Vec::with_capacity(rows);
        for i in 0..bytes.len() {
            if bytes.is_null(i) || nu.is_null(i) {
                out.push(None);
                continue;
            }
            let Some(d) = DistributionBuilder::decode(bytes.value(i)) else {
                return exec_err!("{NAME}: argument 1 is not a latency_distribution result");
            };
            out.push(d.finish().quantile(nu.value(i), 0.05).map(|q| q.estimate));
        }
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(out))))
    }
}
