"""Reading the raw zone and reading/writing the Delta tables of the curated and insights zones.

No auditing here (``mobility.publish``) and no job logic: paths, schemas at the
boundary, and errors that say what actually happened — a table that does not exist
is not the same as one that cannot be read.
"""

from __future__ import annotations

import datetime as dt
import re

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contract.errors import InputError
from contract.schemas import RAW_TABLES
from mobility.config import LakeConfig

CURATED_TABLES = ("pseudonymized_events", "anonymized_events", "anonymized_trips", "quarantine", "opt_outs",
                  "erasure_log")
INSIGHTS_TABLES = ("footfall", "od_flows", "presence")
# Location offers (jobs.offers): the audience stays in the restricted zone, the merchant report is released.
INSIGHTS_TABLES += ("offer_report",)
# The network domain's output zone (``lake.network``): tables that hold subscriber numbers
# because a network-side system needs them (the offers' delivery). Never curated or insights.
NETWORK_TABLES = ("offer_audience",)


# ------------------------------------------------------------------------- raw zone


def check_schema(df: DataFrame, expected: T.StructType, table: str) -> None:
    """Raise :class:`InputError` naming the first missing or mistyped column."""
    actual = {f.name: f.dataType for f in df.schema.fields}
    for f in expected.fields:
        if f.name not in actual:
            raise InputError(f"{table}: missing column '{f.name}' ({f.dataType.simpleString()})")
        if actual[f.name] != f.dataType:
            raise InputError(
                f"{table}: column '{f.name}' is {actual[f.name].simpleString()}, "
                f"expected {f.dataType.simpleString()}"
            )


def raw_path(raw_root: str, table: str, date: str | None = None) -> str:
    """Path of a raw table, or of one date partition of ``network_events``."""
    base = f"{raw_root.rstrip('/')}/{table}"
    return f"{base}/event_date={date}" if date else base


def path_exists(spark: SparkSession, uri: str) -> bool:
    """Whether ``uri`` exists on its file system (local, HDFS, S3, ...)."""
    fs, hpath = _fs_path(spark, uri)
    return bool(fs.exists(hpath))


def qualified(spark: SparkSession, uri: str) -> str:
    """``uri`` made absolute with its scheme (``lake/x`` -> ``file:/.../lake/x``; ``file:///x`` -> ``file:/x``)."""
    fs, hpath = _fs_path(spark, uri)
    return str(fs.makeQualified(hpath).toString())


def read_raw(spark: SparkSession, raw_root: str, table: str, date: str | None = None) -> DataFrame:
    """Read a raw table (or one event partition) and enforce its contracted schema.

    The files' own schema is checked first (so a mistyped column is named, not
    silently cast to null), then the frame is narrowed to the contracted columns.
    """
    path = raw_path(raw_root, table, date)
    what = f"partition event_date={date} of {table}" if date else f"table {table}"
    if not path_exists(spark, path):
        raise InputError(f"{what} not found at {path}")
    try:
        df = spark.read.parquet(path)
    except AnalysisException as exc:  # e.g. a folder without Parquet files
        raise InputError(f"{what} at {path} cannot be read: {str(exc).splitlines()[0]}") from exc
    expected = RAW_TABLES[table]
    check_schema(df, expected, table)
    return df.select(*[f.name for f in expected.fields])


# ------------------------------------------------------------------------- Delta tables


def network_root(lake: LakeConfig) -> str:
    """The network domain's output zone: ``lake.network``, or ``<lake.raw>/_network``."""
    return (lake.network or f"{lake.raw.rstrip('/')}/_network").rstrip("/")


def table_path(lake: LakeConfig, table: str) -> str:
    """Where a curated, insights or network-domain table lives."""
    if table in NETWORK_TABLES:
        return f"{network_root(lake)}/{table}"
    if table in CURATED_TABLES:
        return f"{lake.curated.rstrip('/')}/{table}"
    if table in INSIGHTS_TABLES:
        return f"{lake.insights.rstrip('/')}/{table}"
    raise ValueError(f"unknown table '{table}'")


def write_date(df: DataFrame, path: str, *, date: dt.date) -> None:
    """Replace exactly one date's partition of a Delta table (created if missing).

    ``replaceWhere`` makes a re-run idempotent: the date's old rows are removed in the
    same commit that adds the new ones, other dates are untouched, and Delta rejects
    the write if any row falls outside the date.
    """
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"date = DATE'{date.isoformat()}'")
        .partitionBy("date")
        .save(path)
    )


def is_delta_table(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


def read_date(spark: SparkSession, path: str, *, date: dt.date, what: str) -> DataFrame:
    """Read one date of a Delta table.

    A table that does not exist raises FileNotFoundError ("run the previous stage
    first"); one that exists but cannot be read raises InputError with Spark's reason.
    """
    if not is_delta_table(spark, path):
        raise FileNotFoundError(f"{what} not found at {path}: run the previous stage first")
    try:
        df = spark.read.format("delta").load(path)
    except AnalysisException as exc:
        raise InputError(f"{what} at {path} cannot be read: {str(exc).splitlines()[0]}") from exc
    return df.filter(F.col("date") == F.lit(date))


# ------------------------------------------------------------------------- small text files


def _fs_path(spark: SparkSession, uri: str):
    """The Hadoop FileSystem and Path of ``uri`` (works for local, HDFS, S3, ...)."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(uri)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write a small text file to any Hadoop-supported path (local, HDFS, S3, ...)."""
    fs, hpath = _fs_path(spark, uri)
    out = fs.create(hpath, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def read_text(spark: SparkSession, uri: str) -> str:
    """Read a small text file written by :func:`write_text`."""
    fs, hpath = _fs_path(spark, uri)
    stream = fs.open(hpath)
    try:
        jvm = spark.sparkContext._jvm
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def list_files(spark: SparkSession, uri: str, *, suffix: str = "") -> list[str]:
    """Names of the files directly under ``uri`` ending with ``suffix`` (empty if it does not exist)."""
    fs, hpath = _fs_path(spark, uri)
    if not fs.exists(hpath):
        return []
    return sorted(st.getPath().getName() for st in fs.listStatus(hpath)
                  if st.isFile() and st.getPath().getName().endswith(suffix))


_COMMIT = re.compile(r"\d{20}\.json")


def delta_head(spark: SparkSession, path: str) -> tuple[int, int] | None:
    """The table's current Delta version and its commit file's modification time (ms), or None.

    One listing of ``_delta_log``, no Spark job. The time tells two tables apart that were
    deleted and created again at the same path and reached the same version.
    """
    fs, hpath = _fs_path(spark, f"{path.rstrip('/')}/_delta_log")
    if not fs.exists(hpath):
        return None
    commits = [(int(st.getPath().getName()[:20]), int(st.getModificationTime())) for st in fs.listStatus(hpath)
               if st.isFile() and _COMMIT.fullmatch(st.getPath().getName())]
    return max(commits) if commits else None


def delta_version(spark: SparkSession, path: str) -> int | None:
    """The table's current Delta version (None: no Delta table at ``path``), from its log's file names.

    The newest commit file ``_delta_log/<20-digit version>.json`` is the current version
    (Delta never removes it: log cleanup keeps everything after the last checkpoint). One
    listing, no Spark job: ``DeltaTable.history(1)`` cost a job and about 0.15 s a call,
    and a publication asks for versions some thirty times.
    """
    head = delta_head(spark, path)
    return None if head is None else head[0]

