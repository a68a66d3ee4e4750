//! The SQL in `queries/`, compiled into the binary so that it runs from anywhere. The analysis job
//! runs `request_cells` and `user_metrics`; every query is also a named query users run with
//! `shiftright query --name`.

/// A named query.
#[derive(Debug, Clone, Copy)]
pub struct NamedQuery {
    /// Name, as given to `--name`.
    pub name: &'static str,
    /// The SQL text; its first comment line says what it returns.
    pub sql: &'static str,
}

impl NamedQuery {
    /// The first comment line, without `-- name:`.
    pub fn summary(&self) -> &'static str {
        let first = self
            .sql
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("--")
            .trim();
        first.split_once(':').map_or(first, |(_, rest)| rest.trim())
    }
}

/// Every query in `queries/`.
pub const QUERIES: &[NamedQuery] = &[
    NamedQuery {
        name: "user_metrics",
        sql: include_str!("../../queries/user_metrics.sql"),
    },
    NamedQuery {
        name: "request_cells",
        sql: include_str!("../../queries/request_cells.sql"),
    },
    NamedQuery {
        name: "error_rate",
        sql: include_str!("../../queries/error_rate.sql"),
    },
    NamedQuery {
        name: "latency",
        sql: include_str!("../../queries/latency.sql"),
    },
    NamedQuery {
        name: "srm_counts",
        sql: include_str!("../../queries/srm_counts.sql"),
    },
    NamedQuery {
        name: "duplicates",
        sql: include_str!("../../queries/duplicates.sql"),
    },
    NamedQuery {
        name: "duplicate_events",
        sql: include_str!("../../queries/duplicate_events.sql"),
    },
    NamedQuery {
        name: "segment_users",
        sql: include_str!("../../queries/segment_users.sql"),
    },
    NamedQuery {
        name: "traffic_modes",
        sql: include_str!("../../queries/traffic_modes.sql"),
    },
    NamedQuery {
        name: "dead_letters_by_reason",
        sql: include_str!("../../queries/dead_letters_by_reason.sql"),
    },
];

/// Looks a query up by name.
pub fn named(name: &str) -> Option<&'static NamedQuery> {
    QUERIES.iter().find(|q| q.name == name)
}

/// The SQL of the named query `name`, restricted to the experiments in `only` when it is not
/// empty (the query must return an `experiment` column; the filter is pushed down to the scan).
pub fn restricted(name: &str, only: &[String]) -> crate::Result<String> {
    let sql = named(name)
        .ok_or_else(|| crate::Error::UnknownQuery(name.into()))?
        .sql;
    if only.is_empty() {
        return Ok(sql.to_string());
    }
    let list: Vec<String> = only
        .iter()
        .map(|e| format!("'{}'", e.replace('\'', "''")))
        .collect();
    Ok(format!(
        "SELECT * FROM ({sql}) AS m WHERE m.experiment IN ({})",
        list.join(", ")
    ))
}

/// Runs the named query `name` and collects its batches; errors name the query.
pub async fn run_named(
    ctx: &datafusion::prelude::SessionContext,
    name: &str,
) -> crate::Result<Vec<arrow::record_batch::RecordBatch>> {
    use crate::Error;
    let sql = named(name)
        .ok_or_else(|| Error::UnknownQuery(name.into()))?
        .sql;
    let frame = ctx.sql(sql).await.map_err(Error::query(name))?;
    frame.collect().await.map_err(Error::query(name))
}

/// Column `column` of a batch of query `query`, cast to `to`; errors name the query and column.
pub fn column(
    batch: &arrow::record_batch::RecordBatch,
    query: &str,
    column: &str,
    to: &arrow::datatypes::DataType,
) -> crate::Result<std::sync::Arc<dyn arrow::array::Array>> {
    let missing = || crate::Error::Column {
        name: query.into(),
        column: column.into(),
    };
    let col = batch.column_by_name(column).ok_or_else(missing)?;
    arrow::compute::cast(col, to).map_err(|_| missing())
}
