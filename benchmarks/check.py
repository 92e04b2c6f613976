"""Check that the naive build released exactly the pipeline's insights (same keys, same rows).

    python -m benchmarks.check <pipeline-out> <naive-out>
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.lake import ROOT


def footfall_equal(a: Path, b: Path, env: dict[str, str]) -> bool:
    """Run the comparison in its own process (a small Spark session); True when equal."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.check", str(a), str(b)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    return proc.returncode == 0 and "FOOTFALL_EQUAL True" in proc.stdout


def main(argv: list[str] | None = None) -> int:
    a, b = (Path(x).resolve() for x in (argv or sys.argv[1:]))
    from mobility.spark import build_session

    spark = build_session("bench-check")
    equal, total = True, 0
    for table in ("footfall", "presence", "od_flows"):
        pa, pb = a / "insights" / table, b / "insights" / table
        if not pa.exists() and not pb.exists():
            continue
        fa = spark.read.format("delta").load(str(pa))
        fb = spark.read.format("delta").load(str(pb)).select(*fa.columns)
        n = fa.count()
        same = n == fb.count() and fa.exceptAll(fb).isEmpty() and fb.exceptAll(fa).isEmpty()
        print(f"  {table}: {n} rows, equal={same}")
        equal, total = equal and same, total + n
    print(f"FOOTFALL_EQUAL {equal and total > 0} rows={total}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
