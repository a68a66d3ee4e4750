//! Incremental evaluation for a live server: each evaluation reads only the event files that are
//! new since the last one, for the part of the analysis that costs.
//!
//! Why this is exact: the ingest's files are immutable once renamed into place, and a user's
//! `analysis_users` rows are a function of all its events, which `user_experiments` gathers into a
//! state that merges (its events as bytes, resent copies dropped by fingerprint, the first
//! exposure kept as the minimum). So the state of every user over files A ∪ B is the merge of its
//! state over A, kept from the last evaluation, with its state over B, the new files. What is
//! emitted from the merged states is what `user_experiments` would have emitted over A ∪ B
//! (`user_state::tests` holds it on random events, `read::fold_tests` through whole reports).
//!
//! An evaluation then costs the new files' events plus one pass over the kept states (as many as
//! the window's users, not its events). The fold starts again from nothing when its window
//! changes (a new revision), when a file it folded is gone (compacted or deleted), and when its
//! states would take more than half of the engine's memory limit (it is then not kept, and each
//! evaluation reads its window whole, as before). Still read whole each time, as statistics
//! alone allow no less: the newest event time (the `ts` column), which experiments' exposures
//! carry `weights`, and the synthetic and shadow traffic (Parquet's row-group statistics skip
//! the groups without any).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionContext};
use shiftright_schemas::Table;

use crate::error::{Error, Result};
use crate::read::engine::Engine;
use crate::read::queries;
use crate::read::tables::Files;
use crate::read::user_state::Form;

/// The view whose rows a fold computes.
pub const USERS: &str = "analysis_users";
/// The table of folded states a session's `analysis_users` reads from.
const STATES: &str = "folded_user_states";
/// The call of `analysis_users.sql` that a fold splits, up to its closing `AS users`.
const CALL: &str = "SELECT user_id, user_experiments(";
const CALL_END: &str = ") AS users";

/// One experiment's users, folded file by file.
#[derive(Debug, Default)]
pub struct Folded {
    /// The window the states are of: `Some(from_ms)` once anything was folded.
    window: Option<Option<i64>>,
    /// The event files whose events the states hold.
    files: BTreeSet<PathBuf>,
    /// One row per user: `user_id` and `state`.
    states: Vec<RecordBatch>,
    schema: Option<SchemaRef>,
}

/// What one fold did, for the server's log and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldStep {
    /// Event files read this time.
    pub new_files: usize,
    /// Event files whose users were kept from before.
    pub kept_files: usize,
    /// Users held after the step.
    pub users: usize,
    /// Whether the fold started again from nothing.
    pub restarted: bool,
}

impl Folded {
    /// Bytes the kept states take.
    pub fn bytes(&self) -> usize {
        self.states
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum()
    }

    /// Users held.
    pub fn users(&self) -> usize {
        self.states.iter().map(RecordBatch::num_rows).sum()
    }

    /// The states, for a session's `analysis_users` (`tables::Users::States`).
    pub(crate) fn users_source(&self) -> Option<(SchemaRef, Vec<RecordBatch>)> {
        Some((self.schema.clone()?, self.states.clone()))
    }

    /// Brings the states up to `listed` (the files a session over the window reads): the new event
    /// files' users' states are computed (`session_of_new` gives the session over those files)
    /// and merged with those kept.
    pub(crate) async fn advance<F, Fut>(
        &mut self,
        window: Option<i64>,
        listed: &Files,
        engine: &Engine,
        experiment: &str,
        session_of_new: F,
    ) -> Result<FoldStep>
    where
        F: FnOnce(Files) -> Fut,
        Fut: std::future::Future<Output = Result<SessionContext>>,
    {
        let events: BTreeSet<&PathBuf> = Table::EVENTS
            .iter()
            .filter_map(|t| listed.get(t.name()))
            .flatten()
            .collect();
        let restarted = self.window != Some(window)
            || self.files.iter().any(|f| !events.contains(f))
            || self.bytes() as u64 > engine.memory_limit / 2;
        if restarted {
            *self = Folded {
                window: Some(window),
                ..Folded::default()
            };
        }
        let mut new: Files = Files::new();
        for t in Table::EVENTS {
            if let Some(paths) = listed.get(t.name()) {
                let fresh: Vec<PathBuf> = paths
                    .iter()
                    .filter(|p| !self.files.contains(*p))
                    .cloned()
                    .collect();
                new.insert(t.name(), fresh);
            }
        }
        let new_files: usize = new.values().map(Vec::len).sum();
        let kept_files = self.files.len();
        if new_files > 0 {
            let names: Vec<PathBuf> = new.values().flatten().cloned().collect();
            let ctx = session_of_new(new).await?;
            let (schema, fresh) = states_of(&ctx, experiment).await?;
            let states = if self.states.is_empty() {
                fresh
            } else {
                let mut all = std::mem::take(&mut self.states);
                all.extend(fresh);
                merge(engine, schema.clone(), all).await?
            };
            self.states = states;
            self.schema = Some(schema);
            self.files.extend(names);
        }
        Ok(FoldStep {
            new_files,
            kept_files,
            users: self.users(),
            restarted,
        })
    }
}

