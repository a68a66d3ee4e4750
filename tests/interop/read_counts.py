"""Reads shiftright's Parquet output with DuckDB and pyarrow, independently of shiftright, and
prints the row count of every table as JSON: {"duckdb": {table: n}, "pyarrow": {table: n}}.

Usage: python3 read_counts.py OUT_DIR
"""
import json
import os
import sys

import duckdb
import pyarrow.dataset as ds

TABLES = {"requests": "requests", "business": "business", "exposures": "exposures", "dead_letters": "_dead_letters"}


def main(out):
    counts = {"duckdb": {}, "pyarrow": {}}
    con = duckdb.connect()
    for table, directory in TABLES.items():
        root = os.path.join(out, directory)
        if not os.path.isdir(root):
            counts["duckdb"][table] = counts["pyarrow"][table] = 0
            continue
        # Hive partitioning on: DuckDB adds date/experiment from the paths, as a user would see them.
        glob = os.path.join(root, "**", "*.parquet")
        n = con.execute("SELECT COUNT(*) FROM read_parquet(?, hive_partitioning = true)", [glob]).fetchone()[0]
        counts["duckdb"][table] = n
        dataset = ds.dataset(root, format="parquet", partitioning="hive", exclude_invalid_files=False)
        counts["pyarrow"][table] = dataset.count_rows()
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1])
