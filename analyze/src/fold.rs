//! The analysis' state: every experiment's users and live requests, folded from one pass over each
//! event table.
//!
//! An analysis needs the events deduplicated by `event_id` and gathered per user (assignment,
//! live requests, business events) and per segment. In SQL that took one group per event, then
//! one per user and segment, each holding its strings: hundreds of bytes per request, and at 10⁸
//! requests it did not fit in 16 GB. So the scans (`queries/*_scan.sql`) only project columns, and
//! the folds (`request_scan`, `user_scan`) keep what the statistics need as numbers: users and
//! names numbered by an [`Interner`], a fixed-size state per user, and 21 bytes per live request.
//! `queries/user_metrics.sql` states the same per-user figures in SQL, for users and for the test
//! that holds the two to agreement.
//!
//! Resent copies are recognised by a 64-bit fingerprint of their key ([`Fingerprints`]), 8 bytes
//! an event instead of the id itself. Two distinct events share a fingerprint with probability
//! about n²/2⁶⁵ (3·10⁻⁶ at 10⁷ events, 3·10⁻⁴ at 10⁸); one would then be dropped as a copy.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use hashbrown::HashTable;

use crate::error::{Error, Result};
use crate::interner::{hasher, Interner};
use crate::queries;
use crate::stats::ClusteredSample;

/// One user's live, non-synthetic requests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LiveTally {
    pub requests: u32,
    /// Status ≥ 500.
    pub errors: u32,
}

/// One user's business events, split at the first exposure.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BusinessTally {
    /// A conversion or purchase at or after first exposure.
    pub converted: bool,
    /// Business value at or after first exposure.
    pub revenue: f64,
    /// A conversion or purchase before first exposure (CUPED's covariate).
    pub pre_converted: bool,
    /// Business value before first exposure (CUPED's covariate).
    pub pre_revenue: f64,
}

/// One user of one experiment, as the folds leave it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UserState {
    /// Least and greatest variant named by the user's exposures and live requests (numbers in
    /// [`ExperimentEvents::variants`], compared by name); `None` for a user seen only in shadow
    /// or mirror calls, who is not assigned.
    pub variants: Option<(u32, u32)>,
    /// Any exposure or live request was synthetic.
    pub synthetic: bool,
    /// First live request (synthetic or not), ms since the epoch.
    pub first_live: Option<i64>,
    /// First exposure event, ms since the epoch.
    pub exposed_at: Option<i64>,
    /// Resent copies of the user's exposure events.
    pub exposure_duplicates: u32,
    pub live: LiveTally,
    pub business: BusinessTally,
}

impl UserState {
    /// When the user was first exposed: its first exposure event, or its first live request when
    /// it has no exposure event.
    pub fn first_exposure(&self) -> Option<i64> {
        self.exposed_at.or(self.first_live)
    }

    /// Whether exposures and live requests named more than one variant.
    pub fn multiple_variants(&self) -> bool {
        self.variants.is_some_and(|(lo, hi)| lo != hi)
    }
}

/// Every live, non-synthetic request of one experiment, a column each (index = request).
#[derive(Debug, Default)]
pub struct LiveRequests {
    pub latency: Vec<f64>,
    /// Into [`ExperimentEvents::users`].
    pub user: Vec<u32>,
    /// Into [`ExperimentEvents::endpoints`].
    pub endpoint: Vec<u32>,
    /// Into [`ExperimentEvents::regions`].
    pub region: Vec<u32>,
    /// Status ≥ 500.
    pub error: Vec<bool>,
}

impl LiveRequests {
    pub fn len(&self) -> usize {
        self.latency.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latency.is_empty()
    }
}

/// Synthetic checks, or shadow or mirror calls, of one variant (see `side_traffic`).
#[derive(Debug, Default)]
pub struct SideGroup {
    pub requests: u64,
    /// Status ≥ 500.
    pub errors: u64,
    /// Status ≥ 400.
    pub failures: u64,
    /// Requests that carried `shadow_match`.
    pub compared: u64,
    /// Of those, `shadow_match = false`.
    pub mismatches: u64,
    /// (latency, user) of each request.
    pub latencies: Vec<(f64, u32)>,
}

impl SideGroup {
    /// The requests' latencies grouped by user.
    pub fn sample(&mut self) -> ClusteredSample {
        ClusteredSample::from_pairs(std::mem::take(&mut self.latencies))
    }
}

/// The deduplicated events of one experiment.
#[derive(Debug, Default)]
pub struct ExperimentEvents {
    pub users: Interner,
    /// By user number.
    pub user_states: Vec<UserState>,
    pub live: LiveRequests,
    pub variants: Interner,
    pub endpoints: Interner,
    pub regions: Interner,
    /// Synthetic users' live requests, and every shadow and mirror call, by (variant, mode,
    /// synthetic); a handful of groups, searched in order.
    pub side: Vec<((String, String, bool), SideGroup)>,
    /// Extra copies of resent request events (dropped).
    pub request_duplicates: u64,
}

impl ExperimentEvents {
    /// The number of `user_id`, with a state.
    pub fn user(&mut self, user_id: &str) -> u32 {
        let id = self.users.intern(user_id);
        if self.user_states.len() <= id as usize {
            self.user_states.push(UserState::default());
        }
        id
    }

