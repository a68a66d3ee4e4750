//! Latency quantiles (p50, p95, p99) with user-clustered confidence
//! intervals (section 3).
//!
//! The outer-CI method (GrowthBook, Eppo, Statsig) reads the interval off
//! the order statistics at ranks n(ν ± z σ_F). Its textbook σ_F² = ν(1−ν)/n
//! assumes independent requests; one slow user with many requests breaks
//! that and makes a healthy canary look like a p99 regression. Following
//! Deng, Knoblich & Lu (2018), F̂ = Σb_i/Σn_i (b_i = requests of user i at
//! or below Q̂) is a ratio metric over users, and its delta-method variance
//! carries the clustering.
//!
//! We apply the clustering as a design effect on the textbook variance:
//! σ_F² = ν(1−ν)/n · Var_R(b, n) / Var_R(iid), where Var_R(iid) =
//! F̂(1−F̂)/(n−1) is what the same ratio formula gives when every request is
//! its own user. To first order this is exactly Var(F̂) of the spec; unlike
//! the raw Var(F̂) it reduces exactly to ν(1−ν)/n with one request per user,
//! and it stays centred on ν when ties push F̂ above ν.

use super::dist::z_two_sided;
use super::horizon::Horizon;
use super::ratio::{fieller_upper, RatioStats};
use super::{valid_alpha, valid_se, Estimate};

/// A variant's latencies, grouped by user, every one kept: the direct reading of section 3 that
/// [`LatencyDistribution`](super::LatencyDistribution) is held to in its tests (the analysis
/// itself reads the distribution, which merges and fits a budget).
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusteredSample {
    /// Every observation, ascending.
    sorted: Vec<f64>,
    /// The user of each observation of `sorted`, numbered 0..users densely.
    owner: Vec<u32>,
    /// Observations per user.
    sizes: Vec<u32>,
}

/// A quantile estimate with its outer confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantileEstimate {
    pub nu: f64,
    pub n: usize,
    pub estimate: f64,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// (X_(U) − X_(L)) / (2z).
    pub se: Option<f64>,
}

#[cfg(test)]
impl ClusteredSample {
    /// Builds the sample from each user's observations, dropping non-finite values (NaN and ±∞
    /// are not latencies) and users left with none.
    pub fn new(per_user: Vec<Vec<f64>>) -> Self {
        let pairs = per_user
            .iter()
            .enumerate()
            .flat_map(|(user, values)| values.iter().map(move |&v| (v, user as u32)))
            .collect();
        Self::from_pairs(pairs)
    }

    /// Builds the sample from (observation, user) pairs in any order. User ids index a table of
    /// (greatest id + 1) entries, so they should be dense numbers (a user's number in its
    /// experiment, say). Non-finite values are dropped, and users left with none.
    pub fn from_pairs(mut pairs: Vec<(f64, u32)>) -> Self {
        pairs.retain(|(v, _)| v.is_finite());
        pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let bound = pairs
            .iter()
            .map(|&(_, u)| u as usize + 1)
            .max()
            .unwrap_or(0);
        let mut dense = vec![u32::MAX; bound];
        let mut sizes: Vec<u32> = Vec::new();
        let mut sorted = Vec::with_capacity(pairs.len());
        let mut owner = Vec::with_capacity(pairs.len());
        for (v, user) in pairs {
            let slot = &mut dense[user as usize];
            if *slot == u32::MAX {
                *slot = sizes.len() as u32;
                sizes.push(0);
            }
            sizes[*slot as usize] += 1;
            sorted.push(v);
            owner.push(*slot);
        }
        Self {
            sorted,
            owner,
            sizes,
        }
    }

    /// Every observation, ascending (for rank tests).
    pub fn values(&self) -> &[f64] {
        &self.sorted
    }

    /// Number of observations.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Number of users with at least one observation.
    pub fn users(&self) -> usize {
        self.sizes.len()
    }

    /// X_(rank) with a 1-based rank clamped to the sample.
    fn order_stat(&self, rank: f64) -> f64 {
        let last = self.sorted.len() - 1;
        let idx = (rank.max(1.0) as usize - 1).min(last);
        self.sorted[idx]
    }

    /// The ν-quantile of the sample and its (1 − alpha) outer CI.
    ///
    /// The estimate is the order statistic X_(⌈nν⌉) (the inverse empirical
    /// CDF). The CI and SE are `None` until n > z²·ν/(1−ν) and, for low
    /// quantiles, n > z²·(1−ν)/ν — below that the interval would run off the
    /// end of the sample — and also with fewer than two users (no
    /// between-user variance) or an invalid alpha. With strong clustering
    /// the ranks may still fall outside the sample; they are clamped to it.
    ///
    /// `None` when the sample is empty or ν is outside [0, 1].
    pub fn quantile(&self, nu: f64, alpha: f64) -> Option<QuantileEstimate> {
        if self.is_empty() || !(0.0..=1.0).contains(&nu) {
            return None;
        }
        outer_quantile(
            self.len() as u64,
            self.users() as u64,
            nu,
            alpha,
            |rank| self.order_stat(rank),
            |q| self.f_variance(q, nu),
        )
    }

