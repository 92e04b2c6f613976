"""The one SparkSession factory for jobs, tests, the demo and benchmarks."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from mobility.config import SparkConfig

# The Python package is delta-spark 4.4.1, but Maven Central serves no 4.4.1 jar
# (4.4.1 is a Python-only release; the newest jar of the line is 4.4.0), so the JVM
# side is pinned here instead of using delta.configure_spark_with_delta_pip, which
# would ask for the missing 4.4.1 jar.
DELTA_JAR_VERSION = "4.4.0"
SCALA_VERSION = "2.13"

# Settings every session gets, wherever it runs. The columnar-input switch works
# around SPARK-58241 (PySpark 4.2.0 hangs on plain Python UDFs over a Parquet scan);
# h3-pyspark's UDFs are plain Python UDFs and run over the cell table.
BASE_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pythonUDF.columnarInput.enabled": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "static",
    # Redact anything that looks like a key name or value in the UI, logs and plans
    # (defence in depth: keys never enter a plan in the first place).
    "spark.redaction.regex": "(?i)secret|password|token|access[.]key|mi_.*key",
    "spark.sql.redaction.string.regex": "(?i)mi_(network|daily)_key[^,\\s]*",
    # Whether an old table version can still be read is judged by its files, as any other
    # Delta reader would judge it (mobility/release.py, ledger.read_pinned). Delta's own
    # refusal to time-travel beyond delta.deletedFileRetentionDuration would make the
    # republish check skip an earlier release whose files another reader can still read.
    "spark.databricks.delta.vacuum.enforceTimeTravelWithinDeletedFileRetentionDuration": "false",
}

# Local mode only: small machines, no UI unless asked for.
# How Spark evaluates expressions. Production keeps Spark's defaults (generated code,
# which pays per row at scale). The test suite evaluates them interpreted: on its tiny
# data, generating and compiling code was 42 % of a pipeline run's CPU (Java Flight
# Recorder; `benchmarks.fixed_cost --codegen test|production` measures both).
GENERATED_CODE: dict[str, str] = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}
INTERPRETED: dict[str, str] = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}

LOCAL_DEFAULTS: dict[str, str] = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "4g",
    # Delta rebuilds a table's snapshot from its log with this many tasks (default 50,
    # sized for clusters). On 2 local cores those 50 tiny tasks cost more than the data:
    # profiling a 1 M-event pipeline run put 40 % of all executor time in them.
    "spark.databricks.delta.snapshotPartitions": "2",
    # VACUUM lists a table's directories with this many tasks (default 10 000): measured
    # on a 2-core machine, a one-partition table took 62-82 s to vacuum, 7-11 s with 8.
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "8",
}

# Local mode's garbage collector (the driver JVM, which also runs the executors' tasks):
# the throughput collector rather than the JVM's default, G1, whose concurrent threads and
# write barriers compete with the tasks on 2 cores. Measured on the benchmark lake, fresh
# process per run, alternating, same keys and run time, released tables identical
# (benchmarks/README.md, seventeenth session): 1 M events, median of 8 runs 99.8 s against
# 110.0 s (faster in 7 of 8 pairs; the JVM's CPU time 10 % lower); 4 M, median 137.8 s of 6
# against 155.2 s of 2. Its pauses are longer (3.7 s against 2 s in all at 1 M), which a
# batch job does not mind. A collector chosen in the session's own
# `spark.driver.extraJavaOptions` wins (the JVM refuses two). Under spark-submit the submit
# command owns the JVMs' options (docs/deploy.md).
LOCAL_GC = "-XX:+UseParallelGC"
_GC_CHOICE = re.compile(r"-XX:\+Use\w+GC\b")


REPO = Path(__file__).resolve().parents[1]
# `make setup` (mobility.jars) copies the Delta jars here; git-ignored.
JARS_DIR = REPO / "jars"
MANIFEST = "MANIFEST.txt"
# log4j2 for local-mode jobs: Spark errors as one console line each, everything else
# (WARN and up) into the run's log file; the verbose variant keeps Spark's full console.
LOG4J_QUIET = REPO / "conf" / "log4j2.properties"
LOG4J_VERBOSE = REPO / "conf" / "log4j2-verbose.properties"


@contextmanager
def session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """The session's SQL ``settings`` within the block, the earlier values restored on leaving (also
    after an error). They are the session's: plan nothing from other threads of it meanwhile."""
    before = {key: spark.conf.get(key) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)


