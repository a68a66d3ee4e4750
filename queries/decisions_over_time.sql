-- decisions_over_time: every recorded verdict of one experiment, oldest first, with its first reason (results history).
SELECT run_at, command, method, verdict, users, srm_p_value, reason AS first_reason, run_id
FROM decisions
WHERE experiment = $experiment
ORDER BY run_at