    /// σ_F² = ν(1−ν)/n times the design effect of clustering at Q̂ = `q`.
    fn f_variance(&self, q: f64, nu: f64) -> f64 {
        let mut below = vec![0u32; self.sizes.len()];
        for &user in &self.owner[..self.sorted.partition_point(|&v| v <= q)] {
            below[user as usize] += 1;
        }
        let mut f_hat = RatioStats::default();
        for (b, size) in below.into_iter().zip(&self.sizes) {
            f_hat.push(f64::from(b), f64::from(*size));
        }
        clustered_f_variance(&f_hat, nu)
    }
}

/// The quantile ν of a sample of `n` values from `users` users, with its outer CI (section 3),
/// from the sample's order statistics (`order_stat`, 1-based rank) and σ_F² at an estimate
/// (`f_variance`): the estimate X_(⌈nν⌉); no CI until n > z²ν/(1−ν) and n > z²(1−ν)/ν, nor with
/// fewer than two users or an invalid alpha; `None` when empty or ν is outside [0, 1].
pub fn outer_quantile(
    n: u64,
    users: u64,
    nu: f64,
    alpha: f64,
    order_stat: impl Fn(f64) -> f64,
    f_variance: impl Fn(f64) -> f64,
) -> Option<QuantileEstimate> {
    if n == 0 || !(0.0..=1.0).contains(&nu) {
        return None;
    }
    let len = n;
    let n = n as f64;
    // The epsilon keeps n·ν = 900 from becoming rank 901 by rounding.
    let q = order_stat((n * nu - 1e-9).ceil());
    let mut out = QuantileEstimate {
        nu,
        n: len as usize,
        estimate: q,
        ci_low: None,
        ci_high: None,
        se: None,
    };
    if !valid_alpha(alpha) || nu <= 0.0 || nu >= 1.0 || users < 2 {
        return Some(out);
    }
    let z = z_two_sided(alpha);
    if n <= z * z * nu / (1.0 - nu) || n <= z * z * (1.0 - nu) / nu {
        return Some(out);
    }
    let sigma_f = f_variance(q).sqrt();
    let low = order_stat((n * (nu - z * sigma_f)).floor());
    let high = order_stat((n * (nu + z * sigma_f)).ceil());
    out.ci_low = Some(low);
    out.ci_high = Some(high);
    out.se = Some((high - low) / (2.0 * z));
    Some(out)
}

/// σ_F² = ν(1−ν)/n times the design effect of clustering, from F̂ = Σb_i/Σn_i as a ratio metric
/// over users (`f_hat`: x = b_i, y = n_i).
pub fn clustered_f_variance(f_hat: &RatioStats, nu: f64) -> f64 {
    let n = f_hat.sum_y;
    let f = f_hat.ratio();
    let iid = f * (1.0 - f) / (n - 1.0);
    // F̂ ∈ {0, 1} (every value tied at Q̂) carries no information about
    // clustering; fall back to independence rather than a zero width.
    let design_effect = if iid > 0.0 && n > 1.0 {
        f_hat.variance() / iid
    } else {
        1.0
    };
    nu * (1.0 - nu) / n * design_effect
}

fn both_se(c: &QuantileEstimate, t: &QuantileEstimate) -> Option<(f64, f64)> {
    match (c.se, t.se) {
        (Some(sc), Some(st)) if sc >= 0.0 && st >= 0.0 => Some((sc, st)),
        _ => None,
    }
}

/// Q_t − Q_c with SE = sqrt(se_t² + se_c²), normal two-sided.
/// `None` unless both SEs exist and at least one is positive.
pub fn quantile_diff(
    control: &QuantileEstimate,
    treatment: &QuantileEstimate,
    alpha: f64,
) -> Option<Estimate> {
    let (sc, st) = both_se(control, treatment)?;
    let se = (sc * sc + st * st).sqrt();
    Estimate::normal(treatment.estimate - control.estimate, se, alpha)
}

