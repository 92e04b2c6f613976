"""``make bench``: the pipeline against the I/O floor and against a naive build.

    python -m benchmarks.run [--n 20000000] [--seed 42] [--repeats 3] [--scale 4] [--scale-repeats 3]

Every run is a fresh ``python -m benchmarks.run_one`` process (its own driver JVM),
so that no variant inherits another's cached data, warmed broadcasts or grown heap,
and the memory sampled is that variant's alone — as in production, where each daily
run is its own process. After one untimed warm-up of each variant (page cache, jar
resolution), the variants run alternately ``--repeats`` times, so that drift in the
machine's load hits all of them alike; then floor and pipeline run at ``--scale`` x N
for the scaling ratio. Results: ``benchmarks/results/<timestamp>.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.lake import BENCH_DATA, ROOT, ensure_lake

RESULTS = Path(__file__).resolve().parent / "results"
# Issue #14: pipeline within 4 x the floor, naive at least 2 x slower, and the pipeline's cost
# per extra event (the fit through N and scale x N) at most 8 x the floor's.
TARGETS = {"pipeline_over_floor": 4.0, "naive_over_pipeline": 2.0, "marginal_over_floor_marginal": 8.0,
           "scaling_time_ratio": 4.4}


# --------------------------------------------------------------------------- memory sampling

def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, command name, RSS bytes) for every live process."""
    page = os.sysconf("SC_PAGE_SIZE")
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/statm") as f:
                rss_pages = int(f.read().split()[1])
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        table[int(entry)] = (ppid, name, rss_pages * page)
    return table


class RssSampler(threading.Thread):
    """Samples the run's process tree: the driver (Python + its JVM) and the Python workers."""

    def __init__(self, root_pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.interval = root_pid, interval
        self.peak_driver = self.peak_workers = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            table = _proc_table()
            children: dict[int, list[int]] = {}
            for pid, (ppid, _, _) in table.items():
                children.setdefault(ppid, []).append(pid)
            driver = table.get(self.root_pid, (0, "", 0))[2]
            workers = 0
            for jvm in children.get(self.root_pid, []):
                if table[jvm][1] != "java":
                    continue
                driver += table[jvm][2]
                stack = list(children.get(jvm, []))
                while stack:  # pyspark.daemon and its forked workers
                    pid = stack.pop()
                    workers += table[pid][2]
                    stack.extend(children.get(pid, []))
            self.peak_driver = max(self.peak_driver, driver)
            self.peak_workers = max(self.peak_workers, workers)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# --------------------------------------------------------------------------- one run

def run_variant(variant: str, n_events: int, raw: Path, env: dict[str, str], log) -> dict:
    """Run one variant in a fresh process; return its timing and memory."""
    out = BENCH_DATA / "work" / f"{variant}-n{n_events}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "benchmarks.run_one", "--variant", variant, "--raw", str(raw), "--out", str(out),
           "--run-ts", env["MI_BENCH_RUN_TS"]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = RssSampler(proc.pid)
    sampler.start()
    output = proc.stdout.read()
    proc.wait()
    sampler.stop()
    log.write(output)
    log.flush()
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-30:])
        raise RuntimeError(f"{variant} at N={n_events:,} failed (exit {proc.returncode}):\n{tail}")
    line = next(x for x in output.splitlines() if x.startswith("BENCH_RESULT "))
    result = json.loads(line.removeprefix("BENCH_RESULT "))
    result.update(n_events=n_events, process_seconds=time.perf_counter() - t0,
                  peak_driver_rss_bytes=sampler.peak_driver, peak_worker_rss_bytes=sampler.peak_workers)
    return result


def summarize(runs: list[dict]) -> dict:
    """Median wall time, events/s and peak memory of a list of runs of one variant at one N."""
    secs = sorted(r["seconds"] for r in runs)
    n = runs[0]["n_events"]
    med = statistics.median(secs)
    old_gen = [max((v for k, v in r["jvm_heap_peak_bytes"].items() if "Old" in k), default=0) for r in runs]
    return {
        "n_events": n,
        "runs": len(runs),
        "seconds": [round(s, 2) for s in secs],
        "median_seconds": round(med, 2),
        "events_per_second": round(n / med),
        "peak_driver_rss_mb": round(max(r["peak_driver_rss_bytes"] for r in runs) / 2**20),
        "peak_worker_rss_mb": round(max(r["peak_worker_rss_bytes"] for r in runs) / 2**20),
        "peak_jvm_old_gen_mb": round(max(old_gen) / 2**20),
        # Time in the JVM's collections, its CPU and its JIT compilers' time (all their threads).
        "median_gc_seconds": _median_of(runs, lambda r: sum(c["seconds"] for c in r["jvm_gc"].values()), 2),
        "median_jvm_cpu_seconds": _median_of(runs, lambda r: r["jvm_cpu_seconds"], 1),
        "collectors": sorted({name for r in runs for name in r.get("jvm_gc", {})}),
        "median_jit_seconds": _median_of(runs, lambda r: r["jvm_jit"]["compile_seconds"], 1),
    }


