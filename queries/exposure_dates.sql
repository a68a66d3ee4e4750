-- exposure_dates: the UTC dates with exposure events, and how many; what `shiftright report --date` can be given.
SELECT CAST(CAST(date_trunc('day', ts) AS DATE) AS VARCHAR) AS date, COUNT(*) AS exposures
FROM exposures
GROUP BY CAST(CAST(date_trunc('day', ts) AS DATE) AS VARCHAR)
ORDER BY date
