//! The analysis' passes over `exposures` and `business`: each user's assignment (exposures
//! join the live requests' variants, flags and first exposure) and each exposed user's
//! conversion and revenue before and after first exposure. Together with `request_scan` they
//! compute what `queries/user_metrics.sql` says in SQL, without its joins and groups (which held
//! 7 GB at 10⁸ requests); the test below holds the two to agreement.

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Float64Type, TimestampMillisecondType};
use datafusion::prelude::SessionContext;

use crate::error::Result;
use crate::fold::{self, Folds};
use crate::queries;

const EXPOSURES: &str = "exposure_scan";
const BUSINESS: &str = "business_scan";

/// Business events that count as a conversion.
const CONVERSIONS: [&str; 2] = ["conversion", "purchase"];

/// Folds `exposures` (only the experiments in `only`, when given) into each user's assignment.
/// Runs after `request_scan`: an experiment's users are numbered across both.
pub async fn load_exposures(
    ctx: &SessionContext,
    only: &[String],
    folds: &mut Folds,
) -> Result<()> {
    fold::scan(ctx, EXPOSURES, only, true, |batch, seen| {
        let col = |name: &str, to: &DataType| queries::column(batch, EXPOSURES, name, to);
        let text: Vec<_> = ["experiment", "event_id", "user_id", "variant"]
            .iter()
            .map(|n| col(n, &DataType::Utf8View))
            .collect::<Result<_>>()?;
        let text: Vec<_> = text.iter().map(|a| a.as_string_view()).collect();
        let synthetic = col("synthetic", &DataType::Boolean)?;
        let synthetic = synthetic.as_boolean();
        let ts = col("ts", &shiftright_schemas::timestamp_type())?;
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        for i in 0..batch.num_rows() {
            let (experiment, event_id) = (text[0].value(i), text[1].value(i));
            let (user_id, variant) = (text[2].value(i), text[3].value(i));
            let first = seen.first_time((experiment, user_id, event_id));
            let e = folds.experiment(experiment);
            let user = e.user(user_id);
            if !first {
                e.user_states[user as usize].exposure_duplicates += 1;
                continue;
            }
            e.assign(user, variant, synthetic.value(i));
            let state = &mut e.user_states[user as usize];
            state.exposed_at = Some(state.exposed_at.map_or(ts.value(i), |t| t.min(ts.value(i))));
        }
        Ok(())
    })
    .await
}

