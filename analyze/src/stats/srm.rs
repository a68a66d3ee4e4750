//! Sample ratio mismatch (section 4).
//!
//! When the user counts per variant do not match the configured allocation,
//! assignment or logging is broken, and every metric comparison is suspect:
//! the users who went missing are rarely missing at random. Pearson's χ²
//! against the allocation weights is the standard check; the verdict layer
//! marks the experiment INVALID at p < 0.001.

use super::dist::chi2_sf;

/// Pearson χ² goodness of fit of the user counts against the allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SrmResult {
    pub chi2: f64,
    pub df: usize,
    pub p_value: f64,
}

/// χ² = Σ (o_i − e_i)²/e_i with e_i = total · w_i/Σw, df = variants − 1.
///
/// Weights need not sum to 1 (50/50, 1/1 and 0.5/0.5 are the same
/// allocation). A variant with weight 0 that nonetheless received users is
/// an unmistakable mismatch: χ² = ∞, p = 0. A weight-0 variant without
/// users is left out of the test (and of df).
///
/// `None` when the lengths differ, a weight is negative or not finite,
/// fewer than two variants carry weight, or there are no users.
pub fn srm_test(counts: &[u64], weights: &[f64]) -> Option<SrmResult> {
    if counts.len() != weights.len() || weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return None;
    }
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    let weight_sum: f64 = weights.iter().sum();
    let active = weights.iter().filter(|&&w| w > 0.0).count();
    if active < 2 || total <= 0.0 || weight_sum <= 0.0 {
        return None;
    }
    let df = active - 1;
    let mut chi2 = 0.0;
    for (&observed, &weight) in counts.iter().zip(weights) {
        let observed = observed as f64;
        if weight == 0.0 {
            if observed > 0.0 {
                return Some(SrmResult {
                    chi2: f64::INFINITY,
                    df,
                    p_value: 0.0,
                });
            }
            continue;
        }
        let expected = total * weight / weight_sum;
        chi2 += (observed - expected).powi(2) / expected;
    }
    Some(SrmResult {
        chi2,
        df,
        p_value: chi2_sf(chi2, df as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::super::assert_fig;
    use super::*;

    #[test]
    fn statistics_md_check() {
        // [5000, 5200] at 50/50 → χ² 3.92, p 0.0477 (not SRM at 0.001).
        let r = srm_test(&[5000, 5200], &[0.5, 0.5]).unwrap();
        assert_fig(r.chi2, "3.92", "chi2");
        assert_fig(r.p_value, "0.0477", "p");
        assert_eq!(r.df, 1);
        assert!(r.p_value > 0.001);
        // scipy.stats.chisquare([5000, 5200]) to more digits.
        assert_fig(r.chi2, "3.9215686275", "chi2");
        assert_fig(r.p_value, "0.04767038066", "p");
    }

    #[test]
    fn weights_need_not_be_normalised() {
        let a = srm_test(&[5000, 5200], &[1.0, 1.0]).unwrap();
        let b = srm_test(&[5000, 5200], &[50.0, 50.0]).unwrap();
        assert!((a.chi2 - b.chi2).abs() < 1e-12);
    }

    #[test]
    fn uneven_allocation_and_three_arms() {
        // A 5% canary that received 5% of users is fine.
        let ok = srm_test(&[9500, 500], &[0.95, 0.05]).unwrap();
        assert!(ok.chi2 < 1e-12 && ok.p_value > 0.999);
        // 600 instead of 500: χ² = 100²/9500 + 100²/500 = 21.05 → SRM.
        let bad = srm_test(&[9400, 600], &[0.95, 0.05]).unwrap();
        assert_fig(bad.chi2, "21.05263158", "chi2");
        assert!(bad.p_value < 0.001);
        // Three arms: χ² = (0 + 100² + 100²)/1000 = 20 on 2 df, p = e^(−10).
        let three = srm_test(&[1000, 1100, 900], &[1.0, 1.0, 1.0]).unwrap();
        assert_eq!(three.df, 2);
        assert_fig(three.chi2, "20.00", "chi2");
        assert_fig(three.p_value, &format!("{}", (-10f64).exp()), "p");
    }

    #[test]
    fn zero_weight_arms() {
        let leaked = srm_test(&[100, 100, 3], &[0.5, 0.5, 0.0]).unwrap();
        assert_eq!(leaked.p_value, 0.0);
        assert!(leaked.chi2.is_infinite());
        let unused = srm_test(&[100, 100, 0], &[0.5, 0.5, 0.0]).unwrap();
        assert_eq!(unused.df, 1);
        assert_eq!(unused.chi2, 0.0);
    }

    #[test]
    fn degenerate_inputs() {
        assert!(srm_test(&[], &[]).is_none());
        assert!(srm_test(&[10], &[1.0]).is_none());
        assert!(srm_test(&[10, 10], &[1.0]).is_none());
        assert!(srm_test(&[0, 0], &[0.5, 0.5]).is_none());
        assert!(srm_test(&[10, 10], &[0.5, -0.5]).is_none());
        assert!(srm_test(&[10, 10], &[0.5, f64::NAN]).is_none());
        assert!(srm_test(&[10, 10], &[1.0, 0.0]).is_none());
    }
}
