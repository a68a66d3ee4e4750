//! Mann–Whitney U (Wilcoxon rank-sum) test of two latency distributions.
//!
//! Quantile tests look at one point of the distribution; the rank-sum test
//! asks whether canary latencies are stochastically larger anywhere. It is
//! what Kayenta's classifier uses, so offering it lets results be compared
//! with an existing Spinnaker canary setup. The normal approximation with
//! tie correction and continuity correction matches R's `wilcox.test`
//! (`exact = FALSE, correct = TRUE`) and scipy's `mannwhitneyu(...,
//! method="asymptotic")`; latency samples are far too large and too tied
//! for the exact distribution anyway.
//!
//! Like any request-level test, it treats requests as independent; use it
//! as a descriptive signal, with the clustered quantile tests for verdicts.

use super::dist::{normal_cdf, normal_sf};

/// Result of the rank-sum test, treatment against control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the treatment sample: pairs with treatment > control, ties ½.
    pub u: f64,
    /// (U − n_t n_c / 2) / σ_U without continuity correction; positive
    /// when treatment tends to be larger.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// One-sided p-value for H1: treatment stochastically greater.
    pub p_greater: f64,
    /// One-sided p-value for H1: treatment stochastically smaller.
    pub p_less: f64,
}

/// The finite values of `values`, ascending: borrowed when they already are, sorted otherwise.
fn finite_ascending(values: &[f64]) -> std::borrow::Cow<'_, [f64]> {
    if values.is_sorted_by(|a, b| a.total_cmp(b).is_le()) {
        // Ascending by total order: −NaN, −∞ first and +∞, +NaN last, finite values between.
        let start = values.partition_point(|v| !v.is_finite() && v.is_sign_negative());
        let end = start + values[start..].partition_point(|v| v.is_finite());
        return values[start..end].into();
    }
    let mut owned: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    owned.sort_by(f64::total_cmp);
    owned.into()
}

/// Rank-sum test of `treatment` against `control`. Non-finite values are
/// dropped. `None` when either sample is empty or every value is tied (the
/// variance of U is then zero).
pub fn mann_whitney_u(control: &[f64], treatment: &[f64]) -> Option<MannWhitney> {
    let (c, t) = (finite_ascending(control), finite_ascending(treatment));
    mann_whitney_runs(runs(&c), runs(&t))
}

/// Runs of equal values of an ascending slice: (value, how many).
fn runs(sorted: &[f64]) -> impl Iterator<Item = (f64, u64)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let &v = sorted.get(i)?;
        let n = sorted[i..].partition_point(|&x| x == v);
        i += n;
        Some((v, n as u64))
    })
}

/// The rank-sum test from each sample's distinct values ascending with their counts (finite
/// values only): what a distribution gives without the requests themselves.
pub fn mann_whitney_runs(
    control: impl Iterator<Item = (f64, u64)>,
    treatment: impl Iterator<Item = (f64, u64)>,
) -> Option<MannWhitney> {
    let mut c = control.filter(|(v, n)| v.is_finite() && *n > 0).peekable();
    let mut t = treatment
        .filter(|(v, n)| v.is_finite() && *n > 0)
        .peekable();
    // Walk both in step, one value at a time: average ranks over runs of ties, accumulating
    // Σ(t³ − t) as we go.
    let (mut n_c, mut n_t) = (0.0, 0.0);
    let mut rank_sum_t = 0.0;
    let mut tie_term = 0.0;
    let mut start = 0.0;
    loop {
        let value = match (c.peek(), t.peek()) {
            (Some(&(a, _)), Some(&(b, _))) => a.min(b),
            (Some(&(a, _)), None) => a,
            (None, Some(&(b, _))) => b,
            (None, None) => break,
        };
        let tied_c = c
            .next_if(|&(v, _)| v == value)
            .map_or(0.0, |(_, n)| n as f64);
        let tied_t = t
            .next_if(|&(v, _)| v == value)
            .map_or(0.0, |(_, n)| n as f64);
        let ties = tied_c + tied_t;
        let mid_rank = (2.0 * start + ties + 1.0) / 2.0;
        rank_sum_t += tied_t * mid_rank;
        tie_term += ties.powi(3) - ties;
        start += ties;
        n_c += tied_c;
        n_t += tied_t;
    }
    if n_t == 0.0 || n_c == 0.0 {
        return None;
    }

    let n = n_t + n_c;
    let u = rank_sum_t - n_t * (n_t + 1.0) / 2.0;
    let mean = n_t * n_c / 2.0;
    let var = n_t * n_c / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if var.is_nan() || var <= 0.0 {
        return None;
    }
    let sd = var.sqrt();
    let u_max = u.max(n_t * n_c - u);
    Some(MannWhitney {
        u,
        z: (u - mean) / sd,
        p_value: (2.0 * normal_sf((u_max - mean - 0.5) / sd)).min(1.0),
        p_greater: normal_sf((u - mean - 0.5) / sd),
        p_less: normal_cdf((u - mean + 0.5) / sd),
    })
}

