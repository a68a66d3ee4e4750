-- business_scan: every business event, as stored (resent copies included): the columns the analysis reads.
-- The analysis' one pass over `business`: it folds these rows into each exposed user's
-- conversion and revenue before and after first exposure (analyze/src/user_scan.rs), counting
-- each event_id once; `user_metrics` says the same in SQL.
SELECT
    event_id,
    user_id,
    ts,
    kind,
    value
FROM business
