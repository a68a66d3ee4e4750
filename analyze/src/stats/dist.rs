//! Total wrappers around the statrs distributions.
//!
//! statrs constructors return `Result` and some of its quantile functions
//! panic outside `[0, 1]`. The analysis must never panic on odd input (a
//! canary with one user, a zero-variance arm), so every call to statrs goes
//! through here, where invalid parameters map to a documented value instead.
//! The conventions: probabilities outside `[0, 1]` are clamped, a NaN argument
//! gives NaN (garbage in is visible, not hidden), and an impossible parameter
//! (degrees of freedom ≤ 0) gives NaN so callers' `> 0` guards reject it.

use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, DiscreteCDF, Normal, StudentsT};
use statrs::function::beta::inv_beta_reg;

fn std_normal() -> Normal {
    // Parameters are constants that statrs accepts, so this cannot fail.
    Normal::standard()
}

/// Φ(x), the standard normal CDF.
pub fn normal_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    std_normal().cdf(x)
}

/// 1 − Φ(x), computed directly so that far tails keep their precision.
pub fn normal_sf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    std_normal().sf(x)
}

/// Φ⁻¹(p). `p ≤ 0` gives −∞ and `p ≥ 1` gives +∞ (statrs would panic).
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() {
        f64::NAN
    } else if p <= 0.0 {
        f64::NEG_INFINITY
    } else if p >= 1.0 {
        f64::INFINITY
    } else {
        std_normal().inverse_cdf(p)
    }
}

/// Two-sided critical value z_{1−α/2}; the most common use of the quantile.
pub fn z_two_sided(alpha: f64) -> f64 {
    normal_quantile(1.0 - alpha / 2.0)
}

fn students_t(df: f64) -> Option<StudentsT> {
    if df.is_nan() || df <= 0.0 {
        return None;
    }
    StudentsT::new(0.0, 1.0, df).ok()
}

/// statrs' t CDF goes through the incomplete beta function, which loses
/// accuracy for astronomically large df (at df = 1e12 it is off in the
/// third digit). Beyond this df the t and normal tails differ by < 2e-8.
const T_CDF_AS_NORMAL_DF: f64 = 1e7;

/// statrs' t quantile inverts the incomplete beta function and drifts
/// already at df ≈ 1e5 (and never terminates for an infinite df). Above
/// this df the Cornish–Fisher expansion is exact to ~1e-12.
const T_QUANTILE_EXPANSION_DF: f64 = 1000.0;

/// CDF of Student's t with `df` degrees of freedom; NaN when `df ≤ 0`.
pub fn t_cdf(x: f64, df: f64) -> f64 {
    match students_t(df) {
        _ if df > T_CDF_AS_NORMAL_DF => normal_cdf(x),
        Some(t) if !x.is_nan() => t.cdf(x),
        _ => f64::NAN,
    }
}

/// Survival function 1 − F(x) of Student's t; NaN when `df ≤ 0`.
pub fn t_sf(x: f64, df: f64) -> f64 {
    match students_t(df) {
        _ if df > T_CDF_AS_NORMAL_DF => normal_sf(x),
        Some(t) if !x.is_nan() => t.sf(x),
        _ => f64::NAN,
    }
}

/// Quantile of Student's t. `p ≤ 0` → −∞, `p ≥ 1` → +∞, `df ≤ 0` → NaN.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let Some(t) = students_t(df) else {
        return f64::NAN;
    };
    if p.is_nan() {
        f64::NAN
    } else if p <= 0.0 {
        f64::NEG_INFINITY
    } else if p >= 1.0 {
        f64::INFINITY
    } else if df > T_QUANTILE_EXPANSION_DF {
        cornish_fisher_t(normal_quantile(p), df)
    } else {
        t.inverse_cdf(p)
    }
}

/// Large-df expansion of the t quantile in the normal quantile z
/// (Abramowitz & Stegun 26.7.5), through the ν⁻⁴ term.
fn cornish_fisher_t(z: f64, df: f64) -> f64 {
    if df.is_infinite() {
        return z;
    }
    let z2 = z * z;
    let g1 = z * (z2 + 1.0) / 4.0;
    let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
    z + g1 / df + g2 / df.powi(2) + g3 / df.powi(3) + g4 / df.powi(4)
}

/// P(χ²_df ≥ x). `x ≤ 0` gives 1; `df ≤ 0` gives NaN.
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    if x.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    match ChiSquared::new(df) {
        Ok(c) => c.sf(x),
        Err(_) => f64::NAN,
    }
}

/// P(X ≥ k) for X ~ Binomial(n, p): note "at least k", not statrs' "more
/// than k". `p` is clamped to `[0, 1]`; NaN `p` gives NaN.
pub fn binomial_sf(k: u64, n: u64, p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    match Binomial::new(p.clamp(0.0, 1.0), n) {
        // P(X ≥ k) = P(X > k − 1).
        Ok(b) => b.sf(k - 1),
        Err(_) => f64::NAN,
    }
}

/// P(X ≤ k) for X ~ Binomial(n, p), with the same conventions as
/// [`binomial_sf`].
pub fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    match Binomial::new(p.clamp(0.0, 1.0), n) {
        Ok(b) => b.cdf(k),
        Err(_) => f64::NAN,
    }
}