/// Q_t/Q_c − 1 by the delta method, normal two-sided. `None` when Q_c = 0
/// or an SE is missing.
pub fn quantile_relative(
    control: &QuantileEstimate,
    treatment: &QuantileEstimate,
    alpha: f64,
) -> Option<Estimate> {
    let (sc, st) = both_se(control, treatment)?;
    let (qc, qt) = (control.estimate, treatment.estimate);
    if qc == 0.0 {
        return None;
    }
    let var = st * st / (qc * qc) + qt * qt * sc * sc / qc.powi(4);
    Estimate::normal(qt / qc - 1.0, var.sqrt(), alpha)
}

/// One-sided p of H0: Q_t ≤ k·Q_c against H1: Q_t > k·Q_c (the rule
/// "canary p99 > 1.5 × baseline"), z = (Q_t − k Q_c)/sqrt(se_t² + k² se_c²).
/// `None` when an SE is missing or zero in both arms, or k is not positive.
pub fn quantile_margin_test(
    control: &QuantileEstimate,
    treatment: &QuantileEstimate,
    k: f64,
) -> Option<f64> {
    quantile_margin_test_at(control, treatment, k, 0.05, Horizon::Fixed)
}

/// [`quantile_margin_test`] under a [`Horizon`] (`alpha` tunes the sequence; unused by `Fixed`).
pub fn quantile_margin_test_at(
    control: &QuantileEstimate,
    treatment: &QuantileEstimate,
    k: f64,
    alpha: f64,
    horizon: Horizon,
) -> Option<f64> {
    let (sc, st) = both_se(control, treatment)?;
    if !(k.is_finite() && k > 0.0) {
        return None;
    }
    let denom = (st * st + k * k * sc * sc).sqrt();
    if !valid_se(denom) {
        return None;
    }
    Some(horizon.one_sided_p(treatment.estimate - k * control.estimate, denom, alpha))
}

/// One-sided (1 − alpha) upper bound of Q_t/Q_c by Fieller's method, the
/// inversion of [`quantile_margin_test`]. `None` when an SE is missing or
/// the bound is infinite (Q_c not significantly above zero).
pub fn quantile_ratio_upper_bound(
    control: &QuantileEstimate,
    treatment: &QuantileEstimate,
    alpha: f64,
) -> Option<f64> {
    quantile_ratio_upper_bound_at(control, treatment, alpha, Horizon::Fixed)
}

/// [`quantile_ratio_upper_bound`] under a [`Horizon`].
pub fn quantile_ratio_upper_bound_at(
    control: &QuantileEstimate,
    treatment: &QuantileEstimate,
    alpha: f64,
    horizon: Horizon,
) -> Option<f64> {
    let (sc, st) = both_se(control, treatment)?;
    if !valid_alpha(alpha) || control.estimate <= 0.0 {
        return None;
    }
    let z = horizon.one_sided_multiplier(alpha);
    fieller_upper(treatment.estimate, st * st, control.estimate, sc * sc, z)
}

#[cfg(test)]
mod tests {
    use super::super::assert_fig;
    use super::*;

    /// gbstats `tests/bayesian/test_tests.py` P90 statistics, SE from the
    /// outer interval as in section 3.
    fn gbstats_p90(n: usize, est: f64, low: f64, high: f64) -> QuantileEstimate {
        QuantileEstimate {
            nu: 0.9,
            n,
            estimate: est,
            ci_low: Some(low),
            ci_high: Some(high),
            se: Some((high - low) / (2.0 * z_two_sided(0.05))),
        }
    }

    fn gbstats_pair() -> (QuantileEstimate, QuantileEstimate) {
        (
            gbstats_p90(11054, 7.157987, 7.098780, 7.217195),
            gbstats_p90(10861, 7.694500, 7.641806, 7.747194),
        )
    }

    #[test]
    fn gbstats_p90_difference() {
        let (c, t) = gbstats_pair();
        let d = quantile_diff(&c, &t, 0.05).unwrap();
        assert_fig(d.estimate, "0.536512", "diff");
        assert_fig(d.ci_low, "0.457256", "ci low");
        assert_fig(d.ci_high, "0.615769", "ci high");
    }

    #[test]
    fn gbstats_p90_relative() {
        let (c, t) = gbstats_pair();
        let r = quantile_relative(&c, &t, 0.05).unwrap();
        assert_fig(r.estimate, "0.074953", "lift");
        assert_fig(r.ci_low, "0.063410", "ci low");
        assert_fig(r.ci_high, "0.086496", "ci high");
    }

    fn one_per_user(values: impl Iterator<Item = f64>) -> ClusteredSample {
        ClusteredSample::new(values.map(|v| vec![v]).collect())
    }

