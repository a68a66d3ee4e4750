-- business_kinds: per experiment, variant and business event kind, the users with events of that kind at or after first exposure, the events and their value: what `[[metrics]]` of the experiments file are made of.
-- From `analysis_users` (stage 1 of the analysis): the users decided on (not synthetic, in one
-- variant), each event_id once.
SELECT experiment, variant, kind, COUNT(*) AS users, SUM(events) AS events, SUM(value) AS value
FROM (
    SELECT experiment, variant, unnest(kinds) AS kind, unnest(kind_counts) AS events,
           unnest(kind_values) AS value
    FROM analysis_users
    WHERE dimension = 'all' AND NOT synthetic AND NOT multiple_variants
) AS per_kind
GROUP BY experiment, variant, kind
ORDER BY experiment, variant, kind
