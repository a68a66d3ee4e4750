//! A latency distribution that merges, fits a budget, and still gives the user-clustered quantile
//! CIs of section 3 and the rank test — in one pass over the requests.
//!
//! The outer CI of a quantile needs, at the estimate Q̂, the ratio metric F̂ = Σb_i/Σn_i over
//! users, b_i = the requests of user i at or below Q̂. Its delta-method variance needs Σb_i,
//! Σb_i·n_i and Σb_i². Kept per distinct value (or per bucket) as prefix sums they are known at
//! every threshold without a second pass: a request of rank r among its user's n latencies adds
//! 1 to Σb_i, n to Σb_i·n_i and 2r − 1 to Σb_i² (since b² = Σ_{r≤b} (2r − 1)) at every threshold
//! at or above it. So a distribution is a map value → (count, Σn, Σ(2r − 1)) plus two scalars
//! (users, Σn_i²), and merging two is adding them: what an aggregate's partial and final stages,
//! its spills and a cluster's shuffles need.
//!
//! **Exact** while the distinct values fit [`EXACT_BUDGET`]; past it every value goes to a
//! logarithmic bucket (DDSketch's mapping) whose representative is within [`RELATIVE_ERROR`] of
//! every value in it, so a quantile estimate and the CI's ends move by at most that relative
//! amount. Ranks are unaffected (counts stay exact); requests that share a bucket count as tied at
//! Q̂, which moves F̂ and the rank test by at most the mass of one bucket.

use std::collections::HashMap;

use super::mann_whitney::{mann_whitney_runs, MannWhitney};
use super::quantile::{clustered_f_variance, outer_quantile, QuantileEstimate};
use super::ratio::RatioStats;

/// Distinct values kept exactly before the distribution switches to buckets.
pub const EXACT_BUDGET: usize = 65_536;

/// The stated bound of bucketed values: |representative − value| ≤ 0.5% of the value.
pub const RELATIVE_ERROR: f64 = 0.005;

/// |values| below this share the zero bucket (latencies in ms: a nanosecond).
const ZERO_BAND: f64 = 1e-6;

/// Bucket keys are offset so that every bucket above [`ZERO_BAND`] has a positive key.
const KEY_OFFSET: i64 = 1 << 24;

/// The largest |bucket key| a finite value maps to (ln(f64::MAX)/ln γ ≈ 70,800 above the offset).
const MAX_BUCKET_KEY: u64 = KEY_OFFSET as u64 + 75_000;

/// γ = (1 + ε)/(1 − ε): bucket i holds (γ^(i−1), γ^i].
fn gamma() -> f64 {
    (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
}

/// One distinct value (or bucket): its requests, Σ n_user and Σ (2r − 1) over them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    pub count: u64,
    pub sum_n: u64,
    pub sum_sq: u64,
}

impl Cell {
    fn add(&mut self, o: &Cell) {
        self.count += o.count;
        self.sum_n += o.sum_n;
        self.sum_sq += o.sum_sq;
    }
}

/// How values are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Key = the value's bits in total order.
    Exact,
    /// Key = the value's logarithmic bucket.
    Buckets,
}

/// Total-order key of an exact value (−0 is 0).
fn exact_key(v: f64) -> i64 {
    let v = if v == 0.0 { 0.0 } else { v };
    let bits = v.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

fn exact_value(key: i64) -> f64 {
    let bits = key ^ (((key >> 63) as u64) >> 1) as i64;
    f64::from_bits(bits as u64)
}

fn bucket_key(v: f64) -> i64 {
    if v.abs() < ZERO_BAND {
        return 0;
    }
    let i = (v.abs().ln() / gamma().ln()).ceil() as i64 + KEY_OFFSET;
    if v > 0.0 {
        i
    } else {
        -i
    }
}

fn bucket_value(key: i64) -> f64 {
    if key == 0 {
        return 0.0;
    }
    let g = gamma();
    // Clamped: the top bucket's representative would overflow past f64::MAX.
    let rep =
        (2.0 * g.powi((key.unsigned_abs() as i64 - KEY_OFFSET) as i32) / (g + 1.0)).min(f64::MAX);
    if key > 0 {
        rep
    } else {
        -rep
    }
}

/// A distribution being built: mergeable, encodable, within its budget.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributionBuilder {
    mode: Mode,
    cells: HashMap<i64, Cell, foldhash::fast::FixedState>,
    /// Users with at least one value.
    users: u64,
    /// Σ n_i² over them.
    sum_n_sq: u64,
    budget: usize,
}