    #[test]
    fn one_request_per_user_is_the_unclustered_interval() {
        let s = one_per_user((1..=1000).rev().map(f64::from));
        let q = s.quantile(0.9, 0.05).unwrap();
        let expected = 0.9 * 0.1 / 1000.0;
        assert!((s.f_variance(q.estimate, 0.9) - expected).abs() < 1e-15);
        // Ranks ⌊1000(0.9 − 1.96·0.009487)⌋ = 881, ⌈918.59⌉ = 919.
        assert_eq!(q.estimate, 900.0);
        assert_eq!((q.ci_low, q.ci_high), (Some(881.0), Some(919.0)));
        assert_fig(
            q.se.unwrap(),
            &format!("{}", 38.0 / (2.0 * 1.959_964)),
            "se",
        );
        assert_eq!((q.n, s.users()), (1000, 1000));
    }

    #[test]
    fn clustered_users_widen_the_interval() {
        // The same 1000 values, but each user owns ten consecutive ones, so
        // whether a request is below p90 is decided per user.
        let users: Vec<Vec<f64>> = (0..100)
            .map(|u| (1..=10).map(|i| f64::from(u * 10 + i)).collect())
            .collect();
        let clustered = ClusteredSample::new(users);
        let iid = one_per_user((1..=1000).map(f64::from));
        let (c, i) = (
            clustered.quantile(0.9, 0.05).unwrap(),
            iid.quantile(0.9, 0.05).unwrap(),
        );
        assert_eq!(c.estimate, i.estimate);
        assert!(clustered.f_variance(c.estimate, 0.9) > 5.0 * iid.f_variance(i.estimate, 0.9));
        assert!(c.ci_low.unwrap() < i.ci_low.unwrap());
        assert!(c.ci_high.unwrap() > i.ci_high.unwrap());
        assert!(c.se.unwrap() > 2.0 * i.se.unwrap());
    }

    #[test]
    fn interval_needs_enough_observations() {
        // p99 needs n > 1.96²·99 ≈ 380.3.
        let small = one_per_user((1..=380).map(f64::from));
        let q = small.quantile(0.99, 0.05).unwrap();
        assert_eq!(q.estimate, 377.0);
        assert!(q.ci_low.is_none() && q.se.is_none());
        let big = one_per_user((1..=381).map(f64::from));
        assert!(big.quantile(0.99, 0.05).unwrap().se.is_some());
        // Symmetric for low quantiles.
        assert!(small.quantile(0.01, 0.05).unwrap().se.is_none());
    }

    #[test]
    fn degenerate_samples() {
        let empty = ClusteredSample::new(vec![vec![], vec![f64::NAN]]);
        assert!(empty.is_empty() && empty.users() == 0);
        assert!(empty.quantile(0.5, 0.05).is_none());
        let s = ClusteredSample::new(vec![vec![3.0, f64::NAN, 1.0], vec![2.0, f64::INFINITY]]);
        assert_eq!((s.len(), s.users()), (3, 2));
        assert_eq!(s.quantile(0.0, 0.05).unwrap().estimate, 1.0);
        assert_eq!(s.quantile(1.0, 0.05).unwrap().estimate, 3.0);
        assert!(s.quantile(1.5, 0.05).is_none());
        assert!(s.quantile(f64::NAN, 0.05).is_none());
        // A single user: no between-user variance, no interval.
        let single = ClusteredSample::new(vec![(1..=1000).map(f64::from).collect()]);
        assert!(single.quantile(0.5, 0.05).unwrap().se.is_none());
        // All values tied: zero-width interval and no test.
        let flat = one_per_user(std::iter::repeat_n(5.0, 500));
        let q = flat.quantile(0.5, 0.05).unwrap();
        assert_eq!(q.se, Some(0.0));
        assert!(quantile_diff(&q, &q, 0.05).is_none());
    }

    #[test]
    fn margin_test_and_bound_agree() {
        let (c, t) = gbstats_pair();
        let ub = quantile_ratio_upper_bound(&c, &t, 0.05).unwrap();
        assert!(ub > t.estimate / c.estimate);
        assert_fig(
            quantile_margin_test(&c, &t, ub).unwrap(),
            "0.9500",
            "p at bound",
        );
        // 7.69 vs 1.5 × 7.16: far from a p99-style breach.
        assert!(quantile_margin_test(&c, &t, 1.5).unwrap() > 0.999);
        // 7.69 vs 1.0 × 7.16: a clear increase.
        assert!(quantile_margin_test(&c, &t, 1.0).unwrap() < 1e-6);
        let no_se = QuantileEstimate { se: None, ..c };
        assert!(quantile_margin_test(&no_se, &t, 1.5).is_none());
        assert!(quantile_ratio_upper_bound(&no_se, &t, 0.05).is_none());
        assert!(quantile_relative(&QuantileEstimate { estimate: 0.0, ..c }, &t, 0.05).is_none());
    }
}
