//! The SQL in `queries/`, compiled into the binary so that it runs from anywhere. The analysis job
//! is `analysis_users` → `analysis_arms` (and `analysis_side_traffic`); every query is also a
//! named query users run with `shiftright query --name`.

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
        sql: include_str!("../../../queries/user_metrics.sql"),
    },
    NamedQuery {
        name: "analysis_users",
        sql: include_str!("../../../queries/analysis_users.sql"),
    },
    NamedQuery {
        name: "analysis_arms",
        sql: include_str!("../../../queries/analysis_arms.sql"),
    },
    NamedQuery {
        name: "analysis_side_traffic",
        sql: include_str!("../../../queries/analysis_side_traffic.sql"),
    },
    NamedQuery {
        name: "error_rate",
        sql: include_str!("../../../queries/error_rate.sql"),
    },
    NamedQuery {
        name: "latency",
        sql: include_str!("../../../queries/latency.sql"),
    },
    NamedQuery {
        name: "conversion_revenue",
        sql: include_str!("../../../queries/conversion_revenue.sql"),
    },
    NamedQuery {
        name: "hourly",
        sql: include_str!("../../../queries/hourly.sql"),
    },
    NamedQuery {
        name: "active_experiments",
        sql: include_str!("../../../queries/active_experiments.sql"),
    },
    NamedQuery {
        name: "data_through",
        sql: include_str!("../../../queries/data_through.sql"),
    },
    NamedQuery {
        name: "exposure_dates",
        sql: include_str!("../../../queries/exposure_dates.sql"),
    },
    NamedQuery {
        name: "decisions_over_time",
        sql: include_str!("../../../queries/decisions_over_time.sql"),
    },
    NamedQuery {
        name: "lift_over_time",
        sql: include_str!("../../../queries/lift_over_time.sql"),
    },
    NamedQuery {
        name: "business_kinds",
        sql: include_str!("../../../queries/business_kinds.sql"),
    },
    NamedQuery {
        name: "srm_counts",
        sql: include_str!("../../../queries/srm_counts.sql"),
    },
    NamedQuery {
        name: "duplicates",
        sql: include_str!("../../../queries/duplicates.sql"),
    },
    NamedQuery {
        name: "duplicate_events",
        sql: include_str!("../../../queries/duplicate_events.sql"),
    },
    NamedQuery {
        name: "segment_users",
        sql: include_str!("../../../queries/segment_users.sql"),
    },
    NamedQuery {
        name: "traffic_modes",
        sql: include_str!("../../../queries/traffic_modes.sql"),
    },
    NamedQuery {
        name: "dead_letters_by_reason",
        sql: include_str!("../../../queries/dead_letters_by_reason.sql"),
    },
    NamedQuery {
        name: "dead_letters_between",
        sql: include_str!("../../../queries/dead_letters_between.sql"),
    },
];

/// The named placeholders (`$experiment`) of `sql`, outside comments and string literals.
pub fn placeholders(sql: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\'' => {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
            }
            '$' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                    end += 1;
                }
                if end > start && !chars[start].is_ascii_digit() {
                    out.insert(chars[start..end].iter().collect());
                }
                i = end.max(i + 1) - 1;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Parameters as DataFusion binds them: each value a string.
pub fn param_values(
    params: &[(String, String)],
) -> std::collections::HashMap<String, datafusion::scalar::ScalarValue> {
    params
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                datafusion::scalar::ScalarValue::Utf8(Some(v.clone())),
            )
        })
        .collect()
}

/// Checks that every placeholder of `sql` has a parameter and every parameter a placeholder.
pub fn check_params(sql: &str, params: &[(String, String)]) -> crate::Result<()> {
    let wanted = placeholders(sql);
    let given: std::collections::BTreeSet<String> = params.iter().map(|(k, _)| k.clone()).collect();
    let missing: Vec<String> = wanted
        .difference(&given)
        .map(|p| format!("--param {p}=VALUE"))
        .collect();
    if !missing.is_empty() {
        return Err(crate::Error::Params(format!(
            "the query needs {} (queries/README.md lists each query's parameters)",
            missing.join(" ")
        )));
    }
    if let Some(extra) = given.difference(&wanted).next() {
        let known = if wanted.is_empty() {
            "it takes none".to_string()
        } else {
            format!(
                "it takes {}",
                wanted.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        return Err(crate::Error::Params(format!(
            "the query has no parameter {extra:?} ({known})"
        )));
    }
    Ok(())
}

/// Looks a query up by name.
pub fn named(name: &str) -> Option<&'static NamedQuery> {
    QUERIES.iter().find(|q| q.name == name)
}

/// A SQL string literal of `text`: the one quoting rule for every name written into SQL.
pub fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A SQL expression of each `analysis_users` row's stage key, by its `experiment`: for the
/// experiments of `by_time` (stages in the file) the stage number as text, by `assigned_at`
/// (the rule of [`crate::config::stages::stage_of`]); for those of `by_weights` (exposures that carry `weights`) the
/// allocation of the user's first exposure (`assigned_weights`, `''` without one); `''` for the
/// others. `None` when no experiment has stages either way.
pub fn stage_sql<'a>(
    by_time: impl Iterator<Item = (&'a str, &'a [crate::config::Stage])>,
    by_weights: &[String],
) -> Option<String> {
    let mut cases: Vec<String> = Vec::new();
    let mut timed: Vec<&str> = Vec::new();
    for (name, stages) in by_time.filter(|(_, stages)| !stages.is_empty()) {
        let within: String = stages
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| format!(" WHEN assigned_at >= {} THEN '{}'", s.from_ms, i + 1))
            .collect();
        cases.push(format!(
            " WHEN {} THEN CASE{within} ELSE '0' END",
            sql_literal(name)
        ));
        timed.push(name);
    }
    for name in by_weights.iter().filter(|n| !timed.contains(&n.as_str())) {
        cases.push(format!(
            " WHEN {} THEN COALESCE(assigned_weights, '')",
            sql_literal(name)
        ));
    }
    (!cases.is_empty()).then(|| format!("CASE experiment{} ELSE '' END", cases.concat()))
}