    /// Counts `variant` among those that named user `id`, and `synthetic` among its flags.
    pub fn assign(&mut self, id: u32, variant: &str, synthetic: bool) {
        let variant = self.variants.intern(variant);
        let names = &self.variants;
        let state = &mut self.user_states[id as usize];
        state.synthetic |= synthetic;
        let (lo, hi) = state.variants.get_or_insert((variant, variant));
        if variant != *lo && names.get(variant) < names.get(*lo) {
            *lo = variant;
        }
        if variant != *hi && names.get(variant) > names.get(*hi) {
            *hi = variant;
        }
    }

    /// The side group of (variant, mode, synthetic), created empty if new.
    pub fn side_group(&mut self, variant: &str, mode: &str, synthetic: bool) -> &mut SideGroup {
        let found = self
            .side
            .iter()
            .position(|((v, m, s), _)| v == variant && m == mode && *s == synthetic);
        let at = found.unwrap_or_else(|| {
            let key = (variant.to_string(), mode.to_string(), synthetic);
            self.side.push((key, SideGroup::default()));
            self.side.len() - 1
        });
        &mut self.side[at].1
    }
}

/// Every experiment's events.
#[derive(Debug, Default)]
pub struct Folds {
    /// A few experiments, searched in order; consecutive rows usually share one (a Parquet file
    /// holds one), so the last one found is tried first.
    experiments: Vec<(String, ExperimentEvents)>,
    last: usize,
}

impl Folds {
    /// The experiment `name`, created empty if new.
    pub fn experiment(&mut self, name: &str) -> &mut ExperimentEvents {
        if self
            .experiments
            .get(self.last)
            .is_none_or(|(n, _)| n != name)
        {
            self.last = match self.experiments.iter().position(|(n, _)| n == name) {
                Some(at) => at,
                None => {
                    self.experiments
                        .push((name.to_string(), ExperimentEvents::default()));
                    self.experiments.len() - 1
                }
            };
        }
        &mut self.experiments[self.last].1
    }

    /// Every experiment, in order of first sight.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut ExperimentEvents)> {
        self.experiments.iter_mut().map(|(n, e)| (n.as_str(), e))
    }

    /// Each experiment's events, by name.
    pub fn into_map(self) -> BTreeMap<String, ExperimentEvents> {
        self.experiments.into_iter().collect()
    }
}

/// Fingerprints of the events seen in one table.
pub struct Fingerprints(HashTable<u64>);

impl Fingerprints {
    /// A table for about `events` events, sized once (doubling would hold the old and the new
    /// table at once).
    pub fn with_capacity(events: usize) -> Self {
        Fingerprints(HashTable::with_capacity(events))
    }

    /// Whether `key` is seen for the first time (and remembers it).
    pub fn first_time(&mut self, key: impl Hash) -> bool {
        let fingerprint = hasher().hash_one(key);
        if self.0.find(fingerprint, |&f| f == fingerprint).is_some() {
            return false;
        }
        self.0.insert_unique(fingerprint, fingerprint, |&f| f);
        true
    }
}

/// Runs scan `query` (restricted to the experiments in `only`, when given and `restrict`) and
/// hands each batch to `fold` with the table's fingerprints.
pub async fn scan(
    ctx: &SessionContext,
    query: &str,
    only: &[String],
    restrict: bool,
    mut fold: impl FnMut(&RecordBatch, &mut Fingerprints) -> Result<()>,
) -> Result<()> {
    let sql = if restrict {
        queries::restricted(query, only)?
    } else {
        let named = queries::named(query).ok_or_else(|| Error::UnknownQuery(query.into()))?;
        named.sql.to_string()
    };
    // Counted first (from Parquet metadata, mostly) to size the fingerprint table.
    let counted = queries::plan_read_only(
        ctx,
        query,
        &format!("SELECT COUNT(*) AS n FROM ({sql}) AS scan"),
    )
    .await?
    .collect()
    .await
    .map_err(Error::query(query))?;
    let events = counted
        .first()
        .and_then(|b| b.column(0).as_primitive_opt::<Int64Type>())
        .map_or(0, |n| n.value(0).max(0) as usize);
    let mut seen = Fingerprints::with_capacity(events);
    let frame = queries::plan_read_only(ctx, query, &sql).await?;
    let mut stream = frame.execute_stream().await.map_err(Error::query(query))?;
    while let Some(batch) = stream.next().await {
        fold(&batch.map_err(Error::query(query))?, &mut seen)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_first_sightings() {
        let mut seen = Fingerprints::with_capacity(0);
        assert!(seen.first_time(("e", "r1")));
        assert!(seen.first_time(("f", "r1")));
        assert!(!seen.first_time(("e", "r1")));
    }

    #[test]
    fn a_users_variants_are_the_least_and_greatest_by_name() {
        let mut e = ExperimentEvents::default();
        let u = e.user("u1");
        assert_eq!(e.user("u1"), u);
        e.assign(u, "v2", false);
        e.assign(u, "v1", false);
        e.assign(u, "v3", true);
        let state = e.user_states[u as usize];
        let (lo, hi) = state.variants.unwrap();
        assert_eq!((e.variants.get(lo), e.variants.get(hi)), ("v1", "v3"));
        assert!(state.synthetic && state.multiple_variants());
    }
}
