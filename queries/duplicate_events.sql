-- duplicate_events: per experiment, request and exposure events resent under an event_id already seen (the analysis counts each event_id once).
SELECT CAST(experiment AS VARCHAR) AS experiment, CAST(SUM(copies - 1) AS BIGINT) AS duplicates
FROM (
    SELECT experiment, event_id, COUNT(*) AS copies FROM requests GROUP BY experiment, event_id HAVING COUNT(*) > 1
    UNION ALL
    SELECT experiment, event_id, COUNT(*) AS copies FROM exposures GROUP BY experiment, event_id HAVING COUNT(*) > 1
) AS d
GROUP BY experiment
