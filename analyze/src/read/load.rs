//! Runs the analysis' plan (`analysis_arms`, `analysis_side_traffic`, and first the revenue caps
//! when winsorizing) and turns its rows into each experiment's [`ExperimentSummary`].

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Column;
use datafusion::logical_expr::{Filter, LogicalPlan};
use datafusion::prelude::{lit, DataFrame, Expr, SessionContext};

use crate::config::user_metrics::{Definition, UserMetric};
use crate::config::ExperimentsFile;
use crate::error::{Error, Result};
use crate::read::metric_columns::{self, UserMetricStats};
use crate::read::queries;
use crate::read::summary::ModeRow;
use crate::read::summary::{cap_of, ArmSummary, ExperimentSummary, StageArms};
use crate::stats::{
    CovariateSums, DistributionBuilder, LatencyDistribution, MeanStats, RatioStats,
};

const ARMS: &str = "analysis_arms";
const SIDE: &str = "analysis_side_traffic";

/// What a row of `analysis_users` (and so of `analysis_arms`) describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// The user over the whole experiment.
    All,
    /// The user's requests to one endpoint.
    Endpoint,
    /// The user's requests in one region.
    Region,
}

impl Dimension {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "all" => Some(Dimension::All),
            "endpoint" => Some(Dimension::Endpoint),
            "region" => Some(Dimension::Region),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dimension::All => "all",
            Dimension::Endpoint => "endpoint",
            Dimension::Region => "region",
        }
    }
}

/// The columns of one result, read by name and cast to the type the loader wants.
struct Columns<'a> {
    query: &'a str,
    batch: &'a RecordBatch,
}

impl Columns<'_> {
    fn get(&self, name: &str, to: &DataType) -> Result<ArrayRef> {
        queries::column(self.batch, self.query, name, to)
    }

    fn text(&self, name: &str) -> Result<Vec<String>> {
        let a = self.get(name, &DataType::Utf8)?;
        Ok(a.as_string::<i32>()
            .iter()
            .map(|s| s.unwrap_or_default().to_string())
            .collect())
    }

    fn flag(&self, name: &str) -> Result<Vec<bool>> {
        let a = self.get(name, &DataType::Boolean)?;
        Ok(a.as_boolean().iter().map(|b| b.unwrap_or(false)).collect())
    }

    fn number(&self, name: &str) -> Result<Vec<f64>> {
        let a = self.get(name, &DataType::Float64)?;
        Ok(a.as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.unwrap_or(0.0))
            .collect())
    }

    fn count(&self, name: &str) -> Result<Vec<u64>> {
        let a = self.get(name, &DataType::Int64)?;
        Ok(a.as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.unwrap_or(0).max(0) as u64)
            .collect())
    }

    fn distribution(&self, name: &str) -> Result<Vec<LatencyDistribution>> {
        let a = self.get(name, &DataType::LargeBinary)?;
        a.as_binary::<i64>()
            .iter()
            .map(|bytes| match bytes {
                None => Ok(LatencyDistribution::default()),
                Some(b) => DistributionBuilder::decode(b)
                    .map(|d| d.finish())
                    .ok_or_else(|| Error::Column {
                        name: self.query.into(),
                        column: name.into(),
                    }),
            })
            .collect()
    }
}

/// Runs `sql` (which returns an `experiment` column) for the experiments in `only` (all when it is
/// empty): its output is restricted to them, and so are the `requests` and `exposures` it reads
/// (see [`scope_inputs`]).
async fn run(
    ctx: &SessionContext,
    name: &str,
    sql: &str,
    only: &[String],
) -> Result<Vec<RecordBatch>> {
    let started = std::time::Instant::now();
    let frame = queries::plan_read_only(ctx, name, &queries::restrict(sql, only)).await?;
    let (state, plan) = frame.into_parts();
    let plan = scope_inputs(plan, only).map_err(Error::query(name))?;
    let batches = DataFrame::new(state, plan)
        .collect()
        .await
        .map_err(Error::query(name))?;
    tracing::info!(
        query = name,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "ran"
    );
    Ok(batches)
}

/// The event tables whose rows belong to one experiment each; business events belong to users.
const PER_EXPERIMENT: [&str; 2] = ["requests", "exposures"];

