"""DuckDB computing what `shiftright analyze --method fixed` reports per variant and per segment,
over the same Parquet: the work a team would do to get shiftright's answers from DuckDB.

- requests deduplicated as shiftright does (a resent copy is the same event_id from the same user
  in the same experiment and mode), exposures and live requests assigning users to variants;
  synthetic users and users seen in two variants left out;
- per variant: users, requests, errors, the error rate with its delta-method CI over users
  (statistics.md section 2);
- p50, p95 and p99 with the user-clustered outer CI of statistics.md section 3: per user b_i, the
  requests at or below the estimate, then the ranks L and U from the ratio metric's variance, and
  the order statistics at those ranks;
- the same per endpoint and per region (a request naming none is in segment `(none)`, as in
  shiftright).

`shiftright bench analysis` runs it as a child process (timed like ours) and compares its answers
with shiftright's report.

Usage: python3 duckdb_same_answers.py DATA_DIR THREADS
Prints one JSON object: {"seconds": <query time>, "arms": [...]}.
"""
import json
import math
import os
import sys
import time

import duckdb

Z = 1.959963984540054  # two-sided 95%
NUS = (0.5, 0.95, 0.99)


def table(data, name):
    pattern = os.path.join(data, name, "**", "*.parquet").replace("'", "''")
    return f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"


def ratio_variance(n, sx, sy, sxx, syy, sxy):
    """Var(Σx/Σy) over n users by the delta method (statistics.md section 2)."""
    if n < 2 or sy == 0:
        return 0.0
    mx, my = sx / n, sy / n
    vx = (sxx - sx * mx) / (n - 1)
    vy = (syy - sy * my) / (n - 1)
    cxy = (sxy - sx * my) / (n - 1)
    v = vx / my**2 - 2 * mx * cxy / my**3 + mx * mx * vy / my**4
    return max(v / n, 0.0)


def ranks(nu, n, users, sb, sbb, sbm, sm, smm):
    """The CI's order-statistic ranks (L, U), or None where statistics.md gives no CI."""
    if users < 2 or n <= Z * Z * nu / (1 - nu) or n <= Z * Z * (1 - nu) / nu:
        return None
    f = sb / sm
    iid = f * (1 - f) / (sm - 1)
    var = ratio_variance(users, sb, sm, sbb, smm, sbm)
    design = var / iid if iid > 0 and sm > 1 else 1.0
    sigma = math.sqrt(nu * (1 - nu) / sm * design)
    return math.floor(n * (nu - Z * sigma)), math.ceil(n * (nu + Z * sigma))


