//! What the statistics read: per experiment and arm, sums whose size does not grow with the
//! events — users, the per-user sums behind the delta method, Welch and CUPED, and the arm's
//! latency distribution — with the users set aside and the side traffic. The analysis' plan
//! (`read`) computes them from the Parquet; tests and simulations build them here from per-user
//! rows, through the same rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::stats::{CovariateSums, LatencyDistribution, MeanStats, RatioStats};

/// One user of one experiment, as the decision population sees it.
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

/// The users of one variant with each one's latencies, in Rust (tests and simulations).
#[derive(Debug, Clone, Default)]
pub struct UserRows {
    pub users: Vec<UserRow>,
    /// By user, in the order of `users`.
    pub latencies: Vec<Vec<f64>>,
}

impl UserRows {
    pub fn from_rows(rows: Vec<(UserRow, Vec<f64>)>) -> Self {
        let (users, latencies) = rows.into_iter().unzip();
        UserRows { users, latencies }
    }
}

/// One arm (a variant, or a variant within a segment): what every test of it reads.
#[derive(Debug, Clone, Default)]
pub struct ArmSummary {
    /// Users.
    pub users: u64,
    /// Errors over requests, per user (users with requests only).
    pub errors: RatioStats,
    /// Conversion 0/1 per user.
    pub conversion: MeanStats,
    /// Revenue per user, zeros included (capped when winsorized).
    pub revenue: MeanStats,
    /// (Converted before exposure, converted after) per user, for CUPED.
    pub conversion_pre: CovariateSums,
    /// (Revenue before exposure, revenue after) per user, for CUPED.
    pub revenue_pre: CovariateSums,
    /// Live latencies, clustered by user.
    pub latencies: Arc<LatencyDistribution>,
    /// The user-defined metrics (`[[metrics]]`), in the file's order; empty without them.
    pub user_metrics: Vec<crate::read::metric_columns::UserMetricStats>,
}

impl ArmSummary {
    /// The arm of `rows`, each user's revenue (before and after exposure) capped at
    /// `revenue_cap` when given: the sums `queries/analysis_arms.sql` computes.
    pub fn from_rows(rows: &UserRows, revenue_cap: Option<f64>) -> Self {
        let mut arm = ArmSummary {
            users: rows.users.len() as u64,
            ..Default::default()
        };
        let cap = |v: f64| revenue_cap.map_or(v, |cap| v.min(cap));
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        for u in &rows.users {
            if u.requests > 0 {
                arm.errors.push(u.errors as f64, u.requests as f64);
            }
            arm.conversion.push(flag(u.converted));
            arm.revenue.push(cap(u.revenue));
            arm.conversion_pre
                .push(flag(u.pre_converted), flag(u.converted));
            arm.revenue_pre.push(cap(u.pre_revenue), cap(u.revenue));
        }
        arm.latencies = Arc::new(LatencyDistribution::from_users(
            rows.latencies.iter().map(Vec::as_slice),
        ));
        arm
    }
}

/// One experiment's arms, with the users set aside.
#[derive(Debug, Clone, Default)]
pub struct ExperimentSummary {
    /// Non-synthetic users seen in exactly one variant, by variant.
    pub variants: BTreeMap<String, ArmSummary>,
    /// Synthetic users by variant (reported, never decided on).
    pub synthetic: BTreeMap<String, u64>,
    /// Non-synthetic users seen in more than one variant (excluded).
    pub multiple_variants: u64,
    /// Request and exposure events resent under an `event_id` already seen (counted once).
    pub duplicates_dropped: u64,
    /// Synthetic checks and shadow/mirror calls, by variant and mode (`side_traffic`).
    pub modes: Vec<ModeRow>,
    /// Arms by (dimension, segment), then variant (`segments`).
    pub segments: ExperimentSegments,
    /// Each user's revenue was capped here (winsorization), when configured.
    pub revenue_cap: Option<f64>,
    /// With rollout stages (in the file, or carried by the exposures), the same users again by
    /// the stage of their first exposure (`config::stages`); empty otherwise.
    pub stages: BTreeMap<usize, StageArms>,
}

