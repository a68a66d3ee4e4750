-- srm_counts: exposed users per experiment and variant (the counts the SRM check tests).
SELECT experiment, variant, COUNT(DISTINCT user_id) AS users
FROM exposures
WHERE NOT synthetic
GROUP BY experiment, variant
ORDER BY experiment, variant
