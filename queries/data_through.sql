-- data_through: per experiment, the newest event time of its requests and exposures, and its event count; what `shiftright serve` calls fresh or stale.
SELECT CAST(experiment AS VARCHAR) AS experiment,
       MAX(ts) AS data_through,
       COUNT(*) AS events
FROM (
    SELECT experiment, ts FROM requests
    UNION ALL
    SELECT experiment, ts FROM exposures
)
GROUP BY CAST(experiment AS VARCHAR)
ORDER BY experiment