/// Clopper–Pearson one-sided upper confidence bound (level `1 − alpha`) for a
/// binomial proportion with `k` successes out of `n`. It is the `p` solving
/// P(X ≤ k | n, p) = alpha, so it inverts [`binomial_cdf`] exactly, which is
/// what keeps exact bounds consistent with exact tests. `n = 0` or `k ≥ n`
/// gives 1 (nothing rules out any proportion).
pub fn clopper_pearson_upper(k: u64, n: u64, alpha: f64) -> f64 {
    if n == 0 || k >= n || !(alpha > 0.0 && alpha < 1.0) {
        return 1.0;
    }
    // Upper bound = Beta quantile(1 − α; k + 1, n − k).
    inv_beta_reg(k as f64 + 1.0, (n - k) as f64, 1.0 - alpha).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn normal_reference_values() {
        assert!(close(normal_quantile(0.975), 1.959_963_984_540_054, 1e-9));
        assert!(close(normal_cdf(1.959_963_984_540_054), 0.975, 1e-11));
        assert!(close(normal_sf(3.0), 0.001_349_898_031_630_094_6, 1e-12));
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.5), f64::INFINITY);
        assert!(normal_quantile(f64::NAN).is_nan());
    }

    #[test]
    fn t_reference_values() {
        // t_{0.975, 10} = 2.228138851986274 (R: qt(0.975, 10)).
        assert!(close(t_quantile(0.975, 10.0), 2.228_138_851_986_274, 1e-8));
        assert!(close(t_cdf(2.228_138_851_986_274, 10.0), 0.975, 1e-10));
        assert!(close(t_sf(2.228_138_851_986_274, 10.0), 0.025, 1e-10));
        // Infinite df is the normal distribution.
        assert!(close(
            t_quantile(0.975, f64::INFINITY),
            1.959_963_984_540_054,
            1e-12
        ));
        assert!(close(t_sf(2.0, f64::INFINITY), normal_sf(2.0), 1e-15));
        assert!(t_cdf(0.0, 0.0).is_nan());
        assert!(t_quantile(0.5, -1.0).is_nan());
        assert_eq!(t_quantile(1.0, 5.0), f64::INFINITY);
    }

    #[test]
    fn t_large_df_matches_scipy() {
        // scipy.stats.t.ppf(0.975, df) and t.sf(2.0, df).
        let quantiles = [
            (30.0, 2.042_272_456_301_237_8),
            (1000.0, 1.962_339_080_826_408_3),
            (1001.0, 1.962_336_705_280_879_8),
            (1e4, 1.960_201_239_890_626),
            (1e5, 1.959_987_707_534_609_5),
            (1e6, 1.959_966_356_814_107),
            (5e6, 1.959_964_458_994_412_7),
        ];
        for (df, q) in quantiles {
            assert!(close(t_quantile(0.975, df), q, 1e-9), "ppf df {df}");
            assert!(close(t_quantile(0.025, df), -q, 1e-9), "ppf df {df}");
        }
        let tails = [
            (1e6, 0.022_750_266_925_659_62),
            (5e6, 0.022_750_158_943_665_028),
            (1e12, 0.022_750_131_948_314_174),
        ];
        for (df, sf) in tails {
            assert!(close(t_sf(2.0, df), sf, 1e-10), "sf df {df}");
            assert!(close(t_cdf(-2.0, df), sf, 1e-10), "cdf df {df}");
        }
    }

    #[test]
    fn chi2_reference_values() {
        // P(χ²₁ ≥ 3.841458820694124) = 0.05.
        assert!(close(chi2_sf(3.841_458_820_694_124, 1.0), 0.05, 1e-10));
        assert_eq!(chi2_sf(0.0, 3.0), 1.0);
        assert_eq!(chi2_sf(f64::INFINITY, 3.0), 0.0);
        assert!(chi2_sf(1.0, 0.0).is_nan());
    }

    #[test]
    fn binomial_tails_by_hand() {
        // n = 3, p = 0.5: P(X ≥ 2) = (3 + 1) / 8.
        assert!(close(binomial_sf(2, 3, 0.5), 0.5, 1e-12));
        assert!(close(binomial_sf(3, 3, 0.5), 0.125, 1e-12));
        assert_eq!(binomial_sf(0, 3, 0.5), 1.0);
        assert_eq!(binomial_sf(4, 3, 0.5), 0.0);
        assert!(close(binomial_cdf(1, 3, 0.5), 0.5, 1e-12));
        // Degenerate probabilities.
        assert_eq!(binomial_sf(1, 10, 0.0), 0.0);
        assert!(close(binomial_sf(10, 10, 1.0), 1.0, 1e-12));
        assert!(close(binomial_sf(1, 10, 1.7), 1.0, 1e-12));
    }

    #[test]
    fn clopper_pearson_inverts_the_cdf() {
        // Zero successes in n: the upper bound solves (1 − p)^n = α.
        let ub = clopper_pearson_upper(0, 100, 0.05);
        assert!(close(ub, 1.0 - 0.05_f64.powf(0.01), 1e-9));
        let ub = clopper_pearson_upper(7, 50, 0.025);
        assert!(close(binomial_cdf(7, 50, ub), 0.025, 1e-9));
        assert_eq!(clopper_pearson_upper(5, 5, 0.05), 1.0);
        assert_eq!(clopper_pearson_upper(0, 0, 0.05), 1.0);
    }
}
