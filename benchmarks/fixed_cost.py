"""The pipeline's fixed cost: one warm run on a tiny lake, its Spark jobs counted and timed by call site.

    python -m benchmarks.fixed_cost [--events 20000] [--top 20] [--codegen test|production]

At 20,000 events the data costs next to nothing, so a run's wall time is what every
run pays whatever its size (Spark start-up excluded): suites, ledger reads, Delta
commits, broadcasts, job scheduling. The lake is generated in a temporary folder; the
pipeline runs twice in one session (``local[2]``, the test suite's settings) into two
fresh output folders, and the second run is measured, so JVM warm-up is not counted.
Spark's REST API (UI on, for this process only) gives every job of that run: their
number, the time spent inside jobs, and the call sites that took longest. The rest of
the wall time is driver work between jobs (Delta commits and log reads, Great
Expectations, py4j calls). Keys are random, in this process's environment only.

``--codegen test`` (the default) evaluates expressions as the test suite does, with
Spark's interpreted evaluators; ``--codegen production`` generates and compiles code
for every operator as production runs do (Spark's defaults). At 20,000 events the
generated code costs more than it saves: that difference is the test suite's gain,
not production's.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from mobility.spark import GENERATED_CODE, INTERPRETED

ROOT = Path(__file__).resolve().parent.parent
DATE = dt.date(2026, 6, 1)
# The test suite's session (tests/conftest.py), with the UI on for the REST API.
SPARK_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "2g",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.adaptive.coalescePartitions.initialPartitionNum": "2",
}
CODEGEN = {"test": INTERPRETED, "production": GENERATED_CODE}


def write_conf(folder: Path, raw: Path) -> Path:
    data = yaml.safe_load((ROOT / "conf" / "local.yaml").read_text())
    data["lake"] = {"raw": str(raw), **{z: str(folder / z) for z in ("curated", "insights", "reports")}}
    data["spark"] = {"master": "local[2]", "conf": dict(SPARK_CONF)}
    data["privacy"]["k_min"] = 10
    path = folder / "conf.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _time(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(stamp.replace("GMT", ""), "%Y-%m-%dT%H:%M:%S.%f")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fixed_cost")
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--jfr", type=Path, help="also record the driver JVM during the measured run with Java Flight "
                                             "Recorder (jcmd) into this file; read it with `jfr print`")
    p.add_argument("--pyprofile", type=Path, help="also profile the driver's Python during the measured run "
                                                  "(cProfile) into this file; read it with pstats")
    p.add_argument("--codegen", choices=sorted(CODEGEN), default="test",
                   help="expression evaluation as in the test suite (interpreted) or in production (generated code)")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                   help="a Spark setting to try on top of the test suite's (repeatable)")
    args = p.parse_args(argv)
    SPARK_CONF.update(CODEGEN[args.codegen])
    SPARK_CONF.update(dict(kv.split("=", 1) for kv in args.conf))
    os.environ["MI_NETWORK_KEY"], os.environ["MI_DAILY_KEY"] = secrets.token_hex(32), secrets.token_hex(32)

    from jobs import pipeline
    from jobs.generate_lake import generate_lake
    from mobility.config import SparkConfig
    from mobility.spark import build_session

    spark = build_session("bench-fixed-cost", SparkConfig(master="local[2]", conf=SPARK_CONF))
    tmp = Path(tempfile.mkdtemp(prefix="fixed-cost-"))
    raw = tmp / "raw"
    generate_lake(spark, raw_root=str(raw), start=DATE, days=1, n_subscribers=max(args.events // 10, 100),
                  n_events=args.events, n_cells=20, seed=1, bad_share=0.002)

    def jcmd(*command: str) -> None:
        pid = str(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
        subprocess.run(["jcmd", pid, *command], check=True, capture_output=True)

    def rest(path: str) -> list[dict]:
        url = f"{spark.sparkContext.uiWebUrl}/api/v1/applications/{spark.sparkContext.applicationId}/{path}"
        with urllib.request.urlopen(url) as r:
            return json.loads(r.read())

    walls = []
    for run in ("warm-up", "measured"):
        folder = tmp / run
        folder.mkdir()
        conf = write_conf(folder, raw)
        before = max((j["jobId"] for j in rest("jobs")), default=-1)
        recording = args.jfr is not None and run == "measured"
        if recording:
            jcmd("JFR.start", "name=fixed-cost", "settings=profile")
        profiler = None
        if args.pyprofile is not None and run == "measured":
            import cProfile
            profiler = cProfile.Profile()
            profiler.enable()
        t0 = time.perf_counter()
        status = pipeline.main(["--conf", str(conf), "--date", DATE.isoformat()])
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.pyprofile))
        if status != 0:
            print(f"error: the {run} run failed", file=sys.stderr)
            return 1
        walls.append(time.perf_counter() - t0)
        if recording:
            jcmd("JFR.stop", "name=fixed-cost", f"filename={args.jfr.resolve()}")
    jobs = [j for j in rest("jobs") if j["jobId"] > before and "completionTime" in j]
    by_site: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    inside = 0.0
    for j in jobs:
        seconds = (_time(j["completionTime"]) - _time(j["submissionTime"])).total_seconds()
        inside += seconds
        site = (j.get("description") or j["name"]).replace(str(ROOT) + "/", "")[:100]
        by_site[site][0] += 1
        by_site[site][1] += seconds
    print(f"\n== fixed cost of one pipeline run ({args.events:,} events, local[2], {args.codegen} codegen) ==")
    print(f"warm-up run {walls[0]:.1f} s; measured run {walls[1]:.1f} s: {len(jobs)} Spark jobs, "
          f"{inside:.1f} s inside jobs, {walls[1] - inside:.1f} s of driver work between them")
    print(f"{'seconds':>8} {'jobs':>5}  call site")
    for site, (n, seconds) in sorted(by_site.items(), key=lambda kv: -kv[1][1])[:args.top]:
        print(f"{seconds:8.2f} {n:5d}  {site}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