/// `plan` with every scan of `requests` and `exposures` filtered to the experiments in `only`.
///
/// A filter on the analysis' output cannot reach its inputs: `experiment` comes out of the
/// per-user aggregate. Yet a user's rows for one experiment depend only on that experiment's
/// requests and exposures (and on the user's business events, which are kept), so reading only
/// those gives the same rows (`read::tests` holds it), and `analyze -e NAME`, a canary gate's
/// call, costs that experiment's requests and exposures rather than the store's (business events
/// are read whole). The filter reaches the Parquet
/// scan, whose row-group statistics skip other experiments' files.
pub(crate) fn scope_inputs(
    plan: LogicalPlan,
    only: &[String],
) -> datafusion::error::Result<LogicalPlan> {
    if only.is_empty() {
        return Ok(plan);
    }
    let names: Vec<Expr> = only.iter().map(|e| lit(e.as_str())).collect();
    plan.transform_up(|node| {
        let LogicalPlan::TableScan(scan) = &node else {
            return Ok(Transformed::no(node));
        };
        if !PER_EXPERIMENT.contains(&scan.table_name.table()) {
            return Ok(Transformed::no(node));
        }
        let experiment = Expr::Column(Column::new(Some(scan.table_name.clone()), "experiment"));
        let predicate = experiment.in_list(names.clone(), false);
        Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
            predicate,
            Arc::new(node),
        )?)))
    })
    .map(|t| t.data)
}

/// Each winsorizing experiment's revenue cap: the configured percentile of its decided users'
/// revenue (exact while their distinct values fit the distribution's budget, else within 0.5%).
async fn revenue_caps(
    ctx: &SessionContext,
    only: &[String],
    experiments: &ExperimentsFile,
) -> Result<BTreeMap<String, f64>> {
    let mut caps = BTreeMap::new();
    if !experiments.any_winsorize() {
        return Ok(caps);
    }
    let sql = "SELECT experiment, latency_distribution(revenue) AS revenue FROM analysis_users \
               WHERE dimension = 'all' AND NOT synthetic AND NOT multiple_variants GROUP BY experiment";
    for batch in run(ctx, "revenue caps", sql, only).await? {
        let c = Columns {
            query: "revenue caps",
            batch: &batch,
        };
        for (experiment, revenue) in c
            .text("experiment")?
            .into_iter()
            .zip(c.distribution("revenue")?)
        {
            let pct = experiments.settings(&experiment).winsorize_revenue;
            if let Some(cap) = pct
                .and_then(|p| cap_of(&revenue, p))
                .filter(|c| c.is_finite())
            {
                caps.insert(experiment, cap);
            }
        }
    }
    Ok(caps)
}

/// `analysis_arms` with the sums the user-defined `metrics` need, over users whose revenue is
/// capped as `caps` say, and, when `stage` (the SQL of each user's rollout stage) is given,
/// grouped both over all users and per stage (`rollout_stage`, NULL on the rows over all). The
/// SQL is split once at its `FROM analysis_users` and put together again: nothing is replaced
/// inside the metrics' kinds, string literals from the file.
fn arms_sql(
    caps: &BTreeMap<String, f64>,
    metrics: &[UserMetric],
    stage: Option<&str>,
) -> Result<String> {
    let from = "FROM analysis_users";
    let sql = queries::named(ARMS)
        .ok_or_else(|| Error::UnknownQuery(ARMS.into()))?
        .sql;
    let (select, rest) = match sql.split_once(from) {
        Some(parts) if sql.matches(from).count() == 1 => parts,
        _ => {
            return Err(Error::UnknownQuery(format!(
                "{ARMS} no longer reads {from} once"
            )))
        }
    };
    let mut extra = metric_columns::arm_columns(metrics);
    if stage.is_some() {
        extra.push(STAGE.to_string());
        extra.push(format!("MIN(assigned_at) AS {STAGE_FROM}"));
    }
    let metric_columns = if extra.is_empty() {
        String::new()
    } else {
        format!(",\n    {}\n", extra.join(",\n    "))
    };
    let source = if caps.is_empty() && stage.is_none() {
        from.to_string()
    } else {
        let cases: String = caps
            .iter()
            .map(|(e, cap)| {
                format!(
                    " WHEN {} THEN CAST({cap:?} AS DOUBLE)",
                    queries::sql_literal(e)
                )
            })
            .collect();
        let capped = |column: &str| {
            if caps.is_empty() {
                return column.to_string();
            }
            format!("LEAST({column}, CASE experiment{cases} ELSE {column} END) AS {column}")
        };
        let mut columns: Vec<String> = crate::read::user_state::row_fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "revenue" | "pre_revenue" => capped(f.name()),
                other => other.to_string(),
            })
            .collect();
        if let Some(stage) = stage {
            columns.push(format!("{stage} AS {STAGE}"));
        }
        format!(
            "FROM (SELECT {} FROM analysis_users) AS analysis_users",
            columns.join(", ")
        )
    };
    let rest = match stage {
        None => rest.to_string(),
        Some(_) => {
            let keys = rest
                .trim()
                .strip_prefix("GROUP BY ")
                .filter(|k| !k.to_uppercase().contains(" BY ") && !k.contains(['(', ')', ';']))
                .ok_or_else(|| {
                    Error::UnknownQuery(format!("{ARMS} no longer ends in its GROUP BY"))
                })?;
            format!("\nGROUP BY GROUPING SETS (({keys}), ({keys}, {STAGE}))\n")
        }
    };
    Ok(format!("{select}{metric_columns}{source}{rest}"))
}

