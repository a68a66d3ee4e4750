//! Folds the event tables (`request_scan`, `user_scan`) and gathers each experiment's users into
//! per-variant user lists with their latencies: the input every statistic is computed from (the
//! per-user figures are `queries/user_metrics.sql`'s). Users seen in two variants and synthetic
//! users are set aside and counted here, so no decision ever sees them.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::prelude::SessionContext;

use crate::error::Result;
use crate::fold::{ExperimentEvents, Folds};
use crate::stats::ClusteredSample;
use crate::{request_scan, segments, side_traffic, user_scan};

/// One user of one experiment, as the decision population sees it (the user's latencies are in
/// its variant's [`VariantUsers::latencies`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UserRow {
    /// Live requests.
    pub requests: u64,
    /// Of which status ≥ 500.
    pub errors: u64,
    /// Whether the user converted at or after first exposure.
    pub converted: bool,
    /// Business value at or after first exposure.
    pub revenue: f64,
    /// Whether the user converted before first exposure (CUPED's covariate for conversion).
    pub pre_converted: bool,
    /// Business value before first exposure (CUPED's covariate for revenue).
    pub pre_revenue: f64,
}

/// The users of one variant and their live latencies.
#[derive(Debug, Clone, Default)]
pub struct VariantUsers {
    pub users: Vec<UserRow>,
    /// Every live latency of these users, grouped by user (the sample numbers users itself).
    pub latencies: Arc<ClusteredSample>,
}

impl VariantUsers {
    /// Users with each one's latencies (tests and simulations build variants this way).
    pub fn from_rows(rows: Vec<(UserRow, Vec<f64>)>) -> Self {
        let (users, per_user): (Vec<UserRow>, Vec<Vec<f64>>) = rows.into_iter().unzip();
        VariantUsers {
            users,
            latencies: Arc::new(ClusteredSample::new(per_user)),
        }
    }
}

/// One experiment's users by variant, with the ones set aside.
#[derive(Debug, Clone, Default)]
pub struct ExperimentUsers {
    /// Non-synthetic users seen in exactly one variant, by variant.
    pub variants: BTreeMap<String, VariantUsers>,
    /// Synthetic users by variant (reported, never decided on).
    pub synthetic: BTreeMap<String, u64>,
    /// Non-synthetic users seen in more than one variant (excluded).
    pub multiple_variants: u64,
    /// Request and exposure events resent under an `event_id` already seen (counted once).
    pub duplicates_dropped: u64,
    /// Synthetic checks and shadow/mirror calls, by variant and mode (`side_traffic`).
    pub modes: Vec<crate::side_traffic::ModeRow>,
    /// Users by endpoint and by region (`segments`).
    pub segments: crate::segments::ExperimentSegments,
}

impl ExperimentUsers {
    /// Non-synthetic users, including those seen in two variants.
    pub fn real_users(&self) -> u64 {
        self.variants
            .values()
            .map(|v| v.users.len() as u64)
            .sum::<u64>()
            + self.multiple_variants
    }
}

/// Where each user of an experiment went: the variant (an index into `variants`) and the row there.
#[derive(Debug, Default)]
pub struct Assignment {
    /// Variant names and their users, in order of first sight.
    pub variants: Vec<(String, Vec<UserRow>)>,
    /// By user number of the fold: (variant, row), or `None` for users not decided on
    /// (synthetic, in two variants, never assigned).
    pub of_user: Vec<Option<(u32, u32)>>,
}

impl Assignment {
    fn push(&mut self, variant: &str, user: u32, row: UserRow) {
        let slot = match self.variants.iter().position(|(v, _)| v == variant) {
            Some(slot) => slot,
            None => {
                self.variants.push((variant.to_string(), Vec::new()));
                self.variants.len() - 1
            }
        };
        let rows = &mut self.variants[slot].1;
        self.of_user[user as usize] = Some((slot as u32, rows.len() as u32));
        rows.push(row);
    }

