-- analysis_arms: per experiment, dimension ('all', 'endpoint', 'region'), segment, variant and exclusion flags: users, the sufficient statistics of every test, and the latency distribution.
-- Stage 2 of the analysis (README.md shows the stages): `analysis_users` summed per arm. What the
-- statistics read is the size of these rows, whatever the number of events: per-user sums and sums
-- of squares and products (the delta method, Welch, CUPED), and `latency`, the arm's latency
-- distribution (`latency_distribution`, analyze/src/read/distribution_udaf.rs: exact while its
-- distinct values fit 65,536, else log buckets within 0.5%, with the per-user prefix sums of the
-- clustered quantile CIs). The error rate's users are those with requests (`users_with_requests`).
SELECT
    experiment,
    dimension,
    segment,
    variant,
    synthetic,
    multiple_variants,
    COUNT(*) AS users,
    SUM(CASE WHEN requests > 0 THEN 1 ELSE 0 END) AS users_with_requests,
    SUM(CAST(requests AS DOUBLE)) AS requests,
    SUM(CAST(errors AS DOUBLE)) AS errors,
    SUM(CAST(requests AS DOUBLE) * requests) AS requests_sq,
    SUM(CAST(errors AS DOUBLE) * errors) AS errors_sq,
    SUM(CAST(errors AS DOUBLE) * requests) AS errors_requests,
    SUM(CASE WHEN converted THEN 1.0 ELSE 0.0 END) AS conversions,
    SUM(CASE WHEN pre_converted THEN 1.0 ELSE 0.0 END) AS pre_conversions,
    SUM(CASE WHEN pre_converted AND converted THEN 1.0 ELSE 0.0 END) AS pre_and_post_conversions,
    SUM(revenue) AS revenue,
    SUM(revenue * revenue) AS revenue_sq,
    SUM(pre_revenue) AS pre_revenue,
    SUM(pre_revenue * pre_revenue) AS pre_revenue_sq,
    SUM(pre_revenue * revenue) AS pre_revenue_revenue,
    CAST(SUM(exposure_duplicates + request_duplicates) AS BIGINT) AS duplicates,
    latency_distribution(latencies) AS latency
FROM analysis_users
GROUP BY experiment, dimension, segment, variant, synthetic, multiple_variants