/// The column of `analysis_arms` rows that says their rollout stage (`config::stages`): the
/// stage's number, or the allocation its users' first exposures carried; NULL on the rows over
/// all users, `''` on those of experiments without stages.
const STAGE: &str = "rollout_stage";
/// The earliest assignment of a stage row's users.
const STAGE_FROM: &str = "stage_from";

/// The experiments whose exposures carry `weights` (the flag SDK's allocation): their stages are
/// the allocations, unless the file gives stages of its own.
async fn weighted_experiments(ctx: &SessionContext, only: &[String]) -> Result<Vec<String>> {
    let sql = "SELECT DISTINCT CAST(experiment AS VARCHAR) AS experiment FROM exposures \
               WHERE weights IS NOT NULL";
    let mut out = Vec::new();
    for batch in run(ctx, "weighted experiments", sql, only).await? {
        let c = Columns {
            query: "weighted experiments",
            batch: &batch,
        };
        out.extend(c.text("experiment")?);
    }
    out.sort();
    Ok(out)
}

/// One stage's rows before the stages are numbered: by (experiment, stage key).
type StageKey = (String, String);

/// Numbers each experiment's stage keys and gives each stage its start and allocation: the
/// file's stages by their number; allocations carried by exposures in the order they were first
/// seen (1, 2, …), with users whose first exposure carried none as stage 0 (the file's
/// `weights`).
fn number_stages(
    staged: BTreeMap<StageKey, StageArms>,
    experiments: &ExperimentsFile,
) -> BTreeMap<StageKey, (usize, StageArms)> {
    let mut by_experiment: BTreeMap<String, Vec<(String, StageArms)>> = BTreeMap::new();
    for ((experiment, key), arms) in staged {
        by_experiment
            .entry(experiment)
            .or_default()
            .push((key, arms));
    }
    let mut out = BTreeMap::new();
    for (experiment, mut keys) in by_experiment {
        let settings = experiments.settings(&experiment);
        if experiments.has_stages(&experiment) {
            for (key, mut arms) in keys {
                let Ok(k) = key.parse::<usize>() else {
                    continue;
                };
                arms.from_ms = k
                    .checked_sub(1)
                    .and_then(|i| settings.stages.get(i))
                    .map(|s| s.from_ms);
                arms.weights = settings.stage_weights(k).cloned();
                out.insert((experiment.clone(), key), (k, arms));
            }
            continue;
        }
        keys.sort_by(|(a, x), (b, y)| {
            (!a.is_empty(), x.from_ms, a).cmp(&(!b.is_empty(), y.from_ms, b))
        });
        let mut next = 1;
        for (key, mut arms) in keys {
            let k = if key.is_empty() {
                arms.from_ms = None;
                arms.weights = settings.weights.clone();
                0
            } else {
                arms.weights = serde_json::from_str(&key).ok();
                next += 1;
                next - 1
            };
            out.insert((experiment.clone(), key), (k, arms));
        }
    }
    out
}