impl Default for DistributionBuilder {
    fn default() -> Self {
        Self::with_budget(EXACT_BUDGET)
    }
}

impl DistributionBuilder {
    /// An empty distribution exact up to `budget` distinct values.
    pub fn with_budget(budget: usize) -> Self {
        DistributionBuilder {
            mode: Mode::Exact,
            cells: HashMap::default(),
            users: 0,
            sum_n_sq: 0,
            budget,
        }
    }

    fn key(&self, v: f64) -> i64 {
        match self.mode {
            Mode::Exact => exact_key(v),
            Mode::Buckets => bucket_key(v),
        }
    }

    /// Adds one user's values (any order; non-finite values are not latencies and are dropped).
    pub fn add_user(&mut self, values: &[f64]) {
        let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        finite.sort_unstable_by(f64::total_cmp);
        self.add_sorted_user(&finite);
    }

    /// Adds one user's finite values, ascending.
    pub fn add_sorted_user(&mut self, sorted: &[f64]) {
        if sorted.is_empty() {
            return;
        }
        let n = sorted.len() as u64;
        self.users += 1;
        self.sum_n_sq += n * n;
        for (r, &v) in sorted.iter().enumerate() {
            let key = self.key(v);
            let cell = self.cells.entry(key).or_default();
            cell.count += 1;
            cell.sum_n += n;
            cell.sum_sq += 2 * r as u64 + 1;
        }
        self.fit();
    }

    /// Adds everything of `other`.
    pub fn merge(&mut self, mut other: DistributionBuilder) {
        if self.mode != other.mode {
            self.to_buckets();
            other.to_buckets();
        }
        self.users += other.users;
        self.sum_n_sq += other.sum_n_sq;
        for (k, c) in other.cells {
            self.cells.entry(k).or_default().add(&c);
        }
        self.fit();
    }

    fn fit(&mut self) {
        if self.mode == Mode::Exact && self.cells.len() > self.budget {
            self.to_buckets();
        }
    }