/// The users of one rollout stage (first exposed while it was in force).
#[derive(Debug, Clone, Default)]
pub struct StageArms {
    /// When it started: the file's `from`, or the first assignment seen under its allocation;
    /// `None` for stage 0.
    pub from_ms: Option<i64>,
    /// Its expected allocation (the file's, or the one its exposures carried).
    pub weights: Option<BTreeMap<String, f64>>,
    /// Non-synthetic users seen in exactly one variant, by variant.
    pub variants: BTreeMap<String, ArmSummary>,
    /// Non-synthetic users seen in more than one variant.
    pub multiple_variants: u64,
    /// Arms by (dimension, segment), then variant.
    pub segments: ExperimentSegments,
}

impl StageArms {
    /// Non-synthetic users, including those seen in two variants.
    pub fn real_users(&self) -> u64 {
        self.variants.values().map(|v| v.users).sum::<u64>() + self.multiple_variants
    }
}

impl ExperimentSummary {
    /// Non-synthetic users, including those seen in two variants.
    pub fn real_users(&self) -> u64 {
        self.variants.values().map(|v| v.users).sum::<u64>() + self.multiple_variants
    }

    /// An experiment of per-user rows by variant, revenue winsorized at the `winsorize`
    /// percentile of every user's when given (tests and simulations).
    pub fn from_user_rows(variants: Vec<(&str, UserRows)>, winsorize: Option<f64>) -> Self {
        let revenue_cap = winsorize.and_then(|pct| {
            revenue_cap(
                variants
                    .iter()
                    .flat_map(|(_, r)| r.users.iter().map(|u| u.revenue)),
                pct,
            )
        });
        ExperimentSummary {
            variants: variants
                .iter()
                .map(|(n, rows)| (n.to_string(), ArmSummary::from_rows(rows, revenue_cap)))
                .collect(),
            revenue_cap,
            ..Default::default()
        }
    }
}

/// The `percentile` of `revenue` (one value a user): the winsorization cap, so that one whale
/// purchase cannot decide a revenue comparison. The value of rank ⌈n·percentile⌉; `None` without
/// finite values.
pub fn revenue_cap(revenue: impl Iterator<Item = f64>, percentile: f64) -> Option<f64> {
    let per_user: Vec<f64> = revenue.filter(|v| v.is_finite()).collect();
    let distribution = LatencyDistribution::from_users(per_user.iter().map(std::slice::from_ref));
    cap_of(&distribution, percentile)
}

/// The cap from a distribution of per-user revenue (one value a user).
pub fn cap_of(distribution: &LatencyDistribution, percentile: f64) -> Option<f64> {
    (!distribution.is_empty())
        .then(|| distribution.order_stat((distribution.len() as f64 * percentile).ceil()))
}

/// One segment's arms by variant (`analysis_arms` rows of dimension `endpoint` or `region`).
pub type SegmentUsers = BTreeMap<String, ArmSummary>;

/// Segments of one experiment, keyed by (dimension, segment).
pub type ExperimentSegments = BTreeMap<(String, String), SegmentUsers>;

/// A variant's requests of one mode, synthetic or not (one `analysis_side_traffic` row).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModeRow {
    pub variant: String,
    pub mode: String,
    pub synthetic: bool,
    pub users: u64,
    pub requests: u64,
    /// Status ≥ 500.
    pub errors: u64,
    /// Status ≥ 400 (a failed synthetic check).
    pub failures: u64,
    /// Requests that carried `shadow_match`.
    pub compared: u64,
    /// Of those, `shadow_match = false`.
    pub mismatches: u64,
    pub latency_p50: Option<f64>,
    pub latency_p99: Option<f64>,
}
