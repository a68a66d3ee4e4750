-- hourly: per hour and variant of one experiment (or of every experiment with experiment=*): live requests, 5xx errors, error rate and p99 latency (non-synthetic).
SELECT CAST(experiment AS VARCHAR) AS experiment, date_trunc('hour', ts) AS hour, variant,
       COUNT(*) AS requests,
       SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors,
       AVG(CASE WHEN status >= 500 THEN 1.0 ELSE 0.0 END) AS error_rate,
       approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99_ms
FROM requests
WHERE ($experiment = '*' OR CAST(experiment AS VARCHAR) = $experiment)
  AND mode = 'live' AND NOT synthetic
GROUP BY CAST(experiment AS VARCHAR), date_trunc('hour', ts), variant
ORDER BY experiment, hour, variant
