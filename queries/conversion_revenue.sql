-- conversion_revenue: exposed users, converters, conversion rate, revenue and revenue per user per experiment and variant (business events at or after first exposure, non-synthetic).
WITH exposed AS (
    SELECT CAST(experiment AS VARCHAR) AS experiment, user_id, MIN(variant) AS variant, MIN(ts) AS first_exposure
    FROM exposures
    WHERE NOT synthetic
    GROUP BY experiment, user_id
    HAVING COUNT(DISTINCT variant) = 1
),
biz AS (
    SELECT DISTINCT ON (event_id) user_id, ts, kind, value FROM business
),
per_user AS (
    SELECT e.experiment, e.variant, e.user_id,
           MAX(CASE WHEN b.kind IN ('conversion', 'purchase') THEN 1 ELSE 0 END) AS converted,
           COALESCE(SUM(b.value), 0.0) AS revenue
    FROM exposed e
    LEFT JOIN biz b ON b.user_id = e.user_id AND b.ts >= e.first_exposure
    GROUP BY e.experiment, e.variant, e.user_id
)
SELECT experiment, variant,
       COUNT(*) AS users,
       SUM(converted) AS converters,
       AVG(CAST(converted AS DOUBLE)) AS conversion_rate,
       SUM(revenue) AS revenue,
       AVG(revenue) AS revenue_per_user
FROM per_user
GROUP BY experiment, variant
ORDER BY experiment, variant
