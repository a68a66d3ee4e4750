-- segment_users: per experiment, segment (endpoint or region) and user: the user's variant, live requests, errors and latencies.
-- The analysis compares variants within each segment, so that a regression confined to one
-- endpoint or region is not averaged away. Each event_id counts once; live requests only. The
-- analysis leaves out of every segment the users its overall assignment leaves out (seen in two
-- variants, or synthetic, anywhere in the experiment); `variants` and `synthetic` here are what
-- the segment alone saw.
WITH
req AS (
    SELECT DISTINCT ON (event_id) experiment, variant, user_id, synthetic, status, latency_ms, endpoint, region
    FROM requests
    WHERE mode = 'live'
),
seg AS (
    SELECT
        r.experiment,
        d.dimension,
        CASE WHEN d.dimension = 'endpoint' THEN COALESCE(r.endpoint, '(none)') ELSE COALESCE(r.region, '(none)') END AS segment,
        r.variant, r.user_id, r.synthetic, r.status, r.latency_ms
    FROM req AS r
    CROSS JOIN (VALUES ('endpoint'), ('region')) AS d(dimension)
)
SELECT
    CAST(experiment AS VARCHAR) AS experiment,
    dimension,
    segment,
    user_id,
    MIN(variant) AS variant,
    COUNT(DISTINCT variant) AS variants,
    BOOL_OR(synthetic) AS synthetic,
    COUNT(*) AS requests,
    CAST(SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS BIGINT) AS errors,
    ARRAY_AGG(latency_ms) AS latencies
FROM seg
GROUP BY experiment, dimension, segment, user_id
