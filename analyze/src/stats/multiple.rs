//! Multiple-testing corrections across the guardrails of one experiment
//! (section 5).
//!
//! A canary is checked against several guardrails at once (error rate,
//! p50, p99, conversion, ...). Testing each at α rolls back far more often
//! than α when nothing is wrong. Holm–Bonferroni (the default) controls the
//! family-wise error rate and is uniformly more powerful than Bonferroni;
//! Benjamini–Hochberg controls the false discovery rate for experiments
//! with many metrics where some false alarms are acceptable.
//!
//! Both return adjusted p-values in the input order, to be compared with
//! the unadjusted α. A NaN p-value is treated as 1 (no evidence), so one
//! broken metric cannot hide or fake a significant one.

/// Indices of `p` sorted by ascending p-value, with NaN read as 1.
fn ascending(p: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let clean: Vec<f64> = p
        .iter()
        .map(|&v| if v.is_nan() { 1.0 } else { v.clamp(0.0, 1.0) })
        .collect();
    let mut order: Vec<usize> = (0..clean.len()).collect();
    order.sort_by(|&a, &b| clean[a].total_cmp(&clean[b]));
    (clean, order)
}

/// Holm–Bonferroni step-down adjusted p-values, capped at 1:
/// p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let (clean, order) = ascending(p);
    let mut adjusted = vec![0.0; m];
    let mut running_max: f64 = 0.0;
    for (rank, &idx) in order.iter().enumerate() {
        let candidate = ((m - rank) as f64 * clean[idx]).min(1.0);
        running_max = running_max.max(candidate);
        adjusted[idx] = running_max;
    }
    adjusted
}

/// Benjamini–Hochberg step-up adjusted p-values (q-values), capped at 1:
/// p̃_(i) = min_{j ≥ i} min(1, m p_(j) / j).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let (clean, order) = ascending(p);
    let mut adjusted = vec![0.0; m];
    let mut running_min: f64 = 1.0;
    for (rank, &idx) in order.iter().enumerate().rev() {
        let candidate = (clean[idx] * m as f64 / (rank + 1) as f64).min(1.0);
        running_min = running_min.min(candidate);
        adjusted[idx] = running_min;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::super::assert_fig;
    use super::*;

    fn assert_all(actual: &[f64], published: &[&str]) {
        assert_eq!(actual.len(), published.len());
        for (i, (&a, &e)) in actual.iter().zip(published).enumerate() {
            assert_fig(a, e, &format!("index {i}"));
        }
    }

    #[test]
    fn growthbook_holm_vector() {
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005, 0.55, 0.6]);
        assert_all(&adjusted, &["0.05", "0.12", "0.12", "0.03", "1", "1"]);
        // Exact values, not only to the printed precision.
        assert!((adjusted[0] - 0.05).abs() < 1e-12);
        assert_eq!(adjusted[4], 1.0);
    }

    #[test]
    fn growthbook_bh_vector() {
        let adjusted = benjamini_hochberg(&[0.898, 0.138, 0.007, 0.964, 0.538, 0.006, 0.138]);
        assert_all(
            &adjusted,
            &[
                "0.964", "0.2415", "0.0245", "0.964", "0.7532", "0.0245", "0.2415",
            ],
        );
    }

    #[test]
    fn edge_cases() {
        assert!(holm(&[]).is_empty());
        assert!(benjamini_hochberg(&[]).is_empty());
        assert_eq!(holm(&[0.03]), vec![0.03]);
        assert_eq!(benjamini_hochberg(&[0.03]), vec![0.03]);
        // NaN counts as no evidence and still occupies a slot in m.
        let h = holm(&[0.01, f64::NAN]);
        assert_eq!(h, vec![0.02, 1.0]);
        let b = benjamini_hochberg(&[0.01, f64::NAN]);
        assert_eq!(b, vec![0.02, 1.0]);
        // Ties keep the same adjusted value.
        let t = holm(&[0.02, 0.02]);
        assert_eq!(t[0], t[1]);
    }

    #[test]
    fn adjusted_never_below_raw_and_monotone() {
        let p = [0.2, 0.001, 0.04, 0.5, 0.011, 0.9];
        for adjusted in [holm(&p), benjamini_hochberg(&p)] {
            for (a, raw) in adjusted.iter().zip(p) {
                assert!(*a >= raw && *a <= 1.0);
            }
            let (_, order) = ascending(&p);
            for pair in order.windows(2) {
                assert!(adjusted[pair[0]] <= adjusted[pair[1]]);
            }
        }
    }
}
