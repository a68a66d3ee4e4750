-- request_scan: every request event, as stored (resent copies included): the columns the analysis reads.
-- The analysis' one pass over `requests`: it streams these rows into its own compact fold
-- (analyze/src/request_scan.rs), which drops resent copies by `event_id`, keeps of each live
-- request only its latency, user, endpoint, region and error flag, and of each user its
-- assignment and live tally (the per-user figures of `user_metrics`). Grouping in SQL held
-- hundreds of bytes per request; at 10^8 requests that did not fit in memory.
SELECT
    CAST(experiment AS VARCHAR) AS experiment,
    event_id,
    user_id,
    variant,
    mode,
    synthetic,
    endpoint,
    region,
    status,
    latency_ms,
    shadow_match,
    ts
FROM requests
