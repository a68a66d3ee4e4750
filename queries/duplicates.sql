-- duplicates: events resent under an event_id already seen, per table (dropped by the analysis).
SELECT 'requests' AS "table", COUNT(*) - COUNT(DISTINCT event_id) AS duplicates FROM requests
UNION ALL
SELECT 'business', COUNT(*) - COUNT(DISTINCT event_id) FROM business
UNION ALL
SELECT 'exposures', COUNT(*) - COUNT(DISTINCT event_id) FROM exposures
