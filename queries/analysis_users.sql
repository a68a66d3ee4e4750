-- analysis_users: per assigned user and experiment (dimension 'all'), and per endpoint and region of each user decided on: variant, flags, live requests, errors, latencies, business events after and before first exposure.
-- Stage 1 of the analysis (README.md shows the stages). One aggregate grouped by user over
-- everything a user did, in one pass and one shuffle, with no join: `user_experiments`
-- (analyze/src/read/user_state/) keeps each user's live requests, exposures and business events
-- as numbers, counts each event_id once, and emits one row per experiment the user is assigned in
-- (by an exposure or a live request; shadow and mirror calls do not assign) and, for the users
-- decided on (not synthetic, in one variant), one row per endpoint and per region they used.
-- `latencies` are the user's live latencies, ascending (synthetic users' requests are side
-- traffic: `analysis_side_traffic`). Business events count at or after the user's first exposure
-- in the experiment (`converted`, `revenue`) or before it (`pre_converted`, `pre_revenue`:
-- CUPED's covariates); `assigned_at` is that first exposure (epoch ms; the first live request
-- when the user has no exposure event), which puts the user in a rollout stage, and
-- `assigned_weights` the allocation that exposure carried (its `weights`, when the flag SDK sent
-- them: the stage itself); `user_metrics` says the same per-user figures with joins. `kinds`,
-- `kind_counts` and `kind_values` are the business events at or after first exposure per kind
-- (sorted by kind; empty on segment rows): what `[[metrics]]` of the experiments file read.
SELECT
    user_id,
    get_field(u, 'experiment') AS experiment,
    get_field(u, 'dimension') AS dimension,
    get_field(u, 'segment') AS segment,
    get_field(u, 'variant') AS variant,
    get_field(u, 'multiple_variants') AS multiple_variants,
    get_field(u, 'synthetic') AS synthetic,
    get_field(u, 'exposure_duplicates') AS exposure_duplicates,
    get_field(u, 'request_duplicates') AS request_duplicates,
    get_field(u, 'requests') AS requests,
    get_field(u, 'errors') AS errors,
    get_field(u, 'converted') AS converted,
    get_field(u, 'revenue') AS revenue,
    get_field(u, 'pre_converted') AS pre_converted,
    get_field(u, 'pre_revenue') AS pre_revenue,
    get_field(u, 'assigned_at') AS assigned_at,
    get_field(u, 'assigned_weights') AS assigned_weights,
    get_field(u, 'latencies') AS latencies,
    get_field(u, 'kinds') AS kinds,
    get_field(u, 'kind_counts') AS kind_counts,
    get_field(u, 'kind_values') AS kind_values
FROM (
    SELECT user_id, unnest(per_user) AS u
    FROM (
        SELECT user_id, user_experiments(source, experiment, event_id, variant, synthetic, ts, status,
                                latency_ms, endpoint, region, kind, value, weights) AS per_user
        FROM (
            SELECT user_id, 0 AS source, CAST(experiment AS VARCHAR) AS experiment, event_id,
                   variant, synthetic, ts, status, latency_ms, endpoint, region,
                   CAST(NULL AS VARCHAR) AS kind, CAST(NULL AS DOUBLE) AS value,
                   CAST(NULL AS VARCHAR) AS weights
            FROM requests
            WHERE mode = 'live'
            UNION ALL
            SELECT user_id, 1, CAST(experiment AS VARCHAR), event_id, variant, synthetic, ts,
                   CAST(NULL AS INT), CAST(NULL AS DOUBLE), CAST(NULL AS VARCHAR),
                   CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS DOUBLE), weights
            FROM exposures
            UNION ALL
            SELECT user_id, 2, CAST(NULL AS VARCHAR), event_id, CAST(NULL AS VARCHAR), false, ts,
                   CAST(NULL AS INT), CAST(NULL AS DOUBLE), CAST(NULL AS VARCHAR),
                   CAST(NULL AS VARCHAR), kind, value, CAST(NULL AS VARCHAR)
            FROM business
        ) AS events
        GROUP BY user_id
    ) AS users
) AS rows