fn arm(
    i: usize,
    cols: &ArmColumns,
    metrics: &[UserMetric],
    latencies: LatencyDistribution,
) -> ArmSummary {
    let users = cols.users[i];
    let n = users as f64;
    let sums: Vec<(f64, f64)> = cols
        .user_metrics
        .iter()
        .map(|(a, b)| (a[i], b[i]))
        .collect();
    ArmSummary {
        users,
        user_metrics: metric_columns::arm_stats(metrics, users, &sums),
        errors: RatioStats {
            n: cols.users_with_requests[i] as f64,
            sum_x: cols.errors[i],
            sum_y: cols.requests[i],
            sum_xx: cols.errors_sq[i],
            sum_yy: cols.requests_sq[i],
            sum_xy: cols.errors_requests[i],
        },
        conversion: MeanStats {
            n,
            sum: cols.conversions[i],
            sum_sq: cols.conversions[i],
        },
        revenue: MeanStats {
            n,
            sum: cols.revenue[i],
            sum_sq: cols.revenue_sq[i],
        },
        conversion_pre: CovariateSums {
            n,
            sx: cols.pre_conversions[i],
            sy: cols.conversions[i],
            sxx: cols.pre_conversions[i],
            syy: cols.conversions[i],
            sxy: cols.pre_and_post[i],
        },
        revenue_pre: CovariateSums {
            n,
            sx: cols.pre_revenue[i],
            sy: cols.revenue[i],
            sxx: cols.pre_revenue_sq[i],
            syy: cols.revenue_sq[i],
            sxy: cols.pre_revenue_revenue[i],
        },
        latencies: Arc::new(latencies),
    }
}

/// The numeric columns of one `analysis_arms` batch.
struct ArmColumns {
    users: Vec<u64>,
    users_with_requests: Vec<u64>,
    requests: Vec<f64>,
    errors: Vec<f64>,
    requests_sq: Vec<f64>,
    errors_sq: Vec<f64>,
    errors_requests: Vec<f64>,
    conversions: Vec<f64>,
    pre_conversions: Vec<f64>,
    pre_and_post: Vec<f64>,
    revenue: Vec<f64>,
    revenue_sq: Vec<f64>,
    pre_revenue: Vec<f64>,
    pre_revenue_sq: Vec<f64>,
    pre_revenue_revenue: Vec<f64>,
    /// Per user-defined metric: (Σx, Σx²), or (Σx·y, zeros) for a ratio.
    user_metrics: Vec<(Vec<f64>, Vec<f64>)>,
}

impl ArmColumns {
    fn read(c: &Columns<'_>, metrics: &[UserMetric]) -> Result<Self> {
        let user_metrics = metrics
            .iter()
            .enumerate()
            .map(|(i, m)| match m.definition {
                Definition::PerUser { .. } => Ok((
                    c.number(&metric_columns::column(i, "sum"))?,
                    c.number(&metric_columns::column(i, "sq"))?,
                )),
                Definition::Ratio { .. } => {
                    let products = c.number(&metric_columns::column(i, "product"))?;
                    let zeros = vec![0.0; products.len()];
                    Ok((products, zeros))
                }
            })
            .collect::<Result<_>>()?;
        Ok(ArmColumns {
            user_metrics,
            users: c.count("users")?,
            users_with_requests: c.count("users_with_requests")?,
            requests: c.number("requests")?,
            errors: c.number("errors")?,
            requests_sq: c.number("requests_sq")?,
            errors_sq: c.number("errors_sq")?,
            errors_requests: c.number("errors_requests")?,
            conversions: c.number("conversions")?,
            pre_conversions: c.number("pre_conversions")?,
            pre_and_post: c.number("pre_and_post_conversions")?,
            revenue: c.number("revenue")?,
            revenue_sq: c.number("revenue_sq")?,
            pre_revenue: c.number("pre_revenue")?,
            pre_revenue_sq: c.number("pre_revenue_sq")?,
            pre_revenue_revenue: c.number("pre_revenue_revenue")?,
        })
    }
}