def _median_of(runs: list[dict], value: Callable[[dict], float], digits: int) -> float | None:
    """The median of ``value(run)``, or None when a run lacks the field (saved before it was recorded)."""
    try:
        return round(statistics.median(value(r) for r in runs), digits)
    except KeyError:
        return None


# --------------------------------------------------------------------------- report

def machine() -> dict:
    """What the figures were measured on."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gb": round(mem / 2**30, 1),
            "os": platform.platform(), "python": platform.python_version(),
            "load_avg_at_start": os.getloadavg()}


def check_targets(summary: dict) -> dict:
    r = summary["ratios"]
    mem = summary["memory_growth_4n_over_n"]
    return {
        "pipeline_over_floor <= 4": r["pipeline_over_floor"] <= TARGETS["pipeline_over_floor"],
        "naive_over_pipeline >= 2": r["naive_over_pipeline"] >= TARGETS["naive_over_pipeline"],
        "marginal cost <= 8 x the floor's": (None if r["marginal_over_floor_marginal"] is None
                                             else r["marginal_over_floor_marginal"]
                                             <= TARGETS["marginal_over_floor_marginal"]),
        "scaling t(4N)/t(N) <= 4.4": (None if r["scaling_time_ratio"] is None
                                      else r["scaling_time_ratio"] <= TARGETS["scaling_time_ratio"]),
        "driver memory flat in N (4N/N <= 1.25)": None if mem is None else mem <= 1.25,
    }


def print_report(summary: dict) -> None:
    print("\n== benchmark ==")
    print(f"  {'variant':<16}{'N':>12}{'median s':>10}{'events/s':>12}{'driver MB':>11}{'old gen MB':>11}")
    for key, s in summary["variants"].items():
        print(f"  {key:<16}{s['n_events']:>12,}{s['median_seconds']:>10.1f}{s['events_per_second']:>12,}"
              f"{s['peak_driver_rss_mb']:>11,}{s['peak_jvm_old_gen_mb']:>11,}")
    for k, v in summary["ratios"].items():
        print(f"  {k:<36}{v if v is None else round(v, 2)}")
    print(f"  {'memory_growth_4n_over_n':<36}{summary['memory_growth_4n_over_n']}")
    for k, ok in summary["targets_met"].items():
        print(f"  [{'not measured' if ok is None else 'ok' if ok else 'MISSED'}] {k}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run")
    p.add_argument("--n", type=int, default=20_000_000, help="events in the lake")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale", type=int, default=4, help="scaling run at scale x N (0: skip)")
    p.add_argument("--scale-repeats", type=int, default=3)
    p.add_argument("--variants", default="floor,pipeline,naive")
    p.add_argument("--warmup", default="", help="variants to warm up with (default: all of --variants)")
    p.add_argument("--summarize", type=Path, help="only summarize the runs saved in this .runs.tmp file")
    args = p.parse_args(argv)
    variants = args.variants.split(",")

    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(ROOT))
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    # Throw-away keys for this benchmark only; never printed or saved.
    env["MI_NETWORK_KEY"], env["MI_DAILY_KEY"] = secrets.token_hex(32), secrets.token_hex(32)

    started = dt.datetime.now(dt.UTC)
    # One run time for every run: the lake's opt-outs dated after its events then apply
    # alike to all of them, and the released tables of every run can be compared.
    env["MI_BENCH_RUN_TS"] = started.replace(tzinfo=None, microsecond=0).isoformat()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    log_path = RESULTS / f"{stamp}.log.tmp"
    host = machine()
    runs: dict[str, list[dict]] = {}
    runs_path = RESULTS / f"{stamp}.runs.tmp"  # kept after every run: an interrupted bench can be summarized
    if args.summarize:
        runs = json.loads(args.summarize.read_text())
    else:
        raw = ensure_lake(args.n, args.seed, env)
        raw_big = ensure_lake(args.n * args.scale, args.seed, env) if args.scale else None
        run_all(args, variants, raw, raw_big, env, runs, log_path, runs_path)
    report(args, variants, runs, started, stamp, host, env)
    return 0


def run_all(args: argparse.Namespace, variants: list[str], raw: Path, raw_big: Path | None, env: dict[str, str],
            runs: dict[str, list[dict]], log_path: Path, runs_path: Path) -> None:
    """Warm-up, the alternating repeats at N, then the scaling runs at scale x N."""
    with open(log_path, "w") as log:
        def go(variant: str, n: int, lake: Path, key: str) -> None:
            r = run_variant(variant, n, lake, env, log)
            print(f"[bench] {key:<14} N={n:>12,}  {r['seconds']:7.1f} s  driver RSS "
                  f"{r['peak_driver_rss_bytes'] / 2**20:,.0f} MB", flush=True)
            runs.setdefault(key, []).append(r)
            runs_path.write_text(json.dumps(runs))

        for v in (args.warmup.split(",") if args.warmup else variants):  # page cache, jars; not counted
            go(v, args.n, raw, "warmup")
        runs.pop("warmup", None)
        for _ in range(args.repeats):
            for v in variants:
                go(v, args.n, raw, v)
        if raw_big is not None:
            for _ in range(args.scale_repeats):
                for v in ("floor", "pipeline"):
                    go(v, args.n * args.scale, raw_big, f"{v}@{args.scale}N")


def report(args: argparse.Namespace, variants: list[str], runs: dict[str, list[dict]], started: dt.datetime,
           stamp: str, host: dict, env: dict[str, str]) -> None:
    """Medians, ratios, targets; JSON and PNG under benchmarks/results/."""
    from benchmarks.check import footfall_equal

    variants_summary = {k: summarize(v) for k, v in runs.items()}
    med = {k: s["median_seconds"] for k, s in variants_summary.items()}
    big = f"pipeline@{args.scale}N"
    ratios = {
        "pipeline_over_floor": med["pipeline"] / med["floor"] if "floor" in med and "pipeline" in med else None,
        "naive_over_pipeline": med["naive"] / med["pipeline"] if "naive" in med and "pipeline" in med else None,
        # Only with --variants ...,dataflow,...: the contract's data flow without its rules (benchmarks/dataflow.py).
        **({"dataflow_over_floor": med["dataflow"] / med["floor"],
            "pipeline_over_dataflow": med["pipeline"] / med["dataflow"]}
           if {"floor", "dataflow", "pipeline"} <= med.keys() else {}),
        "scaling_time_ratio": med[big] / med["pipeline"] if big in med else None,
        "floor_scaling_time_ratio": (med[f"floor@{args.scale}N"] / med["floor"]
                                     if f"floor@{args.scale}N" in med else None),
    }
    # Fit t = fixed + N x marginal through N and scale x N (seconds per million events).
    fits = {}
    for v in ("floor", "pipeline"):
        if v in med and f"{v}@{args.scale}N" in med:
            marginal = (med[f"{v}@{args.scale}N"] - med[v]) / ((args.scale - 1) * args.n / 1e6)
            fits[v] = {"fixed_s": round(med[v] - marginal * args.n / 1e6, 1), "s_per_million": round(marginal, 2)}
    ratios["marginal_over_floor_marginal"] = (fits["pipeline"]["s_per_million"] / fits["floor"]["s_per_million"]
                                              if len(fits) == 2 and fits["floor"]["s_per_million"] > 0 else None)
    mem_growth = None
    if big in variants_summary:
        vs = variants_summary
        mem_growth = round(vs[big]["peak_driver_rss_mb"] / vs["pipeline"]["peak_driver_rss_mb"], 2)
    summary = {
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": host,
        "params": {"n_events": args.n, "seed": args.seed, "repeats": args.repeats, "scale": args.scale,
                   "scale_repeats": args.scale_repeats, "warmup": args.warmup or ",".join(variants)},
        "variants": variants_summary,
        "ratios": {k: (round(v, 3) if v is not None else None) for k, v in ratios.items()},
        "fit": fits,
        "memory_growth_4n_over_n": mem_growth,
        "targets": TARGETS,
        "naive_footfall_equals_pipeline": (footfall_equal(BENCH_DATA / "work" / f"pipeline-n{args.n}",
                                                          BENCH_DATA / "work" / f"naive-n{args.n}", env)
                                           if {"pipeline", "naive"} <= set(variants) else None),
        "raw_runs": runs,
    }
    summary["targets_met"] = check_targets(summary) if None not in (ratios["pipeline_over_floor"],
                                                                   ratios["naive_over_pipeline"]) else {}
    out = RESULTS / f"{stamp}.json"
    out.write_text(json.dumps(summary, indent=2))
    print_report(summary)
    print(f"  naive footfall == pipeline footfall: {summary['naive_footfall_equals_pipeline']}")
    try:
        from benchmarks.plot import plot

        print(f"\nsaved {out} and {plot(summary, out.with_suffix('.png'))}")
    except ImportError as exc:  # matplotlib is a dev requirement; the JSON is the record
        print(f"\nsaved {out} (no plot: {exc})")


if __name__ == "__main__":
    sys.exit(main())
