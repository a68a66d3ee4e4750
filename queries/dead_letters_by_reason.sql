-- dead_letters_by_reason: rejected messages per topic and reason, with the offsets they span.
SELECT topic, reason, COUNT(*) AS messages, MIN("offset") AS first_offset, MAX("offset") AS last_offset
FROM dead_letters
GROUP BY topic, reason
ORDER BY messages DESC, topic, reason
