//! CUPED (Deng, Xu, Kohavi, Walker 2013): variance reduction with each user's pre-exposure value.
//!
//! A user's revenue before the experiment predicts their revenue during it, and has nothing to do
//! with the variant they were assigned. Subtracting θ·(x − x̄) from every user's value y, with x the
//! pre-exposure value, x̄ its mean over both arms and θ = cov(x, y)/var(x) over both arms, leaves the
//! difference of means unbiased and shrinks its variance by the share ρ² that x explains. The
//! adjusted values' sums are computed from the arms' sums (n, Σx, Σy, Σx², Σy², Σxy), so the SQL
//! layer keeps returning sufficient statistics and nothing holds per-user rows twice.

use super::means::MeanStats;

/// Running sums of (pre-exposure x, in-experiment y) over one arm's users.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CovariateSums {
    pub n: f64,
    pub sx: f64,
    pub sy: f64,
    pub sxx: f64,
    pub syy: f64,
    pub sxy: f64,
}

impl CovariateSums {
    /// Adds one user; pairs with a non-finite value are skipped, as `MeanStats::push` skips them.
    pub fn push(&mut self, x: f64, y: f64) {
        if !(x.is_finite() && y.is_finite()) {
            return;
        }
        self.n += 1.0;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.syy += y * y;
        self.sxy += x * y;
    }

    fn plus(&self, o: &CovariateSums) -> CovariateSums {
        CovariateSums {
            n: self.n + o.n,
            sx: self.sx + o.sx,
            sy: self.sy + o.sy,
            sxx: self.sxx + o.sxx,
            syy: self.syy + o.syy,
            sxy: self.sxy + o.sxy,
        }
    }

    /// The arm's y after subtracting θ·(x − x̄).
    fn adjusted(&self, theta: f64, x_mean: f64) -> MeanStats {
        // y' = y − θx + c with c = θx̄.
        let c = theta * x_mean;
        let sum = self.sy - theta * self.sx + self.n * c;
        let sum_sq = self.syy + theta * theta * self.sxx + self.n * c * c - 2.0 * theta * self.sxy
            + 2.0 * c * self.sy
            - 2.0 * theta * c * self.sx;
        MeanStats {
            n: self.n,
            sum,
            sum_sq,
        }
    }
}

/// Both arms adjusted with one θ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CupedAdjustment {
    /// cov(x, y) / var(x) over both arms.
    pub theta: f64,
    /// 1 − var(y′)/var(y) over both arms: the share of the variance removed (ρ²).
    pub variance_reduction: f64,
    /// The control arm's adjusted values.
    pub control: MeanStats,
    /// The treatment arm's adjusted values.
    pub treatment: MeanStats,
}

/// CUPED for two arms; `None` when the pre-exposure values do not vary (nothing to regress on) or
/// an arm has fewer than two users.
pub fn cuped(control: &CovariateSums, treatment: &CovariateSums) -> Option<CupedAdjustment> {
    if control.n < 2.0 || treatment.n < 2.0 {
        return None;
    }
    let all = control.plus(treatment);
    let var_x = all.sxx - all.sx * all.sx / all.n;
    let var_y = all.syy - all.sy * all.sy / all.n;
    // Relative to the scale of x: rounding can leave a tiny variance where x is constant.
    if !(var_x > 1e-12 * all.sxx.max(1e-300)) || !(var_y > 0.0) {
        return None;
    }
    let cov = all.sxy - all.sx * all.sy / all.n;
    let theta = cov / var_x;
    let x_mean = all.sx / all.n;
    let pooled = all.adjusted(theta, x_mean);
    let var_adjusted = pooled.sum_sq - pooled.sum * pooled.sum / pooled.n;
    Some(CupedAdjustment {
        theta,
        variance_reduction: (1.0 - var_adjusted / var_y).clamp(0.0, 1.0),
        control: control.adjusted(theta, x_mean),
        treatment: treatment.adjusted(theta, x_mean),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::welch_diff;

    fn sums(pairs: &[(f64, f64)]) -> CovariateSums {
        let mut s = CovariateSums::default();
        pairs.iter().for_each(|&(x, y)| s.push(x, y));
        s
    }

    /// The sums-based adjustment equals adjusting each user's value by hand.
    #[test]
    fn adjusted_sums_match_per_user_adjustment() {
        let c = [(1.0, 2.0), (2.0, 3.5), (0.0, 0.5), (4.0, 6.0)];
        let t = [(3.0, 5.0), (1.0, 2.5), (2.0, 4.5)];
        let a = cuped(&sums(&c), &sums(&t)).unwrap();
        // By hand: x̄ = 13/7; θ from the pooled covariance.
        let all: Vec<(f64, f64)> = c.iter().chain(&t).copied().collect();
        let n = all.len() as f64;
        let (mx, my) = (
            all.iter().map(|p| p.0).sum::<f64>() / n,
            all.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let cov: f64 = all.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let var: f64 = all.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let theta = cov / var;
        assert!((a.theta - theta).abs() < 1e-12);
        let mut by_hand = MeanStats::default();
        t.iter()
            .for_each(|&(x, y)| by_hand.push(y - theta * (x - mx)));
        assert!((a.treatment.mean() - by_hand.mean()).abs() < 1e-12);
        assert!((a.treatment.variance() - by_hand.variance()).abs() < 1e-9);
        assert!(a.variance_reduction > 0.9, "{}", a.variance_reduction);
    }

    /// A/A users whose spend persists: the adjusted difference is unbiased and its SE shrinks by
    /// √(1 − ρ²).
    #[test]
    fn persistent_spend_narrows_the_interval_without_moving_the_estimate() {
        let mut uniform = crate::stats::test_uniform(11);
        let (mut c, mut t) = (CovariateSums::default(), CovariateSums::default());
        let (mut raw_c, mut raw_t) = (MeanStats::default(), MeanStats::default());
        for i in 0..20_000 {
            let habit = 10.0 * uniform();
            let x = habit + uniform();
            let y = habit + uniform();
            if i % 2 == 0 {
                c.push(x, y);
                raw_c.push(y);
            } else {
                t.push(x, y);
                raw_t.push(y);
            }
        }
        let a = cuped(&c, &t).unwrap();
        let raw = welch_diff(&raw_c, &raw_t, 0.05).unwrap();
        let adjusted = welch_diff(&a.control, &a.treatment, 0.05).unwrap();
        // var(habit) = 100/12, var(noise) = 1/12: ρ² = (100/12)² / (101/12)² ≈ 0.980.
        assert!((a.variance_reduction - 0.980).abs() < 0.01, "{a:?}");
        assert!(adjusted.se < 0.2 * raw.se, "{} vs {}", adjusted.se, raw.se);
        assert!(adjusted.estimate.abs() < 3.0 * adjusted.se, "{adjusted:?}");
    }

    #[test]
    fn constant_pre_exposure_values_mean_no_adjustment() {
        let c = sums(&[(0.0, 1.0), (0.0, 2.0), (0.0, 0.0)]);
        let t = sums(&[(0.0, 3.0), (0.0, 1.0)]);
        assert!(cuped(&c, &t).is_none());
        assert!(cuped(&sums(&[(1.0, 1.0)]), &t).is_none());
    }
}
