-- user_metrics: per experiment and user: the user's variant, exposure, conversion and revenue after first exposure, and before it.
-- The analysis joins these rows with the user's live requests from `request_cells` and turns them
-- into per-variant metrics, tests and a verdict.
-- A user is assigned by exposure events and by live requests (shadow and mirror calls do not
-- assign); MIN, COUNT(DISTINCT) and BOOL_OR are unchanged by resent copies, so no deduplication is
-- needed here. Business events count once per event_id; `exposure_duplicates` counts resent
-- exposure events. `pre_converted` and `pre_revenue` are the user's business events before first
-- exposure: the covariates of CUPED (zero for users with no history).
WITH
biz AS (
    SELECT DISTINCT ON (event_id) user_id, ts, kind, value
    FROM business
),
seen AS (
    SELECT experiment, variant, user_id, synthetic, ts, ts AS exposed_at, event_id AS exposure_id
    FROM exposures
    UNION ALL
    SELECT experiment, variant, user_id, synthetic, ts, CAST(NULL AS TIMESTAMP) AS exposed_at, CAST(NULL AS VARCHAR) AS exposure_id
    FROM requests
    WHERE mode = 'live'
),
users AS (
    SELECT
        experiment,
        user_id,
        MIN(variant) AS variant,
        COUNT(DISTINCT variant) AS variants,
        BOOL_OR(synthetic) AS synthetic,
        -- first exposure; a user with requests but no exposure event is exposed at its first request
        COALESCE(MIN(exposed_at), MIN(ts)) AS first_exposure,
        COUNT(exposure_id) - COUNT(DISTINCT exposure_id) AS exposure_duplicates
    FROM seen
    GROUP BY experiment, user_id
),
user_business AS (
    SELECT
        u.experiment,
        u.user_id,
        MAX(CASE WHEN b.ts >= u.first_exposure AND b.kind IN ('conversion', 'purchase') THEN 1 ELSE 0 END) AS converted,
        SUM(CASE WHEN b.ts >= u.first_exposure THEN b.value ELSE 0.0 END) AS revenue,
        MAX(CASE WHEN b.ts < u.first_exposure AND b.kind IN ('conversion', 'purchase') THEN 1 ELSE 0 END) AS pre_converted,
        SUM(CASE WHEN b.ts < u.first_exposure THEN b.value ELSE 0.0 END) AS pre_revenue
    FROM users u
    JOIN biz b ON b.user_id = u.user_id
    GROUP BY u.experiment, u.user_id
)
SELECT
    CAST(u.experiment AS VARCHAR) AS experiment,
    u.variant,
    u.user_id,
    u.variants,
    u.synthetic,
    u.exposure_duplicates,
    COALESCE(b.converted, 0) AS converted,
    COALESCE(b.revenue, 0.0) AS revenue,
    COALESCE(b.pre_converted, 0) AS pre_converted,
    COALESCE(b.pre_revenue, 0.0) AS pre_revenue
FROM users u
LEFT JOIN user_business b ON b.experiment = u.experiment AND b.user_id = u.user_id
