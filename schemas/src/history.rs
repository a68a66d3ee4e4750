//! The results history's tables (`DATA/_results/`): what every `shiftright analyze` run appends
//! and `shiftright query` reads back as `results` and `decisions`. Their columns are a contract
//! with the users' SQL, like the event tables', so they are stated here; the analysis builds the
//! rows (`analyze/src/present/history.rs`) and queries/README.md documents every column.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The directory under the data root that holds the history tables.
pub const RESULTS_DIR: &str = "_results";

/// The history tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryTable {
    Results,
    Decisions,
}

impl HistoryTable {
    /// Both tables.
    pub const ALL: [HistoryTable; 2] = [HistoryTable::Results, HistoryTable::Decisions];

    /// The table's SQL name (and directory under `_results/`).
    pub fn name(self) -> &'static str {
        match self {
            HistoryTable::Results => "results",
            HistoryTable::Decisions => "decisions",
        }
    }

    /// The table's directory under `data_dir`.
    pub fn dir(self, data_dir: &Path) -> PathBuf {
        data_dir.join(RESULTS_DIR).join(self.name())
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        let run = [
            Field::new("run_id", DataType::Utf8, false),
            Field::new("run_at", crate::timestamp_type(), false),
            Field::new("command", DataType::Utf8, false),
            Field::new("experiment", DataType::Utf8, false),
            Field::new("method", DataType::Utf8, false),
            Field::new("baseline", DataType::Utf8, true),
        ];
        let num = |name: &str| Field::new(name, DataType::Float64, true);
        let rest: Vec<Field> = match self {
            HistoryTable::Results => vec![
                Field::new("variant", DataType::Utf8, false),
                Field::new("metric", DataType::Utf8, false),
                // Nullable: history files written before it was recorded lack it.
                Field::new("direction", DataType::Utf8, true),
                Field::new("baseline_users", DataType::Int64, true),
                Field::new("variant_users", DataType::Int64, true),
                num("baseline_value"),
                num("variant_value"),
                num("absolute_diff"),
                num("relative_lift"),
                num("ci_low"),
                num("ci_high"),
                num("lift_ci_low"),
                num("lift_ci_high"),
                num("p_value"),
                Field::new("significant", DataType::Boolean, false),
                Field::new("guardrail_kind", DataType::Utf8, true),
                Field::new("guardrail_direction", DataType::Utf8, true),
                Field::new("guardrail_test", DataType::Utf8, true),
                num("guardrail_threshold"),
                num("guardrail_limit"),
                num("guardrail_observed"),
                num("guardrail_bound"),
                num("margin_p_value"),
                num("margin_p_adjusted"),
                Field::new("breached", DataType::Boolean, true),
                Field::new("non_inferior", DataType::Boolean, true),
                num("cuped_variance_reduction"),
            ],
            HistoryTable::Decisions => vec![
                Field::new("verdict", DataType::Utf8, false),
                Field::new("reason", DataType::Utf8, true),
                Field::new(
                    "reasons",
                    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                    false,
                ),
                Field::new("confidence", DataType::Float64, false),
                Field::new("users", DataType::Int64, false),
                num("srm_p_value"),
                Field::new("multiple_variant_users", DataType::Int64, false),
                Field::new("duplicates_dropped", DataType::Int64, false),
            ],
        };
        Arc::new(Schema::new(run.into_iter().chain(rest).collect::<Vec<_>>()))
    }
}