def main(data, threads):
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"""
        CREATE TEMP TABLE live AS
        SELECT CAST(experiment AS VARCHAR) AS experiment, user_id, event_id,
               any_value(variant) AS variant, bool_or(synthetic) AS synthetic,
               any_value(status) AS status, any_value(latency_ms) AS latency,
               any_value(endpoint) AS endpoint, any_value(region) AS region
        FROM {table(data, 'requests')}
        WHERE mode = 'live'
        GROUP BY CAST(experiment AS VARCHAR), user_id, event_id
    """)
    con.execute(f"""
        CREATE TEMP TABLE assigned AS
        SELECT experiment, user_id, min(variant) AS variant,
               min(variant) <> max(variant) AS multiple, bool_or(synthetic) AS synthetic
        FROM (
            SELECT experiment, user_id, variant, synthetic FROM live
            UNION ALL
            SELECT CAST(experiment AS VARCHAR), user_id, variant, synthetic
            FROM {table(data, 'exposures')}
        )
        GROUP BY ALL
    """)
    con.execute("""
        CREATE TEMP TABLE seg AS
        WITH decided AS (
            SELECT l.experiment, a.variant, l.user_id, CAST(l.status >= 500 AS INT) AS error,
                   l.latency, l.endpoint, l.region
            FROM live l JOIN assigned a USING (experiment, user_id)
            WHERE NOT a.synthetic AND NOT a.multiple
        )
        SELECT experiment, 'all' AS dimension, '' AS segment, variant, user_id, error, latency
        FROM decided
        UNION ALL
        SELECT experiment, 'endpoint', COALESCE(endpoint, '(none)'), variant, user_id, error, latency
        FROM decided
        UNION ALL
        SELECT experiment, 'region', COALESCE(region, '(none)'), variant, user_id, error, latency
        FROM decided
    """)
    con.execute("""
        CREATE TEMP TABLE arm AS
        SELECT experiment, dimension, segment, variant, n_lat, xs,
               xs[greatest(1, ceil(n_lat * 0.5 - 1e-9))::BIGINT] AS q50,
               xs[greatest(1, ceil(n_lat * 0.95 - 1e-9))::BIGINT] AS q95,
               xs[greatest(1, ceil(n_lat * 0.99 - 1e-9))::BIGINT] AS q99
        FROM (
            SELECT experiment, dimension, segment, variant, count(latency) AS n_lat,
                   list(latency ORDER BY latency) FILTER (WHERE latency IS NOT NULL) AS xs
            FROM seg GROUP BY ALL
        )
    """)
    sums = con.execute("""
        WITH per_user AS (
            SELECT s.experiment, s.dimension, s.segment, s.variant, s.user_id,
                   count(*) AS n, sum(s.error) AS e, count(s.latency) AS m,
                   sum(CAST(s.latency <= a.q50 AS INT)) AS b50,
                   sum(CAST(s.latency <= a.q95 AS INT)) AS b95,
                   sum(CAST(s.latency <= a.q99 AS INT)) AS b99
            FROM seg s JOIN arm a USING (experiment, dimension, segment, variant)
            GROUP BY ALL
        )
        SELECT p.experiment, p.dimension, p.segment, p.variant,
               count(*), sum(n), sum(e), sum(e * e), sum(n * n), sum(e * n),
               count(*) FILTER (WHERE m > 0), sum(m), sum(m * m),
               sum(b50), sum(b50 * b50), sum(b50 * m),
               sum(b95), sum(b95 * b95), sum(b95 * m),
               sum(b99), sum(b99 * b99), sum(b99 * m),
               any_value(a.q50), any_value(a.q95), any_value(a.q99)
        FROM per_user p JOIN arm a USING (experiment, dimension, segment, variant)
        GROUP BY ALL
    """).fetchall()
    assigned_users = dict(
        ((e, v), int(n))
        for e, v, n in con.execute("""
            SELECT experiment, variant, count(*) FROM assigned
            WHERE NOT synthetic AND NOT multiple GROUP BY ALL
        """).fetchall()
    )
    arms, wanted = [], []
    for row in sums:
        experiment, dimension, segment, variant = row[:4]
        users_r, sn, se, see, snn, sen, users_m, sm, smm = (float(x or 0) for x in row[4:13])
        key = len(arms)
        arm = {
            "experiment": experiment,
            "dimension": dimension,
            "segment": segment,
            "variant": variant,
            "users": assigned_users.get((experiment, variant), 0)
            if dimension == "all"
            else int(users_r),
            "requests": int(sn),
            "errors": int(se),
            "error_rate": se / sn if sn else None,
            "error_rate_ci": None,
        }
        var = ratio_variance(users_r, se, sn, see, snn, sen)
        if var > 0:
            half = Z * math.sqrt(var)
            rate = se / sn
            arm["error_rate_ci"] = [max(rate - half, 0.0), min(rate + half, 1.0)]
        for i, nu in enumerate(NUS):
            sb, sbb, sbm = (float(x or 0) for x in row[13 + 3 * i: 16 + 3 * i])
            name = f"p{round(nu * 100)}"
            arm[name] = {"value": row[22 + i], "ci": None}
            if sm > 0:
                r = ranks(nu, sm, users_m, sb, sbb, sbm, sm, smm)
                if r is not None:
                    low, high = (min(max(x, 1), int(sm)) for x in r)
                    wanted.append((key, name, low, high))
        arms.append(arm)
    # The order statistics at the CI ranks, read from each arm's sorted latencies.
    con.execute("CREATE TEMP TABLE wanted (k INT, e VARCHAR, d VARCHAR, s VARCHAR, v VARCHAR, "
                "q VARCHAR, lo BIGINT, hi BIGINT)")
    con.executemany(
        "INSERT INTO wanted VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(k, arms[k]["experiment"], arms[k]["dimension"], arms[k]["segment"], arms[k]["variant"],
          q, lo, hi) for k, q, lo, hi in wanted],
    )
    for k, q, lo, hi in con.execute("""
        SELECT w.k, w.q, a.xs[w.lo], a.xs[w.hi] FROM wanted w
        JOIN arm a ON a.experiment = w.e AND a.dimension = w.d AND a.segment = w.s AND a.variant = w.v
    """).fetchall():
        arms[k][q]["ci"] = [lo, hi]
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "arms": arms}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
