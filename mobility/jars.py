"""Resolve the Delta jars once into ``jars/`` (``make setup`` calls this).

    python -m mobility.jars [--dir jars] [--force]

Maven (``mvn -q dependency:copy-dependencies`` on a generated one-dependency pom)
copies ``io.delta:delta-spark_<spark>_<scala>:<version>`` and its runtime
dependencies into a git-ignored folder and writes ``MANIFEST.txt`` last: the
coordinate, then one jar per line. Jars the installed PySpark already ships (log4j,
SLF4J, Hadoop, Jackson, Parquet, ...) are left out, as is commons-logging (Spark
bridges it). :func:`mobility.spark.build_session` passes those
files through ``spark.jars`` in local mode when the manifest matches and every jar is
present, so a job start resolves nothing and prints no Ivy report. Without ``mvn`` or
without network the jobs still work: they fall back to ``spark.jars.packages`` (Ivy)
and say so on stderr.

Maven prints nothing with ``-q`` unless it fails; then its output is shown. It works in
a throw-away local repository, never in ``~/.m2``: Maven fetches only the POM of a
dependency whose version it mediates away (SLF4J, snappy-java), and Spark's Ivy
resolution of ``--packages`` (the cluster deployment, ``docs/deploy.md``) looks in
``~/.m2`` first, takes such a POM as the module and then fails on its missing jar
(``download failed: org.slf4j#slf4j-api;2.0.13!slf4j-api.jar``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mobility.spark import DELTA_JAR_VERSION, JARS_DIR, MANIFEST, delta_package, local_jars, needed, shipped_by_spark

# Spark ships its own Scala library; Spark's Ivy resolution leaves it out too.
EXCLUDED_ARTIFACTS = ("scala-library",)
POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.mobility-insights</groupId>
  <artifactId>delta-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version></dependency>
  </dependencies>
</project>
"""


def resolve(target: Path) -> list[str]:
    """Copy the Delta jars into ``target`` with Maven; return the jar names. Raises RuntimeError."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("mvn not found on the PATH")
    group, artifact, version = delta_package().split(":")
    with tempfile.TemporaryDirectory(prefix="delta-jars-") as tmp:
        staging = Path(tmp) / "jars"
        (Path(tmp) / "pom.xml").write_text(POM.format(group=group, artifact=artifact, version=version))
        cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(Path(tmp) / "pom.xml"),
               f"-Dmaven.repo.local={Path(tmp) / 'repository'}",
               "dependency:copy-dependencies", f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
               f"-DexcludeArtifactIds={','.join(EXCLUDED_ARTIFACTS)}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"mvn exited {proc.returncode}:\n{tail}")
        names = needed(sorted(p.name for p in staging.glob("*.jar")), shipped_by_spark())
        if f"{artifact}-{version}.jar" not in names:
            raise RuntimeError(f"mvn finished but {artifact}-{version}.jar is missing")
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("*.jar"):
            old.unlink()
        for name in names:
            shutil.copy2(staging / name, target / name)
    # The manifest last: a folder without it (an interrupted copy) is not used.
    (target / MANIFEST).write_text("\n".join([delta_package(), *names]) + "\n")
    return names


def warm_ivy_cache() -> int:
    """The fallback: resolve ``spark.jars.packages`` once so that later starts find the Ivy cache warm."""
    from mobility.spark import build_session

    try:
        spark = build_session("resolve-delta-jars")
        spark.range(1).count()
        spark.stop()
    except Exception as exc:  # surfaced as one clear line for make
        print(f"error: could not resolve {delta_package()}: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mobility.jars")
    p.add_argument("--dir", default=str(JARS_DIR), help="where the jars go (default: jars/ in the repository)")
    p.add_argument("--force", action="store_true", help="resolve again even if the folder is complete")
    args = p.parse_args(argv)
    target = Path(args.dir)
    if not args.force and local_jars(target) is not None:
        return 0
    print(f"resolving Delta {DELTA_JAR_VERSION} jars ({delta_package()}) into {target}/ with Maven ...")
    try:
        names = resolve(target)
    except (RuntimeError, OSError) as exc:
        print(f"warning: could not resolve {delta_package()} into {target}/ with Maven: {exc}", file=sys.stderr)
        print("warning: falling back to spark.jars.packages (Ivy, with its report at every job start)",
              file=sys.stderr)
        return warm_ivy_cache()
    print(f"{len(names)} jars in {target}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