def persist_partitioned(df: DataFrame, level: StorageLevel = StorageLevel.MEMORY_AND_DISK) -> DataFrame:
    """Cache ``df`` so that the plans reading the cache know its hash partitioning.

    Spark plans a cached query with adaptive execution, and an adaptive plan reports no
    output partitioning until it has run, so every plan that reads the cache shuffles
    again, even by the very key ``df`` was partitioned by. Planned with adaptive execution
    off (for the cached plan only: the setting is restored at once), the cache reports its
    ``HashPartitioning`` and a grouping or window whose keys include the partition key
    reads it without a shuffle. Measured in ``tests/test_flows.py`` (stage 2).

    The cached plan keeps ``spark.sql.shuffle.partitions`` partitions (adaptive execution
    does not merge them), and so do the outputs computed from it: size that setting for
    the data (``conf/cluster.yaml``).
    """
    with session_conf(df.sparkSession, {"spark.sql.adaptive.enabled": "false"}):
        return df.persist(level)


CACHE_COMPRESSED = "spark.sql.inMemoryColumnarStorage.compressed"


def persist_on_disk(df: DataFrame, *, keep_partitioning: bool = False) -> DataFrame:
    """Cache ``df`` on disk (``DISK_ONLY``) as plain, uncompressed column batches.

    Stage 1's tagged events and stage 2's located events. On disk: in memory, a cached
    block is a whole input split or shuffle partition, and at 20 M events on a 4 GB heap
    stage 1's ran out of memory and stage 2's left its sorts too little (page allocations
    failed). Uncompressed: Spark's cache compression tries every encoding on every column
    of every batch; on these columns (64-hex pseudonyms, timestamps, cell ids, H3 cells) it
    saved 4-8 % of the bytes (stage 1's cache at 4 M events: 393 MB against 411 MB; stage
    2's: 233 against 251 MB) and cost 9 of the 31 CPU-seconds of stage 1's tagging pass and
    4 of the 7 of building stage 2's cache. Spark fixes the choice at ``persist``, so the
    setting is needed only around it (tests/test_transforms.py). ``keep_partitioning``:
    through :func:`persist_partitioned`.
    """
    with session_conf(df.sparkSession, {CACHE_COMPRESSED: "false"}):
        if keep_partitioning:
            return persist_partitioned(df, StorageLevel.DISK_ONLY)
        return df.persist(StorageLevel.DISK_ONLY)


def delta_package() -> str:
    """Maven coordinate of the Delta jar matching the installed PySpark."""
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_{SCALA_VERSION}:{DELTA_JAR_VERSION}"


# Spark bridges commons-logging to SLF4J (jcl-over-slf4j): a second copy of its classes
# would bypass the run's log4j2 configuration.
BRIDGED_ARTIFACTS = ("commons-logging",)
_JAR = re.compile(r"(?P<artifact>.+?)-(?P<version>\d[\w.]*(?:-\w+)*)\.jar$")


def artifact_of(jar_name: str) -> str:
    """``log4j-core-2.25.3.jar`` -> ``log4j-core`` (the name without version and extension)."""
    m = _JAR.match(jar_name)
    return m["artifact"] if m else jar_name.removesuffix(".jar")


