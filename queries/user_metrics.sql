-- user_metrics: the analysis job's one pass over each table.
-- One row per (experiment, user_id) with the user's assignment and per-user sums; the Rust side
-- turns these into per-variant metrics, tests and a verdict.
-- Each event_id counts once (a producer retry may resend it). Only live requests assign users and
-- count towards error rate and latency; shadow and mirror calls do not.
WITH
req AS (
    SELECT DISTINCT ON (event_id) experiment, variant, user_id, synthetic, ts, status, latency_ms
    FROM requests
    WHERE mode = 'live'
),
expo AS (
    SELECT DISTINCT ON (event_id) experiment, variant, user_id, synthetic, ts
    FROM exposures
),
biz AS (
    SELECT DISTINCT ON (event_id) user_id, ts, kind, value
    FROM business
),
seen AS (
    SELECT experiment, variant, user_id, synthetic, ts, ts AS exposed_at FROM expo
    UNION ALL
    SELECT experiment, variant, user_id, synthetic, ts, CAST(NULL AS TIMESTAMP) AS exposed_at FROM req
),
users AS (
    SELECT
        experiment,
        user_id,
        MIN(variant) AS variant,
        COUNT(DISTINCT variant) AS variants,
        BOOL_OR(synthetic) AS synthetic,
        -- first exposure; a user with requests but no exposure event is exposed at its first request
        COALESCE(MIN(exposed_at), MIN(ts)) AS first_exposure
    FROM seen
    GROUP BY experiment, user_id
),
user_requests AS (
    SELECT
        experiment,
        user_id,
        COUNT(*) AS requests,
        SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors,
        ARRAY_AGG(latency_ms) AS latencies
    FROM req
    GROUP BY experiment, user_id
),
user_business AS (
    SELECT
        u.experiment,
        u.user_id,
        MAX(CASE WHEN b.kind IN ('conversion', 'purchase') THEN 1 ELSE 0 END) AS converted,
        SUM(b.value) AS revenue
    FROM users u
    JOIN biz b ON b.user_id = u.user_id AND b.ts >= u.first_exposure
    GROUP BY u.experiment, u.user_id
)
SELECT
    u.experiment,
    u.variant,
    u.user_id,
    u.variants,
    u.synthetic,
    COALESCE(r.requests, 0) AS requests,
    COALESCE(r.errors, 0) AS errors,
    r.latencies,
    COALESCE(b.converted, 0) AS converted,
    COALESCE(b.revenue, 0.0) AS revenue
FROM users u
LEFT JOIN user_requests r ON r.experiment = u.experiment AND r.user_id = u.user_id
LEFT JOIN user_business b ON b.experiment = u.experiment AND b.user_id = u.user_id