/// Folds `business` into each assigned user's conversion and revenue, in every experiment the
/// user is in. Runs last: it needs each user's first exposure.
pub async fn load_business(ctx: &SessionContext, folds: &mut Folds) -> Result<()> {
    fold::scan(ctx, BUSINESS, &[], false, |batch, seen| {
        let col = |name: &str, to: &DataType| queries::column(batch, BUSINESS, name, to);
        let text: Vec<_> = ["event_id", "user_id", "kind"]
            .iter()
            .map(|n| col(n, &DataType::Utf8View))
            .collect::<Result<_>>()?;
        let text: Vec<_> = text.iter().map(|a| a.as_string_view()).collect();
        let ts = col("ts", &shiftright_schemas::timestamp_type())?;
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        let value = col("value", &DataType::Float64)?;
        let value = value.as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            if !seen.first_time(text[0].value(i)) {
                continue;
            }
            let (user_id, kind, ts, value) = (
                text[1].value(i),
                text[2].value(i),
                ts.value(i),
                value.value(i),
            );
            let converts = CONVERSIONS.contains(&kind);
            for (_, e) in folds.iter_mut() {
                let Some(user) = e.users.find(user_id) else {
                    continue;
                };
                let state = &mut e.user_states[user as usize];
                let Some(exposed) = state.first_exposure() else {
                    continue;
                };
                let b = &mut state.business;
                if ts >= exposed {
                    b.converted |= converts;
                    b.revenue += value;
                } else {
                    b.pre_converted |= converts;
                    b.pre_revenue += value;
                }
            }
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::TimestampMillisecondArray;
    use arrow::array::{Array, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray};
    use datafusion::datasource::MemTable;
    use shiftright_schemas::Table;

    use super::*;
    use crate::request_scan;

    /// One event: (experiment, event_id, ts, user, synthetic, variant, mode or business kind,
    /// business value).
    type Event = (
        &'static str,
        &'static str,
        i64,
        &'static str,
        bool,
        &'static str,
        &'static str,
        f64,
    );

    /// `events` as a table with `table`'s full schema (columns the events do not give are null,
    /// or neutral where they cannot be).
    fn register(ctx: &SessionContext, table: Table, events: &[Event]) {
        let schema = table.schema();
        let n = events.len();
        let text = |f: fn(&Event) -> &'static str| -> Arc<dyn Array> {
            Arc::new(StringArray::from_iter_values(events.iter().map(f)))
        };
        let columns: Vec<Arc<dyn Array>> = schema
            .fields()
            .iter()
            .map(|field| -> Arc<dyn Array> {
                match field.name().as_str() {
                    "experiment" => text(|e| e.0),
                    "event_id" => text(|e| e.1),
                    "ts" => Arc::new(
                        TimestampMillisecondArray::from_iter_values(events.iter().map(|e| e.2))
                            .with_timezone("UTC"),
                    ),
                    "user_id" => text(|e| e.3),
                    "synthetic" => Arc::new(BooleanArray::from(
                        events.iter().map(|e| e.4).collect::<Vec<_>>(),
                    )),
                    "variant" => text(|e| e.5),
                    "mode" | "kind" => text(|e| e.6),
                    "value" => Arc::new(Float64Array::from_iter_values(events.iter().map(|e| e.7))),
                    "status" => Arc::new(Int32Array::from(vec![200; n])),
                    "latency_ms" => Arc::new(Float64Array::from(vec![10.0; n])),
                    "shadow_match" => Arc::new(BooleanArray::from(vec![None; n])),
                    _ => Arc::new(StringArray::from(vec![None::<&str>; n])),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        let provider = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table(table.name(), Arc::new(provider))
            .unwrap();
    }

    /// Rows of `sql` as text, sorted, whatever their column types.
    async fn rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for b in &batches {
            for i in 0..b.num_rows() {
                let cells: Vec<String> = b
                    .columns()
                    .iter()
                    .map(|c| arrow::util::display::array_value_to_string(c, i).unwrap())
                    .collect();
                out.push(cells.join(" "));
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn the_folds_compute_what_user_metrics_says() {
        let ctx = SessionContext::new();
        register(
            &ctx,
            Table::Requests,
            &[
                ("a", "r1", 3_000, "u1", false, "v1", "live", 0.0),
                ("a", "r1", 3_000, "u1", false, "v1", "live", 0.0),
                ("a", "r2", 5_000, "u2", false, "v2", "live", 0.0),
                ("a", "r3", 5_000, "u3", true, "v2", "live", 0.0),
                ("a", "r4", 1_000, "u4", false, "v1", "shadow", 0.0),
                ("a", "r5", 2_000, "u5", false, "v1", "live", 0.0),
                ("b", "r1", 8_000, "u1", false, "v9", "live", 0.0),
            ],
        );
        register(
            &ctx,
            Table::Exposures,
            &[
                ("a", "x1", 4_000, "u1", false, "v1", "", 0.0),
                ("a", "x1", 4_000, "u1", false, "v1", "", 0.0),
                ("a", "x2", 6_000, "u1", false, "v1", "", 0.0),
                ("a", "x3", 4_500, "u2", false, "v2", "", 0.0),
                ("a", "x4", 4_000, "u5", false, "v2", "", 0.0),
                ("a", "x5", 4_000, "u6", false, "v1", "", 0.0),
            ],
        );
        register(
            &ctx,
            Table::Business,
            &[
                // u1: before its first exposure (4 s) in a, after its first request (8 s) in b
                ("", "b1", 3_500, "u1", false, "", "purchase", 10.0),
                ("", "b1", 3_500, "u1", false, "", "purchase", 10.0),
                ("", "b2", 9_000, "u1", false, "", "engagement", 2.5),
                ("", "b3", 4_600, "u2", false, "", "conversion", 0.0),
                ("", "b4", 100, "u6", false, "", "purchase", 7.0),
                ("", "b5", 100, "nobody", false, "", "purchase", 7.0),
            ],
        );
        let mut folds = Folds::default();
        request_scan::load(&ctx, &[], &mut folds).await.unwrap();
        load_exposures(&ctx, &[], &mut folds).await.unwrap();
        load_business(&ctx, &mut folds).await.unwrap();

        let mut from_folds = Vec::new();
        for (name, e) in folds.iter_mut() {
            for (id, state) in e.user_states.iter().enumerate() {
                let Some((lo, _)) = state.variants else {
                    continue;
                };
                let b = state.business;
                from_folds.push(format!(
                    "{name} {} {} {} {} {} {} {:?} {} {:?}",
                    e.variants.get(lo),
                    e.users.get(id as u32),
                    state.multiple_variants(),
                    state.synthetic,
                    state.exposure_duplicates,
                    i64::from(b.converted),
                    b.revenue,
                    i64::from(b.pre_converted),
                    b.pre_revenue,
                ));
            }
        }
        from_folds.sort();
        let sql = queries::named("user_metrics").unwrap().sql;
        let from_sql = rows(&ctx, sql).await;
        assert_eq!(from_folds, from_sql);
        assert_eq!(
            from_sql,
            vec![
                "a v1 u1 false false 1 0 2.5 1 10.0",
                "a v1 u5 true false 0 0 0.0 0 0.0",
                "a v1 u6 false false 0 0 0.0 1 7.0",
                "a v2 u2 false false 0 1 0.0 0 0.0",
                "a v2 u3 false true 0 0 0.0 0 0.0",
                "b v9 u1 false false 0 0 2.5 1 10.0",
            ]
        );
    }
}
