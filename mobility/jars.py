"""Resolve the Delta jars into the Ivy cache once (``make setup`` calls this).

Spark resolves ``spark.jars.packages`` through Ivy at every session start; with a
warm cache that is quick and offline. This starts one throw-away local session so
that the first real job or test does not pay for (or fail on) the download.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mobility.spark import DELTA_JAR_VERSION, build_session, delta_package


def ivy_jar() -> Path:
    """Where Ivy leaves the Delta jar (Spark 4 uses ``~/.ivy2.5.2``)."""
    group, artifact, version = delta_package().split(":")
    return Path.home() / ".ivy2.5.2" / "jars" / f"{group}_{artifact}-{version}.jar"


def main() -> int:
    if ivy_jar().is_file():
        return 0
    print(f"resolving Delta {DELTA_JAR_VERSION} jars ({delta_package()}) into the Ivy cache ...")
    try:
        spark = build_session("resolve-delta-jars")
        spark.range(1).count()
        spark.stop()
    except Exception as exc:  # surfaced as one clear line for make
        print(f"error: could not resolve {delta_package()}: {exc}", file=sys.stderr)
        return 1
    if not ivy_jar().is_file():
        print(f"error: {delta_package()} resolved, but {ivy_jar()} is missing", file=sys.stderr)
        return 1
    print(f"Delta jars cached in {ivy_jar().parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
