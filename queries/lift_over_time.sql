-- lift_over_time: one metric of one experiment across recorded runs: each variant's value against the baseline, lift with its CI, p-value and guardrail state (results history).
SELECT run_at, variant, baseline_value, variant_value, relative_lift, lift_ci_low, lift_ci_high,
       p_value, guardrail_bound, breached, non_inferior, method
FROM results
WHERE experiment = $experiment AND metric = $metric
ORDER BY run_at, variant