/// The inner call of `analysis_users.sql`: `SELECT user_id, user_experiments(…) AS per_user
/// FROM (…events…) AS events GROUP BY user_id`, and where it sits in the text.
fn split_users_sql() -> Result<(&'static str, &'static str, &'static str)> {
    let sql = queries::named(USERS)
        .ok_or_else(|| Error::UnknownQuery(USERS.into()))?
        .sql;
    let start = sql.find(CALL);
    let end = sql.rfind(CALL_END);
    match (start, end) {
        (Some(start), Some(end)) if start < end => {
            Ok((&sql[..start], &sql[start..end], &sql[end..]))
        }
        _ => Err(Error::Engine(format!(
            "queries/analysis_users.sql no longer has its per-user call ({CALL:?} … {CALL_END:?}) \
             that a live server folds"
        ))),
    }
}

/// Each user's state over the events of the session's tables.
fn states_sql() -> Result<String> {
    let (_, call, _) = split_users_sql()?;
    let call = call
        .replacen(
            CALL,
            &format!("SELECT user_id, {}(", Form::EventsToState.name()),
            1,
        )
        .replacen(" AS per_user", " AS state", 1);
    Ok(call)
}

/// `analysis_users` over the folded states instead of the events.
pub(crate) fn users_from_states_sql() -> Result<String> {
    let (head, _, tail) = split_users_sql()?;
    Ok(format!(
        "{head}SELECT user_id, {}(state) AS per_user FROM {STATES} GROUP BY user_id\n    {tail}",
        Form::StatesToRows.name()
    ))
}

/// Registers `states` as the table [`users_from_states_sql`] reads.
pub(crate) fn register_states(
    ctx: &SessionContext,
    schema: SchemaRef,
    states: Vec<RecordBatch>,
) -> Result<()> {
    let table = MemTable::try_new(schema, vec![states]).map_err(Error::query(STATES))?;
    ctx.register_table(STATES, Arc::new(table))
        .map_err(Error::query(STATES))?;
    Ok(())
}

/// The states of the users with events in `ctx`, from `experiment`'s requests and exposures
/// (and every business event).
async fn states_of(
    ctx: &SessionContext,
    experiment: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    const NAME: &str = "analysis_users (folded)";
    let frame = queries::plan_read_only(ctx, NAME, &states_sql()?).await?;
    let (state, plan) = frame.into_parts();
    let plan = crate::read::load::scope_inputs(plan, &[experiment.to_string()])
        .map_err(Error::query(NAME))?;
    let frame = DataFrame::new(state, plan);
    let schema: SchemaRef = frame.schema().inner().clone();
    let batches = frame.collect().await.map_err(Error::query(NAME))?;
    Ok((schema, batches))
}

/// One state per user from `states` (several rows of a user merged).
async fn merge(
    engine: &Engine,
    schema: SchemaRef,
    states: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    const NAME: &str = "analysis_users (merging folded states)";
    let ctx = engine.context()?;
    register_states(&ctx, schema, states)?;
    let sql = format!(
        "SELECT user_id, {}(state) AS state FROM {STATES} GROUP BY user_id",
        Form::StatesToState.name()
    );
    queries::plan_read_only(&ctx, NAME, &sql)
        .await?
        .collect()
        .await
        .map_err(Error::query(NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_query_splits_at_its_per_user_call() {
        let states = states_sql().unwrap();
        assert!(
            states.starts_with("SELECT user_id, user_experiments_state(")
                && states.contains("AS state")
                && states.trim_end().ends_with("GROUP BY user_id"),
            "{states}"
        );
        let users = users_from_states_sql().unwrap();
        assert!(
            users.contains("user_experiments_of_states(state) AS per_user FROM folded_user_states")
                && !users.contains("user_experiments("),
            "{users}"
        );
    }
}