#[cfg(test)]
mod tests {
    use super::super::assert_fig;
    use super::*;

    #[test]
    fn matches_scipy_with_ties() {
        // scipy.stats.mannwhitneyu(treatment, control, method="asymptotic",
        // use_continuity=True) for each alternative.
        let treatment = [1.1, 2.2, 3.3, 4.4, 5.5, 2.2];
        let control = [3.0, 4.4, 6.6, 7.7, 8.8, 9.9, 2.2];
        let r = mann_whitney_u(&control, &treatment).unwrap();
        assert_eq!(r.u, 8.5);
        assert_fig(r.p_value, "0.08431461098", "two-sided");
        assert_fig(r.p_greater, "0.9692602356", "greater");
        assert_fig(r.p_less, "0.04215730549", "less");
        assert!(r.z < 0.0);
    }

    #[test]
    fn symmetric_in_the_arms() {
        let a = [1.0, 5.0, 3.0, 8.0, 2.0];
        let b = [4.0, 9.0, 7.0, 6.0, 10.0, 11.0];
        let ab = mann_whitney_u(&a, &b).unwrap();
        let ba = mann_whitney_u(&b, &a).unwrap();
        assert_eq!(ab.u + ba.u, 30.0);
        assert!((ab.p_value - ba.p_value).abs() < 1e-12);
        assert!((ab.p_greater - ba.p_less).abs() < 1e-12);
        // No ties: U_t counts treatment > control pairs directly.
        let direct = b
            .iter()
            .map(|&t| a.iter().filter(|&&c| t > c).count())
            .sum::<usize>();
        assert_eq!(ab.u, direct as f64);
    }

    #[test]
    fn sorted_samples_are_walked_to_the_same_result() {
        let a = [1.0, 5.0, 3.0, 8.0, 2.0, 5.0, f64::NAN];
        let b = [4.0, 9.0, 5.0, 6.0, 10.0, 1.0];
        let (mut sa, mut sb) = (a.to_vec(), b.to_vec());
        sa.sort_by(f64::total_cmp);
        sb.sort_by(f64::total_cmp);
        assert_eq!(mann_whitney_u(&a, &b), mann_whitney_u(&sa, &sb));
        let with_ends = [f64::NEG_INFINITY, 1.0, 2.0, f64::INFINITY, f64::NAN];
        assert_eq!(&*finite_ascending(&with_ends), &[1.0, 2.0]);
    }

    #[test]
    fn degenerate_samples() {
        assert!(mann_whitney_u(&[], &[1.0]).is_none());
        assert!(mann_whitney_u(&[1.0], &[f64::NAN]).is_none());
        assert!(mann_whitney_u(&[2.0, 2.0], &[2.0, 2.0, 2.0]).is_none());
        let r = mann_whitney_u(&[1.0], &[2.0]).unwrap();
        assert_eq!(r.u, 1.0);
        assert!(r.p_value <= 1.0);
    }
}
