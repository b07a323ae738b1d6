#!/usr/bin/env python3
"""Run the `-- query:` blocks of docs/fleet.md on exitscope's Parquet export, verbatim.

usage: fleet_query.py duckdb|spark DOCS FLEET_DIR BEFORE AFTER

FLEET_DIR holds PERIOD/HOST/{exits,runs}.parquet; BEFORE and AFTER are two of its PERIODs.
Prints one JSON object: query name -> list of rows (column -> value), plus "engine" and
"seconds" (the queries' wall time, the session start excluded).
"""
import json
import os
import re
import sys
import time
from decimal import Decimal


def queries(docs):
    text = open(docs, encoding="utf-8").read()
    out = {}
    for block in re.findall(r"```sql\n(.*?)```", text, re.S):
        m = re.match(r"-- query: (\w+)\n", block)
        if m:
            out[m.group(1)] = block[m.end():].strip()
    return out


def plain(v):
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def main():
    engine, docs, root, before, after = sys.argv[1:6]
    views = {
        "exits": f"{root}/*/*/exits.parquet",
        "runs": f"{root}/*/*/runs.parquet",
        "exits_before": f"{root}/{before}/*/exits.parquet",
        "exits_after": f"{root}/{after}/*/exits.parquet",
    }
    qs = queries(docs)
    results = {"engine": engine}
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        for name, path in views.items():
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        start = time.time()
        for name, sql in qs.items():
            cur = con.execute(sql)
            cols = [d[0] for d in cur.description]
            results[name] = [dict(zip(cols, map(plain, row))) for row in cur.fetchall()]
    elif engine == "spark":
        # A short local job on a small machine: the C1 JIT alone and the serial GC start and
        # finish sooner (measured here: 60 s -> 25 s for session and queries).
        os.environ.setdefault(
            "PYSPARK_SUBMIT_ARGS",
            "--driver-java-options '-XX:TieredStopAtLevel=1 -XX:+UseSerialGC' pyspark-shell",
        )
        from pyspark.sql import SparkSession

        spark = (
            SparkSession.builder.master("local[2]")
            .appName("exitscope-fleet-test")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "1")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", "1g")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        for name, path in views.items():
            spark.sql(f"CREATE TEMPORARY VIEW {name} USING parquet OPTIONS (path '{path}')")
        start = time.time()
        for name, sql in qs.items():
            results[name] = [
                {k: plain(v) for k, v in row.asDict().items()} for row in spark.sql(sql).collect()
            ]
        spark.stop()
    else:
        sys.exit(f"unknown engine {engine}")
    results["seconds"] = round(time.time() - start, 3)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
