-- analysis_side_traffic: per experiment, variant, mode and synthetic flag: synthetic checks and shadow/mirror calls, each event_id once, with their latency distribution.
-- The analysis' view of traffic that is not a real user's live request (README.md shows the
-- stages): reported beside the verdict, never in it. A resent copy is the same event_id from the
-- same user, as in `analysis_users`; a shadow or mirror call that reuses the live request's
-- event_id is a call of its own (the key includes `mode`). `traffic_modes` gives the
-- same groups as stored, with t-digest quantiles.
WITH calls AS (
    SELECT
        CAST(experiment AS VARCHAR) AS experiment,
        user_id,
        event_id,
        mode,
        MIN(variant) AS variant,
        BOOL_OR(synthetic) AS synthetic,
        MIN(status) AS status,
        MIN(latency_ms) AS latency_ms,
        BOOL_AND(shadow_match) AS shadow_match,
        COUNT(*) - 1 AS resent
    FROM requests
    WHERE mode <> 'live' OR synthetic
    GROUP BY CAST(experiment AS VARCHAR), user_id, event_id, mode
)
SELECT
    experiment,
    variant,
    mode,
    synthetic,
    COUNT(DISTINCT user_id) AS users,
    COUNT(*) AS requests,
    SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors,
    SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS failures,
    COUNT(shadow_match) AS compared,
    SUM(CASE WHEN NOT shadow_match THEN 1 ELSE 0 END) AS mismatches,
    CAST(SUM(resent) AS BIGINT) AS duplicates,
    latency_distribution(latency_ms) AS latency
FROM calls
GROUP BY experiment, variant, mode, synthetic