/// Every experiment's summary (or only `only`'s, when given): one run of the plan.
pub async fn load(
    ctx: &SessionContext,
    only: &[String],
    experiments: &ExperimentsFile,
) -> Result<BTreeMap<String, ExperimentSummary>> {
    let caps = revenue_caps(ctx, only, experiments).await?;
    let mut out: BTreeMap<String, ExperimentSummary> = BTreeMap::new();
    let mut segments: Vec<(
        String,
        Option<String>,
        Dimension,
        String,
        String,
        ArmSummary,
    )> = Vec::new();
    let mut staged: BTreeMap<StageKey, StageArms> = BTreeMap::new();
    let metrics = experiments.metrics();
    let by_weights = weighted_experiments(ctx, only).await?;
    let stage_sql = queries::stage_sql(experiments.file_stages(), &by_weights);
    for batch in run(
        ctx,
        ARMS,
        &arms_sql(&caps, metrics, stage_sql.as_deref())?,
        only,
    )
    .await?
    {
        let c = Columns {
            query: ARMS,
            batch: &batch,
        };
        let cols = ArmColumns::read(&c, metrics)?;
        let (experiment, dimension) = (c.text("experiment")?, c.text("dimension")?);
        let (segment, variant) = (c.text("segment")?, c.text("variant")?);
        let (synthetic, multiple) = (c.flag("synthetic")?, c.flag("multiple_variants")?);
        let duplicates = c.count("duplicates")?;
        // Rows over all users have no stage key; with stages, the same users come again by
        // stage (and by `''` for an experiment without stages: left out).
        let (stage, stage_from): (Vec<Option<String>>, Vec<Option<i64>>) =
            if batch.schema().index_of(STAGE).is_ok() {
                let keys = c.get(STAGE, &DataType::Utf8)?;
                let from = c.get(STAGE_FROM, &DataType::Int64)?;
                (
                    keys.as_string::<i32>()
                        .iter()
                        .map(|k| k.map(str::to_string))
                        .collect(),
                    from.as_primitive::<Int64Type>().iter().collect(),
                )
            } else {
                (vec![None; batch.num_rows()], vec![None; batch.num_rows()])
            };
        let latency = c.distribution("latency")?;
        for (i, latencies) in latency.into_iter().enumerate() {
            let dim = Dimension::parse(&dimension[i]).ok_or_else(|| Error::Column {
                name: ARMS.into(),
                column: format!(
                    "dimension ({:?} is none of all, endpoint, region)",
                    dimension[i]
                ),
            })?;
            let unstaged = stage[i]
                .as_ref()
                .is_some_and(|k| k.is_empty() && by_weights.binary_search(&experiment[i]).is_err());
            if unstaged {
                continue;
            }
            if dim != Dimension::All {
                let a = arm(i, &cols, metrics, latencies);
                segments.push((
                    experiment[i].clone(),
                    stage[i].clone(),
                    dim,
                    segment[i].clone(),
                    variant[i].clone(),
                    a,
                ));
                continue;
            }
            let e = out.entry(experiment[i].clone()).or_default();
            if let Some(key) = &stage[i] {
                let s = staged
                    .entry((experiment[i].clone(), key.clone()))
                    .or_default();
                if let Some(from) = stage_from[i] {
                    s.from_ms = Some(s.from_ms.map_or(from, |f| f.min(from)));
                }
                if synthetic[i] {
                    continue;
                } else if multiple[i] {
                    s.multiple_variants += cols.users[i];
                } else {
                    s.variants
                        .insert(variant[i].clone(), arm(i, &cols, metrics, latencies));
                }
                continue;
            }
            e.duplicates_dropped += duplicates[i];
            if synthetic[i] {
                *e.synthetic.entry(variant[i].clone()).or_default() += cols.users[i];
            } else if multiple[i] {
                e.multiple_variants += cols.users[i];
            } else {
                e.variants
                    .insert(variant[i].clone(), arm(i, &cols, metrics, latencies));
            }
        }
    }
    for (experiment, e) in &mut out {
        e.revenue_cap = caps.get(experiment).copied();
    }
    let mut numbered = number_stages(staged, experiments);
    // A dimension with a single segment repeats the overall test: left out.
    let mut per_dimension: BTreeMap<(String, &'static str), std::collections::BTreeSet<String>> =
        BTreeMap::new();
    for (experiment, _, dim, segment, _, _) in &segments {
        per_dimension
            .entry((experiment.clone(), dim.name()))
            .or_default()
            .insert(segment.clone());
    }
    for (experiment, key, dim, segment, variant, a) in segments {
        let several = per_dimension[&(experiment.clone(), dim.name())].len() > 1;
        let Some(e) = out.get_mut(&experiment).filter(|_| several) else {
            continue;
        };
        let of = match key {
            None => &mut e.segments,
            Some(key) => match numbered.get_mut(&(experiment.clone(), key)) {
                Some((_, stage)) => &mut stage.segments,
                None => continue,
            },
        };
        of.entry((dim.name().to_string(), segment))
            .or_default()
            .insert(variant, a);
    }
    for ((experiment, _), (k, stage)) in numbered {
        if let Some(e) = out.get_mut(&experiment) {
            e.stages.insert(k, stage);
        }
    }
    for (experiment, row, duplicates) in side_traffic(ctx, only).await? {
        if let Some(e) = out.get_mut(&experiment) {
            e.modes.push(row);
            e.duplicates_dropped += duplicates;
        }
    }
    for e in out.values_mut() {
        e.modes.sort_by(|a, b| {
            (&a.variant, &a.mode, a.synthetic).cmp(&(&b.variant, &b.mode, b.synthetic))
        });
    }
    warn_of_empty_metrics(metrics, &out);
    Ok(out)
}

/// A metric whose kinds no user has (a misspelt kind, most often) is said at once, rather than
/// left to show as zeros and a guardrail that can never be bounded.
fn warn_of_empty_metrics(metrics: &[UserMetric], out: &BTreeMap<String, ExperimentSummary>) {
    for (i, m) in metrics.iter().enumerate() {
        let Definition::PerUser { kinds, .. } = &m.definition else {
            continue;
        };
        let seen = out.values().flat_map(|e| e.variants.values()).any(|arm| {
            matches!(arm.user_metrics.get(i), Some(UserMetricStats::Mean(s)) if s.sum != 0.0 || s.sum_sq != 0.0)
        });
        if !seen && !out.is_empty() {
            tracing::warn!(
                metric = %m.name, ?kinds,
                "no user has business events of the kinds of metric {} after first exposure: is a kind misspelt? `shiftright query --name business_kinds` lists the kinds present",
                m.name
            );
        }
    }
}

/// Each experiment's synthetic checks and shadow/mirror calls, with their resent copies.
async fn side_traffic(
    ctx: &SessionContext,
    only: &[String],
) -> Result<Vec<(String, ModeRow, u64)>> {
    let sql = queries::named(SIDE)
        .ok_or_else(|| Error::UnknownQuery(SIDE.into()))?
        .sql;
    let mut out = Vec::new();
    for batch in run(ctx, SIDE, sql, only).await? {
        let c = Columns {
            query: SIDE,
            batch: &batch,
        };
        let (experiment, variant, mode) =
            (c.text("experiment")?, c.text("variant")?, c.text("mode")?);
        let synthetic = c.flag("synthetic")?;
        let [users, requests, errors, failures, compared, mismatches, duplicates] = [
            "users",
            "requests",
            "errors",
            "failures",
            "compared",
            "mismatches",
            "duplicates",
        ]
        .map(|n| c.count(n));
        let (users, requests, errors, failures) = (users?, requests?, errors?, failures?);
        let (compared, mismatches, duplicates) = (compared?, mismatches?, duplicates?);
        for (i, latency) in c.distribution("latency")?.into_iter().enumerate() {
            let quantile = |nu: f64| latency.quantile(nu, 0.05).map(|q| q.estimate);
            let row = ModeRow {
                variant: variant[i].clone(),
                mode: mode[i].clone(),
                synthetic: synthetic[i],
                users: users[i],
                requests: requests[i],
                errors: errors[i],
                failures: failures[i],
                compared: compared[i],
                mismatches: mismatches[i],
                latency_p50: quantile(0.5),
                latency_p99: quantile(0.99),
            };
            out.push((experiment[i].clone(), row, duplicates[i]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_arms_cap_revenue_of_the_named_experiments_only() {
        let caps = BTreeMap::from([("it's".to_string(), 25.0)]);
        let sql = arms_sql(&caps, &[], None).unwrap();
        assert!(sql.contains("LEAST(revenue, CASE experiment WHEN 'it''s' THEN CAST(25.0 AS DOUBLE) ELSE revenue END) AS revenue"), "{sql}");
        assert!(sql.contains("LEAST(pre_revenue,"));
        let metrics = crate::config::ExperimentsFile::parse(
            "[[metrics]]\nname = \"odd\"\nkinds = [\"it's FROM analysis_users\"]",
        )
        .unwrap();
        let sql = arms_sql(&caps, metrics.metrics(), None).unwrap();
        assert!(sql.contains("'it''s FROM analysis_users'"), "{sql}");
        assert_eq!(sql.matches("FROM (SELECT").count(), 1, "{sql}");
        assert_eq!(
            arms_sql(&BTreeMap::new(), &[], None).unwrap(),
            queries::named(ARMS).unwrap().sql
        );
        let staged = arms_sql(&BTreeMap::new(), &[], Some("'1'")).unwrap();
        assert!(
            staged.contains("'1' AS rollout_stage FROM analysis_users")
                && staged.contains("MIN(assigned_at) AS stage_from")
                && staged.contains("GROUP BY GROUPING SETS ((experiment, dimension, segment, variant, synthetic, multiple_variants), (experiment, dimension, segment, variant, synthetic, multiple_variants, rollout_stage))"),
            "{staged}"
        );
    }
}
