-- user_metrics: per experiment and user: the user's variant, exposure, conversion and revenue after first exposure, and before it.
-- The analysis computes the same rows in one aggregate per user, without joins (`analysis_users`;
-- a test in analyze/src/read/tests.rs holds the two to agreement, row for row) and turns them into
-- per-variant metrics, tests and a verdict.
-- A user is assigned by exposure events and by live requests (shadow and mirror calls do not
-- assign). Exposure and business events count once per event_id (resent copies are identical, so
-- MIN of each column is the event's value); `exposure_duplicates` counts resent exposure events.
-- `pre_converted` and `pre_revenue` are the user's business events before first exposure: the
-- covariates of CUPED (zero for users with no history).
-- Written for speed at 10^8 events: only aggregates DataFusion runs natively on grouped columns
-- (MIN, MAX, SUM, COUNT, BOOL_OR; no COUNT(DISTINCT), no FIRST_VALUE, whose per-group state is a
-- boxed object per user), and `users` referenced once (a CTE is inlined at every reference).
WITH
biz AS (
    SELECT MIN(user_id) AS user_id, MIN(ts) AS ts, MIN(kind) AS kind, MIN(value) AS value
    FROM business
    GROUP BY event_id
),
exposure_events AS (
    SELECT experiment, user_id, MIN(variant) AS variant, BOOL_OR(synthetic) AS synthetic,
           MIN(ts) AS ts, COUNT(*) - 1 AS resent
    FROM exposures
    GROUP BY experiment, user_id, event_id
),
seen AS (
    SELECT experiment, user_id, variant, synthetic, ts, ts AS exposed_at, resent
    FROM exposure_events
    UNION ALL
    SELECT experiment, user_id, variant, synthetic, ts, CAST(NULL AS TIMESTAMP) AS exposed_at, CAST(0 AS BIGINT) AS resent
    FROM requests
    WHERE mode = 'live'
),
users AS (
    SELECT
        experiment,
        user_id,
        MIN(variant) AS variant,
        MIN(variant) <> MAX(variant) AS multiple_variants,
        BOOL_OR(synthetic) AS synthetic,
        -- first exposure; a user with requests but no exposure event is exposed at its first request
        COALESCE(MIN(exposed_at), MIN(ts)) AS first_exposure,
        CAST(SUM(resent) AS BIGINT) AS exposure_duplicates
    FROM seen
    GROUP BY experiment, user_id
)
SELECT
    CAST(u.experiment AS VARCHAR) AS experiment,
    u.variant,
    u.user_id,
    u.multiple_variants,
    u.synthetic,
    u.exposure_duplicates,
    CAST(MAX(CASE WHEN b.ts >= u.first_exposure AND b.kind IN ('conversion', 'purchase') THEN 1 ELSE 0 END) AS BIGINT) AS converted,
    CAST(SUM(CASE WHEN b.ts >= u.first_exposure THEN b.value ELSE 0.0 END) AS DOUBLE) AS revenue,
    CAST(MAX(CASE WHEN b.ts < u.first_exposure AND b.kind IN ('conversion', 'purchase') THEN 1 ELSE 0 END) AS BIGINT) AS pre_converted,
    CAST(SUM(CASE WHEN b.ts < u.first_exposure THEN b.value ELSE 0.0 END) AS DOUBLE) AS pre_revenue
FROM users u
LEFT JOIN biz b ON b.user_id = u.user_id
GROUP BY u.experiment, u.variant, u.user_id, u.multiple_variants, u.synthetic, u.exposure_duplicates
