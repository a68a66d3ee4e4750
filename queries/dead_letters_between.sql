-- dead_letters_between: messages rejected from $start_ms to before $end_ms (ms since the epoch, UTC, by `received_at`), per reason; the report pages' data-quality line.
SELECT reason, COUNT(*) AS messages
FROM dead_letters
WHERE received_at >= arrow_cast(CAST($start_ms AS BIGINT), 'Timestamp(Millisecond, Some("UTC"))')
  AND received_at < arrow_cast(CAST($end_ms AS BIGINT), 'Timestamp(Millisecond, Some("UTC"))')
GROUP BY reason
ORDER BY messages DESC, reason
