-- latency: p50, p95 and p99 latency in ms per experiment and variant (live, non-synthetic).
SELECT experiment, variant,
       COUNT(*) AS requests,
       approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms,
       approx_percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_ms,
       approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99_ms
FROM requests
WHERE mode = 'live' AND NOT synthetic
GROUP BY experiment, variant
ORDER BY experiment, variant
