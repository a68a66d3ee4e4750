-- request_cells: per experiment, user, variant, mode, synthetic flag, endpoint and region: requests, errors, failures, shadow mismatches, resent copies and latencies.
-- The analysis job's one pass over `requests`: every per-user, per-segment and per-mode figure
-- (error rate and latency per user, the endpoint and region guardrails, synthetic checks, shadow
-- and mirror calls, duplicates dropped) is summed from these cells, so the table is read and
-- deduplicated once. Each event_id counts once; `duplicates` counts the extra copies of resent events.
-- Resent copies are identical, so MIN (BOOL_OR) of each column is the event's value; both run
-- natively on grouped columns, where FIRST_VALUE kept a boxed object per event.
WITH ev AS (
    SELECT
        experiment,
        event_id,
        COUNT(*) AS copies,
        MIN(variant) AS variant,
        MIN(user_id) AS user_id,
        MIN(mode) AS mode,
        BOOL_OR(synthetic) AS synthetic,
        MIN(endpoint) AS endpoint,
        MIN(region) AS region,
        MIN(status) AS status,
        MIN(latency_ms) AS latency_ms,
        BOOL_OR(shadow_match) AS shadow_match
    FROM requests
    GROUP BY experiment, event_id
)
SELECT
    CAST(experiment AS VARCHAR) AS experiment,
    user_id,
    variant,
    mode,
    synthetic,
    COALESCE(endpoint, '(none)') AS endpoint,
    COALESCE(region, '(none)') AS region,
    COUNT(*) AS requests,
    CAST(SUM(copies - 1) AS BIGINT) AS duplicates,
    CAST(SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS BIGINT) AS errors,
    CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS BIGINT) AS failures,
    CAST(SUM(CASE WHEN shadow_match IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS compared,
    CAST(SUM(CASE WHEN shadow_match = false THEN 1 ELSE 0 END) AS BIGINT) AS mismatches,
    ARRAY_AGG(latency_ms) AS latencies
FROM ev
GROUP BY experiment, user_id, variant, mode, synthetic, endpoint, region