    /// Re-keys every exact value to its bucket (bucketed input stays as it is).
    fn to_buckets(&mut self) {
        if self.mode == Mode::Buckets {
            return;
        }
        let exact = std::mem::take(&mut self.cells);
        for (k, c) in exact {
            self.cells
                .entry(bucket_key(exact_value(k)))
                .or_default()
                .add(&c);
        }
        self.mode = Mode::Buckets;
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Approximate heap bytes held (for a memory pool's accounting).
    pub fn heap_bytes(&self) -> usize {
        self.cells.capacity() * (std::mem::size_of::<(i64, Cell)>() + 1)
    }

    /// The finished, ordered distribution.
    pub fn finish(&self) -> LatencyDistribution {
        let mut cells: Vec<(f64, Cell)> = self
            .cells
            .iter()
            .map(|(&k, &c)| {
                let v = match self.mode {
                    Mode::Exact => exact_value(k),
                    Mode::Buckets => bucket_value(k),
                };
                (v, c)
            })
            .collect();
        cells.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut cumulative = Vec::with_capacity(cells.len());
        let mut total = 0;
        for (_, c) in &cells {
            total += c.count;
            cumulative.push(total);
        }
        LatencyDistribution {
            mode: self.mode,
            cells,
            cumulative,
            users: self.users,
            sum_n_sq: self.sum_n_sq,
        }
    }

    const MAGIC: [u8; 4] = *b"SRD1";

    /// The distribution as bytes (an aggregate's state and result).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.cells.len() * 32);
        out.extend_from_slice(&Self::MAGIC);
        out.push(u8::from(self.mode == Mode::Buckets));
        out.extend_from_slice(&(self.budget as u64).to_le_bytes());
        out.extend_from_slice(&self.users.to_le_bytes());
        out.extend_from_slice(&self.sum_n_sq.to_le_bytes());
        out.extend_from_slice(&(self.cells.len() as u64).to_le_bytes());
        for (k, c) in &self.cells {
            for x in [*k as u64, c.count, c.sum_n, c.sum_sq] {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    /// Reads [`Self::encode`]'s bytes; `None` if they are not a distribution. The bytes may come
    /// from anyone (`latency_quantile` takes them in SQL): lengths are checked against the bytes
    /// before anything is allocated, and every value must be finite.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (magic, rest) = bytes.split_at_checked(4)?;
        if magic != Self::MAGIC {
            return None;
        }
        let (&mode, mut rest) = rest.split_first()?;
        let mode = match mode {
            0 => Mode::Exact,
            1 => Mode::Buckets,
            _ => return None,
        };
        fn take(rest: &mut &[u8]) -> Option<u64> {
            let (w, r) = rest.split_at_checked(8)?;
            *rest = r;
            Some(u64::from_le_bytes(w.try_into().ok()?))
        }
        let budget = take(&mut rest)? as usize;
        let users = take(&mut rest)?;
        let sum_n_sq = take(&mut rest)?;
        let len = usize::try_from(take(&mut rest)?).ok()?;
        if rest.len() != len.checked_mul(32)? {
            return None;
        }
        let mut word = || take(&mut rest);
        let mut cells: HashMap<i64, Cell, _> =
            HashMap::with_capacity_and_hasher(len, Default::default());
        for _ in 0..len {
            let key = word()? as i64;
            let value = match mode {
                Mode::Exact => exact_value(key),
                Mode::Buckets if key.unsigned_abs() <= MAX_BUCKET_KEY => bucket_value(key),
                Mode::Buckets => return None,
            };
            if !value.is_finite() {
                return None;
            }
            let cell = Cell {
                count: word()?,
                sum_n: word()?,
                sum_sq: word()?,
            };
            cells.entry(key).or_default().add(&cell);
        }
        Some(DistributionBuilder {
            mode,
            cells,
            users,
            sum_n_sq,
            budget,
        })
    }
}

/// A finished distribution: cells ascending, for quantiles, CIs, rank tests and charts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyDistribution {
    mode: Mode,
    cells: Vec<(f64, Cell)>,
    /// Requests in cells 0..=i.
    cumulative: Vec<u64>,
    users: u64,
    sum_n_sq: u64,
}

impl Default for Mode {
    fn default() -> Self {
        Mode::Exact
    }
}

impl LatencyDistribution {
    /// One user's values per entry (tests, simulations, charts built in Rust).
    pub fn from_users<'a>(per_user: impl IntoIterator<Item = &'a [f64]>) -> Self {
        let mut b = DistributionBuilder::default();
        for values in per_user {
            b.add_user(values);
        }
        b.finish()
    }

    /// Number of values (requests).
    pub fn len(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Users with at least one value.
    pub fn users(&self) -> u64 {
        self.users
    }

    /// Whether values were bucketed (within [`RELATIVE_ERROR`]).
    pub fn bucketed(&self) -> bool {
        self.mode == Mode::Buckets
    }

    /// (value, requests) ascending.
    pub fn counts(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.cells.iter().map(|(v, c)| (*v, c.count))
    }

    /// X_(rank), 1-based, clamped to the sample; NaN when it is empty.
    pub fn order_stat(&self, rank: f64) -> f64 {
        let r = (rank.max(1.0) as u64).min(self.len()).max(1);
        let i = self.cumulative.partition_point(|&c| c < r);
        self.cells
            .get(i)
            .or(self.cells.last())
            .map_or(f64::NAN, |c| c.0)
    }

    /// The ν-quantile and its (1 − alpha) user-clustered outer CI, as section 3 defines them:
    /// the estimate X_(⌈nν⌉); no CI until n > z²ν/(1−ν) and n > z²(1−ν)/ν, nor with fewer than
    /// two users or an invalid alpha. `None` when empty or ν is outside [0, 1].
    pub fn quantile(&self, nu: f64, alpha: f64) -> Option<QuantileEstimate> {
        outer_quantile(
            self.len(),
            self.users,
            nu,
            alpha,
            |rank| self.order_stat(rank),
            |q| self.f_variance(q, nu),
        )
    }

    /// σ_F² = ν(1−ν)/n times the design effect of clustering at Q̂ = `q` (see `quantile`'s
    /// module: Var_R(b, n) / Var_R(iid)), from the prefix sums at `q`.
    fn f_variance(&self, q: f64, nu: f64) -> f64 {
        let n = self.len() as f64;
        let upto = self.cells.partition_point(|(v, _)| *v <= q);
        let mut below = Cell::default();
        for (_, c) in &self.cells[..upto] {
            below.add(c);
        }
        let f_hat = RatioStats {
            n: self.users as f64,
            sum_x: below.count as f64,
            sum_y: n,
            sum_xx: below.sum_sq as f64,
            sum_yy: self.sum_n_sq as f64,
            sum_xy: below.sum_n as f64,
        };
        clustered_f_variance(&f_hat, nu)
    }

    /// This distribution with every value in its bucket (itself when already bucketed).
    fn bucketed_copy(&self) -> LatencyDistribution {
        if self.bucketed() {
            return self.clone();
        }
        let mut b = DistributionBuilder::with_budget(0);
        b.mode = Mode::Buckets;
        b.users = self.users;
        b.sum_n_sq = self.sum_n_sq;
        for (v, c) in &self.cells {
            b.cells.entry(bucket_key(*v)).or_default().add(c);
        }
        b.finish()
    }

    /// Mann–Whitney U of `treatment` against `self` (control), requests as independent; when
    /// either side is bucketed both are compared by bucket, values sharing one counted as ties.
    pub fn mann_whitney(&self, treatment: &LatencyDistribution) -> Option<MannWhitney> {
        if self.bucketed() != treatment.bucketed() {
            let (c, t) = (self.bucketed_copy(), treatment.bucketed_copy());
            return mann_whitney_runs(c.counts(), t.counts());
        }
        mann_whitney_runs(self.counts(), treatment.counts())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ClusteredSample;
    use proptest::prelude::*;

    fn users_of(seed: u64, users: usize) -> Vec<Vec<f64>> {
        // A deterministic, clustered, heavy-tailed sample: each user has its own speed.
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..users)
            .map(|_| {
                let speed = 5.0 + 200.0 * next().powi(3);
                let n = 1 + (next() * 12.0) as usize;
                (0..n)
                    .map(|_| speed * (0.2 + 3.0 * next().powi(2)))
                    .collect()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Exact mode is the sorted sample of section 3: every estimate, CI end and SE.
        #[test]
        fn exact_mode_equals_the_clustered_sample(
            per_user in prop::collection::vec(
                prop::collection::vec(prop_oneof![(0u32..40).prop_map(f64::from), 0.0f64..500.0], 0..8),
                0..120),
            nu in prop_oneof![Just(0.5), Just(0.9), Just(0.95), Just(0.99), 0.0f64..=1.0],
        ) {
            let sample = ClusteredSample::new(per_user.clone());
            let dist = LatencyDistribution::from_users(per_user.iter().map(Vec::as_slice));
            prop_assert_eq!(dist.len() as usize, sample.len());
            prop_assert_eq!(dist.users() as usize, sample.users());
            let (a, b) = (sample.quantile(nu, 0.05), dist.quantile(nu, 0.05));
            match (a, b) {
                (None, None) => {}
                (Some(a), Some(b)) => {
                    prop_assert_eq!(a.estimate, b.estimate);
                    prop_assert_eq!(a.ci_low, b.ci_low);
                    prop_assert_eq!(a.ci_high, b.ci_high);
                    match (a.se, b.se) {
                        (Some(x), Some(y)) => prop_assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0)),
                        (x, y) => prop_assert_eq!(x, y),
                    }
                }
                (a, b) => prop_assert!(false, "{a:?} vs {b:?}"),
            }
        }
    }

    #[test]
    fn sketch_mode_stays_within_the_stated_bound() {
        let per_user = users_of(7, 5_000);
        let exact = LatencyDistribution::from_users(per_user.iter().map(Vec::as_slice));
        assert!(!exact.bucketed());
        let mut small = DistributionBuilder::with_budget(1_000);
        for u in &per_user {
            small.add_user(u);
        }
        let sketch = small.finish();
        assert!(sketch.bucketed() && sketch.cells.len() < exact.cells.len() / 10);
        assert_eq!((sketch.len(), sketch.users()), (exact.len(), exact.users()));
        for nu in [0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999] {
            let (e, s) = (
                exact.quantile(nu, 0.05).unwrap(),
                sketch.quantile(nu, 0.05).unwrap(),
            );
            let close = |a: f64, b: f64| (a - b).abs() <= RELATIVE_ERROR * a.abs() * (1.0 + 1e-9);
            assert!(close(e.estimate, s.estimate), "p{nu}: {e:?} vs {s:?}");
            // CI ranks shift only by the few requests tied in Q̂'s bucket: the ends stay within
            // the bound of a neighbouring order statistic.
            let (el, sl) = (e.ci_low.unwrap(), s.ci_low.unwrap());
            let (eh, sh) = (e.ci_high.unwrap(), s.ci_high.unwrap());
            assert!((sl / el - 1.0).abs() < 0.011, "p{nu} low {el} vs {sl}");
            assert!((sh / eh - 1.0).abs() < 0.011, "p{nu} high {eh} vs {sh}");
        }
    }

    #[test]
    fn merging_in_any_order_gives_the_same_distribution() {
        let per_user = users_of(3, 3_000);
        let mut whole = DistributionBuilder::with_budget(9_000);
        let (mut left, mut right) = (
            DistributionBuilder::with_budget(9_000),
            DistributionBuilder::with_budget(9_000),
        );
        for (i, u) in per_user.iter().enumerate() {
            whole.add_user(u);
            if i % 3 == 0 {
                left.add_user(u)
            } else {
                right.add_user(u)
            }
        }
        // `left` is still exact, `right` bucketed: merging buckets both.
        assert_eq!((left.mode(), right.mode()), (Mode::Exact, Mode::Buckets));
        let decoded = DistributionBuilder::decode(&left.encode()).unwrap();
        assert_eq!(decoded, left);
        right.merge(decoded);
        assert_eq!(right.finish(), whole.finish());
        assert!(DistributionBuilder::decode(b"SRD1\x00short").is_none());
        // A length the bytes do not hold, an unknown mode, a non-finite value: refused.
        let mut header = b"SRD1\x00".to_vec();
        header.extend([0u8; 24]);
        let mut huge = header.clone();
        huge.extend(u64::MAX.to_le_bytes());
        assert!(DistributionBuilder::decode(&huge).is_none());
        let mut nan = header.clone();
        nan.extend(1u64.to_le_bytes());
        nan.extend(exact_key(f64::NAN).to_le_bytes());
        nan.extend([0u8; 24]);
        assert!(DistributionBuilder::decode(&nan).is_none());
        let mut moded = nan.clone();
        moded[4] = 7;
        assert!(DistributionBuilder::decode(&moded).is_none());
        assert_eq!(bucket_value(bucket_key(f64::MAX)), f64::MAX);
        assert!(DistributionBuilder::decode(b"nope").is_none());
    }

    #[test]
    fn keys_keep_the_order_of_values() {
        let values = [
            -1e9, -3.5, -1e-3, 0.0, 1e-9, 1e-3, 0.5, 1.0, 2.0, 1e6, 8.64e7,
        ];
        for w in values.windows(2) {
            assert!(exact_key(w[0]) < exact_key(w[1]));
            assert!(bucket_key(w[0]) <= bucket_key(w[1]));
            assert_eq!(exact_value(exact_key(w[0])), w[0]);
        }
        assert_eq!(exact_key(-0.0), exact_key(0.0));
        for v in [1e-3, 0.5, 1.0, 7.3, 250.0, 8.64e7, -42.0] {
            let rep = bucket_value(bucket_key(v));
            assert!(
                (rep - v).abs() <= RELATIVE_ERROR * v.abs() * (1.0 + 1e-12),
                "{v} -> {rep}"
            );
        }
    }

    #[test]
    fn the_rank_test_reads_the_distributions() {
        let control = [3.0, 4.4, 6.6, 7.7, 8.8, 9.9, 2.2];
        let treatment = [1.1, 2.2, 3.3, 4.4, 5.5, 2.2];
        let by_request =
            |v: &[f64]| LatencyDistribution::from_users(v.iter().map(std::slice::from_ref));
        let r = by_request(&control)
            .mann_whitney(&by_request(&treatment))
            .unwrap();
        let direct = crate::stats::mann_whitney_u(&control, &treatment).unwrap();
        assert_eq!(r, direct);
        assert_eq!(r.u, 8.5);
    }
}
