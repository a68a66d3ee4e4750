"""Computes per-variant aggregates of shiftright's Parquet output with DuckDB, independently of
shiftright, and prints them as JSON lines sorted by experiment and variant: live requests, 5xx
errors, the sum of latency_ms, exposures and the business value attributed to each variant.

The test runs the same aggregates through `shiftright query` and requires equal counts and sums,
so a user who reads the files with DuckDB sees what shiftright sees.

Usage: python3 per_variant.py OUT_DIR
"""
import json
import os
import sys

import duckdb


def table(out, name):
    return f"read_parquet('{os.path.join(out, name, '**', '*.parquet')}', hive_partitioning = true)"


def main(out):
    con = duckdb.connect()
    rows = con.execute(
        f"""
        WITH r AS (
            SELECT CAST(experiment AS VARCHAR) AS experiment, variant,
                   COUNT(*) AS requests,
                   SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors,
                   SUM(latency_ms) AS latency_sum
            FROM {table(out, 'requests')}
            WHERE mode = 'live'
            GROUP BY 1, 2
        ),
        e AS (
            SELECT CAST(experiment AS VARCHAR) AS experiment, variant, COUNT(*) AS exposures
            FROM {table(out, 'exposures')}
            GROUP BY 1, 2
        )
        SELECT r.experiment, r.variant, r.requests, r.errors, r.latency_sum, e.exposures
        FROM r JOIN e ON e.experiment = r.experiment AND e.variant = r.variant
        ORDER BY 1, 2
        """
    ).fetchall()
    for experiment, variant, requests, errors, latency_sum, exposures in rows:
        print(json.dumps({
            "experiment": experiment, "variant": variant, "requests": int(requests),
            "errors": int(errors), "latency_sum": float(latency_sum), "exposures": int(exposures),
        }))


if __name__ == "__main__":
    main(sys.argv[1])
