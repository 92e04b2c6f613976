"""Micro-benchmarks behind the optimization decisions (one session, noop sink, cached input).

    python -m benchmarks.micro --raw bench-data/lake-n1000000-s42/raw [--repeats 3]

Each case is the same cached event frame pushed through one variant of a step and
written to Spark's ``noop`` sink, so only that step's compute is timed. Cases run
alternately; the median is reported next to the plain scan of the cache.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mobility.io import read_raw
from mobility.secrets import Secret
from mobility.spark import build_session
from transforms.hashing import IPAD_COL, OPAD_COL, hmac_pads, hmac_sha256_hex, key_frame, with_key
from transforms.stage1 import cells_valid_on
from transforms.stage2 import locate, points_to_h3, with_cell_h3

DATE = dt.date(2026, 10, 5)


def noop(df: DataFrame) -> float:
    t0 = time.perf_counter()
    df.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.micro")
    p.add_argument("--raw", required=True, type=Path)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default="")
    args = p.parse_args(argv)
    spark = build_session("bench-micro")
    raw = str(args.raw.resolve())
    events = read_raw(spark, raw, "network_events", DATE.isoformat()).cache()
    n = events.count()
    secret = Secret(bytes(range(32)))  # a fixed dummy key: nothing here is real data
    ipad, opad = hmac_pads(secret.value)
    keys = key_frame(spark, secret)
    cells_h3 = with_cell_h3(cells_valid_on(read_raw(spark, raw, "cells"), date=DATE), resolution=8).cache()
    cells_h3.count()
    has_fix = F.col("latitude").isNotNull() & F.col("longitude").isNotNull()

    cases = {
        "scan": lambda: events,
        "hmac_keyframe_bnlj": lambda: events.transform(with_key, keys=keys).select(
            hmac_sha256_hex(F.col("msisdn")).alias("h")),
        "hmac_keyframe_bhj_const": lambda: events.withColumn("_kj", F.spark_partition_id() * 0).join(
            F.broadcast(keys.withColumn("_kj", F.lit(0))), on="_kj", how="inner").select(
            hmac_sha256_hex(F.col("msisdn")).alias("h")),
        "hmac_literal_key": lambda: events.withColumn(IPAD_COL, F.lit(bytearray(ipad))).withColumn(
            OPAD_COL, F.lit(bytearray(opad))).select(hmac_sha256_hex(F.col("msisdn")).alias("h")),
        "h3_cell_join_only": lambda: events.join(F.broadcast(cells_h3.select("cell_id", "cell_h3")),
                                                 on="cell_id", how="left").select("cell_h3"),
        # The earlier with_location_h3: every row through the UDF (nulls for rows without a fix).
        "h3_pandas_udf_all_rows": lambda: events.join(F.broadcast(cells_h3.select("cell_id", "cell_h3")),
                                                      on="cell_id", how="left").select(F.coalesce(points_to_h3(
            F.when(has_fix, F.col("latitude")), F.when(has_fix, F.col("longitude")), resolution=8),
            F.col("cell_h3")).alias("h3_cell")),
        # The current transforms.stage2.locate: fix rows through the UDF, the rest from the cell join.
        "h3_locate_split": lambda: locate(events, cells_h3=cells_h3, targets={"h3_cell": ("cell_h3", 8)}).select(
            "h3_cell"),
        "h3_pandas_udf_fix_rows_only": lambda: events.filter(has_fix).select(
            points_to_h3(F.col("latitude"), F.col("longitude"), resolution=8).alias("h")),
        "distinct_hex64": lambda: events.transform(with_key, keys=keys).select(
            "cell_id", hmac_sha256_hex(F.col("msisdn")).alias("id")).groupBy("cell_id").agg(
            F.count_distinct("id")),
        "distinct_xxhash64": lambda: events.transform(with_key, keys=keys).select(
            "cell_id", hmac_sha256_hex(F.col("msisdn")).alias("id")).groupBy("cell_id").agg(
            F.count_distinct(F.xxhash64("id"))),
    }
    if args.only:
        cases = {k: v for k, v in cases.items() if k == "scan" or k in args.only.split(",")}
    for f in cases.values():  # warm-up: JIT, Python workers
        noop(f())
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeats):
        for k, f in cases.items():
            times[k].append(noop(f()))
    base = statistics.median(times["scan"])
    print(f"== micro-benchmarks, {n:,} cached events, median of {args.repeats} ==")
    for k, ts in times.items():
        med = statistics.median(ts)
        print(f"  {k:<30}{med:8.2f} s  {med / base:6.2f} x scan   runs {[round(t, 2) for t in ts]}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
