-- exposure_scan: every exposure event, as stored (resent copies included): the columns the analysis reads.
-- The analysis' one pass over `exposures`: it folds these rows into each user's assignment
-- (analyze/src/user_scan.rs), counting each (experiment, user, event_id) once; `user_metrics`
-- says the same in SQL.
SELECT
    CAST(experiment AS VARCHAR) AS experiment,
    event_id,
    user_id,
    variant,
    synthetic,
    ts
FROM exposures
