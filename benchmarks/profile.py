"""Where the pipeline's time goes: wall time per stage, Spark stage metrics and physical plans.

    python -m benchmarks.profile --raw bench-data/lake-n1000000-s42/raw [--out bench-data/work/profile]

Runs ``jobs.pipeline``'s stages in one session with the UI on (port chosen by Spark),
then reads Spark's own REST API: per Spark stage the executor run time, input,
shuffle and spill bytes, grouped by pipeline stage, plus every SQL execution's
physical plan (written to ``<out>/plans.txt``; keys never appear in plans).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.lake import BASE_CONF, DATE, lake_overrides
from mobility.config import load_config
from mobility.runner import Context
from mobility.secrets import Keys
from mobility.spark import build_session


def rest(spark, path: str):
    base = spark.sparkContext.uiWebUrl
    app = spark.sparkContext.applicationId
    with urllib.request.urlopen(f"{base}/api/v1/applications/{app}/{path}") as r:
        return json.loads(r.read())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    p.add_argument("--raw", required=True, type=Path)
    p.add_argument("--out", type=Path, default=Path("bench-data/work/profile"))
    p.add_argument("--date", default=DATE)
    p.add_argument("--set", action="append", default=[], metavar="section.key=value")
    args = p.parse_args(argv)
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(BASE_CONF, [*lake_overrides(args.raw.resolve(), out), "spark.conf.spark.ui.enabled=true",
                                  *args.set])
    keys = Keys.read(cfg.secrets, ("network", "daily"))
    spark = build_session("bench-profile", cfg.spark)
    ctx = Context(spark=spark, cfg=cfg, date=dt.date.fromisoformat(args.date),
                  run_ts=dt.datetime.now(dt.UTC).replace(tzinfo=None), keys=keys)
    from jobs import aggregate, anonymize, pseudonymize

    walls = {}
    for name, mod in (("pseudonymize", pseudonymize), ("anonymize", anonymize), ("aggregate", aggregate)):
        spark.sparkContext.setJobGroup(name, name)
        t0 = time.perf_counter()
        mod.stage(ctx)
        walls[name] = time.perf_counter() - t0
    print("== wall time per pipeline stage ==")
    for k, v in walls.items():
        print(f"  {k:<14}{v:8.1f} s")
    print(f"  {'total':<14}{sum(walls.values()):8.1f} s")

    jobs = rest(spark, "jobs")

    def _ms(t: str) -> float:
        return dt.datetime.strptime(t.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000

    timed = [(j, _ms(j["completionTime"]) - _ms(j["submissionTime"])) for j in jobs if j.get("completionTime")]
    print(f"\n== {len(timed)} Spark jobs, {sum(t for _, t in timed) / 1000:.1f} s of job wall time; the longest ==")
    for j, t in sorted(timed, key=lambda x: -x[1])[:25]:
        print(f"  {j.get('jobGroup', '?'):<13}{j['jobId']:>5}{t:>9.0f} ms  {(j.get('description') or j['name'])[:90]}")
    per_group: dict[str, list[float]] = {}
    for j, t in timed:
        per_group.setdefault(j.get("jobGroup", "?"), []).append(t)
    print("  jobs per group (count, s):", {g: (len(v), round(sum(v) / 1000, 1)) for g, v in per_group.items()})

    group_of = {}
    for job in jobs:
        for sid in job.get("stageIds", []):
            group_of[sid] = (job.get("jobGroup", "?"), job["jobId"], job.get("description") or job["name"])
    print("\n== Spark stages by executor run time (ms); bytes in MB ==")
    print(f"  {'group':<13}{'job':>4}{'stage':>6}{'run ms':>9}{'tasks':>6}{'in MB':>8}{'shW MB':>8}{'shR MB':>8}"
          f"{'spill':>7}  name")
    stages = sorted(rest(spark, "stages?status=complete"), key=lambda s: -s["executorRunTime"])
    mb = 2**20
    for s in stages[:40]:
        g, job, _ = group_of.get(s["stageId"], ("?", -1, ""))
        print(f"  {g:<13}{job:>4}{s['stageId']:>6}{s['executorRunTime']:>9}{s['numTasks']:>6}"
              f"{s['inputBytes'] / mb:>8.1f}{s['shuffleWriteBytes'] / mb:>8.1f}{s['shuffleReadBytes'] / mb:>8.1f}"
              f"{(s['memoryBytesSpilled'] + s['diskBytesSpilled']) / mb:>7.0f}  {s['name'][:60]}")
    by_group: dict[str, int] = {}
    for s in stages:
        g = group_of.get(s["stageId"], ("?",))[0]
        by_group[g] = by_group.get(g, 0) + s["executorRunTime"]
    print("  executor run time per group (s):", {k: round(v / 1000, 1) for k, v in by_group.items()})

    plans = rest(spark, "sql?details=true&planDescription=true&length=1000")
    with open(out / "plans.txt", "w") as f:
        for q in plans:
            f.write(f"==== SQL {q['id']} ({q.get('duration', 0)} ms): {q.get('description', '')[:120]}\n")
            f.write(q.get("planDescription", "") + "\n\n")
    (out / "jobs.json").write_text(json.dumps(jobs, indent=1))
    (out / "stages.json").write_text(json.dumps(stages, indent=1))
    print(f"\nphysical plans of {len(plans)} SQL executions: {out / 'plans.txt'}; Spark's job and stage "
          f"records: {out / 'jobs.json'}, {out / 'stages.json'}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