def shipped_by_spark() -> set[str]:
    """Artifacts of the jars the installed PySpark ships (its own log4j, SLF4J, Hadoop, Jackson, Parquet)."""
    import pyspark

    return {artifact_of(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}


def needed(names: list[str], shipped: set[str]) -> list[str]:
    """The jars Spark does not already have.

    Delta's Maven dependencies include log4j-core, log4j-slf4j2-impl and slf4j-api (1.7)
    and older Hadoop, Jackson and Parquet. Spark's own copies win for every class anyway
    (its jars come first). With the whole set on ``spark.jars`` the per-run log file
    stayed empty on a fresh clone; with only these it is written (``tests/test_ops.py``).
    A second log4j/SLF4J beside Spark's is the likely reason (not reproduced in isolation).
    """
    return [n for n in names if artifact_of(n) not in shipped and artifact_of(n) not in BRIDGED_ARTIFACTS]


def local_jars(folder: Path = JARS_DIR) -> list[Path] | None:
    """The Delta jars resolved by ``make setup``, or None unless the folder is complete.

    Complete means: ``MANIFEST.txt`` names the coordinate this PySpark needs and every
    jar it lists is present.
    """
    try:
        lines = (folder / MANIFEST).read_text().split()
    except OSError:
        return None
    if not lines or lines[0] != delta_package():
        return None
    # A folder from before the filter still lists Spark's own jars: leave them out here too.
    jars = [folder / name for name in needed(lines[1:], shipped_by_spark())]
    return jars if jars and all(j.is_file() for j in jars) else None


def logging_options(log_file: str | Path, *, verbose: bool = False) -> str:
    """Driver JVM options that route Spark's log4j2 output to ``log_file`` (and quiet the console)."""
    conf = LOG4J_VERBOSE if verbose else LOG4J_QUIET
    return f"-Dlog4j2.configurationFile={conf.as_uri()} -Dmobility.logfile={Path(log_file).resolve()}"


def local_driver_options(configured: str = "", log_options: str = "") -> str:
    """The local driver JVM's options: :data:`LOCAL_GC` unless ``configured`` chooses a collector, then
    ``configured`` (the session's ``spark.driver.extraJavaOptions``), then ``log_options``."""
    gc = "" if _GC_CHOICE.search(configured) else LOCAL_GC
    return " ".join(part for part in (gc, configured.strip(), log_options) if part)


def launched_by_spark_submit() -> bool:
    """True when spark-submit started this Python process (it then owns master and jars)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_session(app_name: str, spark_conf: SparkConfig | None = None, *, log_file: str | Path | None = None,
                  verbose: bool = False) -> SparkSession:
    """Create (or return) the SparkSession with Delta, UTC and the project's settings.

    Under spark-submit the master, jars, resources and logging come from the submit
    command; run as ``python -m jobs.<job>`` it starts local mode with the Delta jars
    from ``jars/`` (``make setup``) through ``spark.jars``, or, if that folder is not
    complete, through ``spark.jars.packages`` (Ivy, with its resolution report).
    ``log_file`` (local mode, a JVM not yet started): Spark's log goes there and the
    console shows Spark errors only, one line each (``verbose`` keeps the full console).
    """
    spark_conf = spark_conf or SparkConfig()
    # Executors must use the same interpreter (and so the same packages) as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    settings = dict(BASE_CONF)
    if not launched_by_spark_submit():
        builder = builder.master(spark_conf.master or "local[*]")
        settings.update(LOCAL_DEFAULTS)
        jars = local_jars()
        if jars is not None:
            settings["spark.jars"] = ",".join(str(j) for j in jars)
        else:
            print(f"note: {JARS_DIR}/ is not complete (run `make setup`); Spark resolves {delta_package()} "
                  "through spark.jars.packages instead", file=sys.stderr)
            settings["spark.jars.packages"] = delta_package()
    settings.update(spark_conf.conf)
    if not launched_by_spark_submit():
        # Must reach the driver JVM before it starts: pyspark passes builder settings to spark-submit.
        settings["spark.driver.extraJavaOptions"] = local_driver_options(
            settings.get("spark.driver.extraJavaOptions", ""),
            "" if log_file is None else logging_options(log_file, verbose=verbose))
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
