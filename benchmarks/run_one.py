"""One timed benchmark run in its own process: ``floor``, ``pipeline`` or ``naive``.

    python -m benchmarks.run_one --variant pipeline --raw bench-data/lake-.../raw --out bench-data/work/pipeline

Variants: ``floor`` (read the raw events, write them as Delta), ``dataflow`` (the
contract's three Delta hops without its rules, ``benchmarks/dataflow.py``), ``pipeline``
and ``naive`` (the pipeline with per-event Python kernels, ``benchmarks/naive.py``).

The clock starts after the SparkSession is up (its start-up is the same for every
variant and says nothing about the work) and stops when the last table is written.
The result is one JSON line on stdout, prefixed with ``BENCH_RESULT``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.lake import BASE_CONF, DATE, lake_overrides
from mobility.config import load_config
from mobility.io import read_raw
from mobility.runner import Context
from mobility.secrets import Keys
from mobility.spark import build_session

VARIANTS = ("floor", "dataflow", "pipeline", "naive")


def _management(spark):
    """The driver JVM's ``java.lang.management.ManagementFactory``."""
    return spark.sparkContext._jvm.java.lang.management.ManagementFactory


def jvm_heap_peaks(spark) -> dict[str, int]:
    """Peak bytes used per JVM heap pool since start (the old generation is what stays live)."""
    mf = _management(spark)
    peaks = {}
    for pool in mf.getMemoryPoolMXBeans():
        if str(pool.getType().toString()) == "Heap memory":
            peaks[str(pool.getName())] = int(pool.getPeakUsage().getUsed())
    return peaks


def jvm_gc(spark) -> dict[str, dict[str, float]]:
    """Collections and seconds spent in them per JVM collector since start (e.g. ``PS Scavenge``)."""
    return {str(gc.getName()): {"collections": int(gc.getCollectionCount()), "seconds": gc.getCollectionTime() / 1000}
            for gc in _management(spark).getGarbageCollectorMXBeans()}


def jvm_cpu_seconds(spark) -> float:
    """CPU seconds the driver JVM has used since it started (in local mode it runs the tasks too), from
    ``/proc``: on a machine whose speed drifts, a steadier comparison than wall time."""
    pid = _management(spark).getRuntimeMXBean().getPid()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def jvm_jit(spark) -> dict[str, float]:
    """Seconds the JIT compilers have spent since the JVM started, and classes loaded: a fresh JVM's
    first queries pay for both, and on 2 cores the compiler threads compete with the tasks."""
    mf = _management(spark)
    return {"compile_seconds": mf.getCompilationMXBean().getTotalCompilationTime() / 1000,
            "classes_loaded": int(mf.getClassLoadingMXBean().getTotalLoadedClassCount())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run_one")
    p.add_argument("--variant", required=True, choices=VARIANTS)
    p.add_argument("--raw", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--date", default=DATE)
    p.add_argument("--set", action="append", default=[], metavar="section.key=value")
    p.add_argument("--run-ts", type=dt.datetime.fromisoformat, default=None,
                   help="the run's time, UTC (default: now). Opt-outs in force at this time are honoured; the "
                        "benchmark lake holds preference changes dated after its events, so runs compared with "
                        "each other must share it (make bench passes one to every run)")
    args = p.parse_args(argv)

    cfg = load_config(BASE_CONF, [*lake_overrides(args.raw.resolve(), args.out.resolve()), *args.set])
    date = dt.date.fromisoformat(args.date)
    keys = Keys.read(cfg.secrets, ("network", "daily"))
    spark = build_session(f"bench-{args.variant}", cfg.spark)
    run_ts = args.run_ts or dt.datetime.now(dt.UTC).replace(tzinfo=None)

    cpu0, jit0 = jvm_cpu_seconds(spark), jvm_jit(spark)
    t0 = time.perf_counter()
    if args.variant == "floor":
        events = read_raw(spark, cfg.lake.raw, "network_events", date.isoformat())
        events.write.format("delta").mode("overwrite").save(str(args.out.resolve() / "floor_events"))
    elif args.variant == "dataflow":
        from benchmarks.dataflow import dataflow

        dataflow(spark, cfg.lake.raw, args.out.resolve(), date.isoformat())
    elif args.variant == "pipeline":
        from jobs import pipeline

        pipeline.stage(Context(spark=spark, cfg=cfg, date=date, run_ts=run_ts, keys=keys))
    else:
        from benchmarks.naive import NAIVE
        from jobs import pipeline

        pipeline.stage(Context(spark=spark, cfg=cfg, date=date, run_ts=run_ts, keys=keys, kernels=NAIVE))
    seconds = time.perf_counter() - t0

    result = {"variant": args.variant, "seconds": seconds, "jvm_heap_peak_bytes": jvm_heap_peaks(spark),
              "jvm_gc": jvm_gc(spark), "jvm_cpu_seconds": jvm_cpu_seconds(spark) - cpu0,
              "jvm_jit": {k: v - jit0[k] for k, v in jvm_jit(spark).items()}}
    spark.stop()
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
