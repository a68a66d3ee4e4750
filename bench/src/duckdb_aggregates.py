"""DuckDB's side of the analysis benchmark: the per-variant aggregates a user would otherwise compute
with DuckDB over shiftright's Parquet -- live non-synthetic requests, 5xx errors, the latency sum and
exact p99, exposed users, converted users and revenue at or after exposure -- over the same files.

`shiftright bench analysis` runs it as a child process (so its wall time and peak RSS are measured
the same way as ours) and checks that its request and error counts agree with shiftright's.

Usage: python3 duckdb_aggregates.py DATA_DIR THREADS
Prints one JSON object: {"seconds": <query time>, "variants": [...]}.
"""
import json
import os
import sys
import time

import duckdb


def table(data, name):
    pattern = os.path.join(data, name, "**", "*.parquet").replace("'", "''")
    return f"read_parquet('{pattern}', hive_partitioning = true)"


def main(data, threads):
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    rows = con.execute(
        f"""
        WITH r AS (
            SELECT CAST(experiment AS VARCHAR) AS experiment, variant,
                   COUNT(*) AS requests,
                   COUNT(*) FILTER (WHERE status >= 500) AS errors,
                   SUM(latency_ms) AS latency_sum,
                   quantile_cont(latency_ms, 0.99) AS p99
            FROM {table(data, 'requests')}
            WHERE mode = 'live' AND NOT synthetic
            GROUP BY ALL
        ),
        first_exposure AS (
            SELECT CAST(experiment AS VARCHAR) AS experiment, user_id,
                   MIN(variant) AS variant, MIN(ts) AS ts
            FROM {table(data, 'exposures')}
            WHERE NOT synthetic
            GROUP BY ALL
        ),
        b AS (
            SELECT e.experiment, e.variant,
                   COUNT(DISTINCT e.user_id) FILTER (WHERE b.kind = 'purchase') AS converted,
                   COALESCE(SUM(b.value), 0) AS revenue
            FROM first_exposure e
            LEFT JOIN {table(data, 'business')} b
              ON b.user_id = e.user_id AND b.ts >= e.ts
            GROUP BY ALL
        ),
        u AS (
            SELECT experiment, variant, COUNT(*) AS users FROM first_exposure GROUP BY ALL
        )
        SELECT r.experiment, r.variant, r.requests, r.errors, r.latency_sum, r.p99,
               u.users, b.converted, b.revenue
        FROM r
        JOIN u USING (experiment, variant)
        JOIN b USING (experiment, variant)
        ORDER BY 1, 2
        """
    ).fetchall()
    seconds = time.perf_counter() - started
    keys = ["experiment", "variant", "requests", "errors", "latency_sum", "p99", "users",
            "converted", "revenue"]
    variants = [dict(zip(keys, row)) for row in rows]
    for v in variants:
        for k in ("requests", "errors", "users", "converted"):
            v[k] = int(v[k])
        for k in ("latency_sum", "p99", "revenue"):
            v[k] = float(v[k])
    print(json.dumps({"seconds": seconds, "variants": variants}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
