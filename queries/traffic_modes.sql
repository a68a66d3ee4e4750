-- traffic_modes: per experiment, variant, mode and synthetic flag: requests, errors, failures, shadow mismatches and latency quantiles.
-- The analysis reads it for what is not a live user's request: synthetic checks (synthetic users'
-- live requests; a check succeeds below status 400) and shadow and mirror calls (compared with the
-- variant's live traffic). Each event_id counts once.
SELECT
    CAST(experiment AS VARCHAR) AS experiment,
    variant,
    mode,
    synthetic,
    COUNT(DISTINCT user_id) AS users,
    COUNT(*) AS requests,
    CAST(SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS BIGINT) AS errors,
    CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS BIGINT) AS failures,
    CAST(SUM(CASE WHEN shadow_match IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS compared,
    CAST(SUM(CASE WHEN shadow_match = false THEN 1 ELSE 0 END) AS BIGINT) AS mismatches,
    approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_p50,
    approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS latency_p99
FROM (SELECT DISTINCT ON (event_id) * FROM requests) AS r
WHERE synthetic OR mode <> 'live'
GROUP BY experiment, variant, mode, synthetic
ORDER BY experiment, variant, mode, synthetic
