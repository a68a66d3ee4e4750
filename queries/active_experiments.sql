-- active_experiments: the experiments with exposures or requests from $start_ms to before $end_ms (ms since the epoch, UTC); what a day's report pages cover.
-- The bounds are cast to the tables' own timestamp type, so DataFusion prunes files and row groups
-- by their statistics.
SELECT DISTINCT CAST(experiment AS VARCHAR) AS experiment
FROM exposures
WHERE ts >= arrow_cast(CAST($start_ms AS BIGINT), 'Timestamp(Millisecond, Some("UTC"))')
  AND ts < arrow_cast(CAST($end_ms AS BIGINT), 'Timestamp(Millisecond, Some("UTC"))')
UNION
SELECT DISTINCT CAST(experiment AS VARCHAR) AS experiment
FROM requests
WHERE ts >= arrow_cast(CAST($start_ms AS BIGINT), 'Timestamp(Millisecond, Some("UTC"))')
  AND ts < arrow_cast(CAST($end_ms AS BIGINT), 'Timestamp(Millisecond, Some("UTC"))')
ORDER BY experiment
