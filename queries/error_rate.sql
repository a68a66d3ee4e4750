-- error_rate: requests, 5xx errors and error rate per experiment and variant (live, non-synthetic).
SELECT experiment, variant,
       COUNT(*) AS requests,
       SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors,
       AVG(CASE WHEN status >= 500 THEN 1.0 ELSE 0.0 END) AS error_rate
FROM requests
WHERE mode = 'live' AND NOT synthetic
GROUP BY experiment, variant
ORDER BY experiment, variant