    /// Users decided on, in every variant.
    pub fn users(&self) -> usize {
        self.variants.iter().map(|(_, rows)| rows.len()).sum()
    }

    /// The variant and row of each live request's user.
    pub fn of_request<'a>(
        &'a self,
        events: &'a ExperimentEvents,
    ) -> impl Iterator<Item = Option<(u32, u32)>> + 'a {
        events.live.user.iter().map(|&u| self.of_user[u as usize])
    }
}

/// Loads every experiment's users (or only `only`'s, when given), from one pass over each event
/// table: their assignment, live requests and business events, each experiment's segments,
/// synthetic checks, shadow calls and resent duplicates.
pub async fn load(
    ctx: &SessionContext,
    only: &[String],
) -> Result<BTreeMap<String, ExperimentUsers>> {
    let started = std::time::Instant::now();
    let elapsed_ms = || started.elapsed().as_millis() as u64;
    let mut folds = Folds::default();
    request_scan::load(ctx, only, &mut folds).await?;
    tracing::info!(elapsed_ms = elapsed_ms(), "requests read");
    user_scan::load_exposures(ctx, only, &mut folds).await?;
    tracing::info!(elapsed_ms = elapsed_ms(), "exposures read");
    user_scan::load_business(ctx, &mut folds).await?;
    tracing::info!(elapsed_ms = elapsed_ms(), "business events read");
    let mut out = BTreeMap::new();
    for (experiment, events) in folds.into_map() {
        if events.user_states.iter().all(|s| s.variants.is_none()) {
            // Nothing to decide on: no exposure, no live request (as when `user_metrics` has no row).
            tracing::warn!(
                experiment,
                "only shadow or mirror calls, no assigned user: not analysed"
            );
            continue;
        }
        // The folds are the analysis' largest state: each is dropped once its users are built.
        out.insert(experiment, build(events));
    }
    tracing::info!(
        elapsed_ms = elapsed_ms(),
        "users, segments and side traffic built"
    );
    Ok(out)
}

/// One experiment's users from its folded events.
fn build(mut events: ExperimentEvents) -> ExperimentUsers {
    let mut users = ExperimentUsers {
        duplicates_dropped: events.request_duplicates,
        ..Default::default()
    };
    let mut assignment = Assignment {
        of_user: vec![None; events.user_states.len()],
        ..Default::default()
    };
    for (id, state) in events.user_states.iter().enumerate() {
        let Some((variant, _)) = state.variants else {
            continue;
        };
        users.duplicates_dropped += u64::from(state.exposure_duplicates);
        let variant = events.variants.get(variant);
        if state.synthetic {
            *users.synthetic.entry(variant.to_string()).or_default() += 1;
            continue;
        }
        if state.multiple_variants() {
            users.multiple_variants += 1;
            continue;
        }
        let b = state.business;
        let row = UserRow {
            requests: u64::from(state.live.requests),
            errors: u64::from(state.live.errors),
            converted: b.converted,
            revenue: b.revenue,
            pre_converted: b.pre_converted,
            pre_revenue: b.pre_revenue,
        };
        assignment.push(variant, id as u32, row);
    }
    users.modes = side_traffic::mode_rows(std::mem::take(&mut events.side));
    users.segments = segments::from_requests(&events, &assignment);
    let mut pairs: Vec<Vec<(f64, u32)>> = vec![Vec::new(); assignment.variants.len()];
    for (latency, to) in events
        .live
        .latency
        .iter()
        .zip(assignment.of_request(&events))
    {
        if let Some((slot, row)) = to {
            pairs[slot as usize].push((*latency, row));
        }
    }
    drop(events);
    for ((name, rows), pairs) in assignment.variants.into_iter().zip(pairs) {
        let latencies = Arc::new(ClusteredSample::from_pairs(pairs));
        users.variants.insert(
            name,
            VariantUsers {
                users: rows,
                latencies,
            },
        );
    }
    users
}