/// `sql` restricted to the experiments in `only` when it is not empty (it must return an
/// `experiment` column).
pub fn restrict(sql: &str, only: &[String]) -> String {
    if only.is_empty() {
        return sql.to_string();
    }
    let list: Vec<String> = only.iter().map(|e| sql_literal(e)).collect();
    format!(
        "SELECT * FROM ({sql}) AS m WHERE m.experiment IN ({})",
        list.join(", ")
    )
}

/// Plans `sql` read only: every query shiftright runs, its own and the user's, goes through here.
/// DDL (`CREATE [EXTERNAL] TABLE`, `CREATE VIEW`, `DROP`), DML (`INSERT`, `UPDATE`, `DELETE`,
/// `COPY`) and statements (`SET`, `PREPARE`, transactions) are refused before anything runs, so a
/// query can neither change the data nor read or write files outside the registered tables (file
/// paths as table names are off: the session does not enable URL tables). `name` says which query
/// failed.
pub async fn plan_read_only(
    ctx: &datafusion::prelude::SessionContext,
    name: &str,
    sql: &str,
) -> crate::Result<datafusion::dataframe::DataFrame> {
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    ctx.sql_with_options(sql, options).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("DDL not supported")
            || text.contains("DML not supported")
            || text.contains("Statement not supported")
        {
            crate::Error::ReadOnly(format!(
                "{name} was refused: queries over the data are read only ({}); \
                 SELECT, WITH, EXPLAIN and SHOW are allowed, and `--out FILE` writes a result",
                text.trim_start_matches("Error during planning: ")
            ))
        } else {
            crate::Error::Query {
                name: name.into(),
                source: e,
            }
        }
    })
}

/// Runs SQL with named parameters in `ctx` (every placeholder bound, as a string); `name` says
/// which query failed.
pub async fn run(
    ctx: &datafusion::prelude::SessionContext,
    name: &str,
    sql: &str,
    params: &[(String, String)],
) -> crate::Result<(
    arrow::datatypes::SchemaRef,
    Vec<arrow::record_batch::RecordBatch>,
)> {
    use crate::Error;
    check_params(sql, params)?;
    let mut frame = plan_read_only(ctx, name, sql).await?;
    if !params.is_empty() {
        frame = frame
            .with_param_values(param_values(params))
            .map_err(Error::query(name))?;
    }
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(Error::query(name))?;
    Ok((schema, batches))
}

/// Runs the named query `name` of `queries/` with `params`; errors name the query.
pub async fn run_named(
    ctx: &datafusion::prelude::SessionContext,
    name: &str,
    params: &[(&str, String)],
) -> crate::Result<Vec<arrow::record_batch::RecordBatch>> {
    let sql = named(name)
        .ok_or_else(|| crate::Error::UnknownQuery(name.into()))?
        .sql;
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Ok(run(ctx, name, sql, &params).await?.1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_skip_comments_and_strings() {
        let sql =
            "-- uses $not_this\nSELECT '$nor_this', $experiment, $1 FROM t WHERE v = $variant_2";
        let found: Vec<String> = placeholders(sql).into_iter().collect();
        assert_eq!(
            found,
            vec!["experiment".to_string(), "variant_2".to_string()]
        );
    }

    #[test]
    fn params_must_match_placeholders() {
        let sql = "SELECT * FROM results WHERE experiment = $experiment";
        let p = |k: &str| vec![(k.to_string(), "x".to_string())];
        assert!(check_params(sql, &p("experiment")).is_ok());
        let e = check_params(sql, &[]).unwrap_err().to_string();
        assert!(e.contains("--param experiment=VALUE"), "{e}");
        let e = check_params(sql, &p("exp")).unwrap_err().to_string();
        assert!(e.contains("--param experiment=VALUE"), "{e}");
        let e = check_params("SELECT 1", &p("experiment"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes none"), "{e}");
    }

    /// queries/README.md documents every named query.
    #[test]
    fn the_query_readme_lists_every_query() {
        let readme = include_str!("../../../queries/README.md");
        for q in QUERIES {
            assert!(
                readme.contains(&format!("### `{}`", q.name)),
                "queries/README.md has no section for {}",
                q.name
            );
            for p in placeholders(q.sql) {
                assert!(
                    readme.contains(&format!("`{p}`")),
                    "queries/README.md does not document parameter {p} of {}",
                    q.name
                );
            }
        }
    }

    #[test]
    fn the_sql_rule_is_the_rust_rule() {
        let s = vec![
            crate::config::Stage {
                from_ms: 100,
                weights: Default::default(),
            },
            crate::config::Stage {
                from_ms: 200,
                weights: Default::default(),
            },
        ];
        let by_weights = ["it's".to_string(), "sdk".to_string()];
        let sql = stage_sql(
            [("it's", s.as_slice()), ("none", &[][..])].into_iter(),
            &by_weights,
        )
        .unwrap();
        assert_eq!(
            sql,
            "CASE experiment WHEN 'it''s' THEN CASE WHEN assigned_at >= 200 THEN '2' \
             WHEN assigned_at >= 100 THEN '1' ELSE '0' END \
             WHEN 'sdk' THEN COALESCE(assigned_weights, '') ELSE '' END",
            "the file's stages win over the events'"
        );
        assert!(stage_sql([("none", &[][..])].into_iter(), &[]).is_none());
    }
}
