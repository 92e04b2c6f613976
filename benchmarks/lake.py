"""Generate the benchmark lake once per (N, seed) and cache it under ``bench-data/``.

Generation takes longer than a benchmark run at large N, so a lake is written once
and reused; a marker file written last tells a complete lake from an interrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATA = ROOT / "bench-data"
BASE_CONF = ROOT / "conf" / "local.yaml"
DATE = "2026-10-05"
CELLS = 3000
MARKER = "_BENCH_LAKE.json"


def lake_dir(n_events: int, seed: int) -> Path:
    """Where the lake of ``n_events`` events for ``seed`` lives."""
    return BENCH_DATA / f"lake-n{n_events}-s{seed}"


def lake_overrides(raw: Path, out: Path) -> list[str]:
    """``--set`` overrides pointing a job at ``raw`` and writing under ``out``."""
    return [
        f"lake.raw={raw}",
        f"lake.curated={out / 'curated'}",
        f"lake.insights={out / 'insights'}",
        f"lake.reports={out / 'reports'}",
    ]


def ensure_lake(n_events: int, seed: int, env: dict[str, str] | None = None) -> Path:
    """Return the raw lake root for (N, seed), generating it first if it is not cached."""
    base = lake_dir(n_events, seed)
    raw = base / "raw"
    if (base / MARKER).is_file():
        return raw
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    subscribers = max(1000, n_events // 20)
    cmd = [sys.executable, "-m", "jobs.generate_lake", "--conf", str(BASE_CONF), "--date", DATE,
           "--events", str(n_events), "--subscribers", str(subscribers), "--cells", str(CELLS),
           "--seed", str(seed), *[a for s in lake_overrides(raw, base / "unused") for a in ("--set", s)]]
    print(f"[bench] generating lake N={n_events:,} seed={seed} (cached in {base})", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env or dict(os.environ))
    info = {"events": n_events, "subscribers": subscribers, "cells": CELLS, "seed": seed, "date": DATE,
            "generated_in_s": round(time.perf_counter() - t0, 1)}
    (base / MARKER).write_text(json.dumps(info, indent=2))
    return raw
