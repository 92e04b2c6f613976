"""Delta and file I/O for the curated and insights zones."""

from __future__ import annotations

import datetime as dt
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mobility.config import Config, LakeConfig

CURATED_TABLES = ("pseudonymized_events", "anonymized_events", "anonymized_trips", "quarantine")
INSIGHTS_TABLES = ("footfall", "od_flows", "presence")


def table_path(lake: LakeConfig, table: str) -> str:
    """Where a curated or insights table lives."""
    if table in CURATED_TABLES or table.startswith("_"):
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


def read_date(spark: SparkSession, path: str, *, date: dt.date, what: str) -> DataFrame:
    """Read one date of a Delta table, with an error that says which stage must run first."""
    try:
        df = spark.read.format("delta").load(path)
    except Exception as exc:
        raise FileNotFoundError(f"{what} not found at {path}: run the previous stage first") from exc
    return df.filter(F.col("date") == F.lit(date))


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write a small text file to any Hadoop-supported path (local, HDFS, S3, ...)."""
    fs, hpath = _fs_path(spark, uri)
    out = fs.create(hpath, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def _fs_path(spark: SparkSession, uri: str):
    """The Hadoop FileSystem and Path of ``uri`` (works for local, HDFS, S3, ...)."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(uri)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


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


def publish(spark: SparkSession, lake: LakeConfig | Config, table: str, df: DataFrame, *, date: dt.date,
            cfg: Config | None = None, expected_rows: int | None = None, persist: bool = True) -> str | None:
    """The single point where a job makes a table's date visible to readers: audit, then write.

    With the configuration (``cfg=...``, or a whole :class:`Config` in place of ``lake``)
    the rows are checked with the table's suite first and written only if it passed; a
    failed suite raises :class:`mobility.runner.ValidationError`, leaves the published
    table as it was and writes the rejected rows nowhere. ``expected_rows`` (the run
    summary's count) is reconciled with the audited rows, and the audited row count with
    the Delta commit. The frame is cached for the audit and the write (``persist=False``
    if it is a cheap projection of data the caller has cached). Returns the
    data-quality report's index path.

    Without a configuration the suites cannot know ``k_min`` and the resolutions, so
    the date is written directly and a warning says that it was not validated.
    """
    if isinstance(lake, Config):
        cfg, lake = lake, lake.lake
    if cfg is None:
        print(f"warning: {table} {date} published WITHOUT data-quality validation "
              "(pass cfg= to mobility.io.publish)", file=sys.stderr)
        write_date(df, table_path(lake, table), date=date)
        return None
    from mobility.quality import write_audit_publish_all

    return write_audit_publish_all(spark, cfg, [(table, df, expected_rows)], date=date, persist=persist)


def publish_together(spark: SparkSession, cfg: Config, outputs: list[tuple[str, DataFrame, int | None]], *,
                     date: dt.date, persist: bool = True) -> str:
    """Audit-then-write several tables of one date all-or-nothing (see :func:`publish`).

    ``outputs`` holds ``(table, frame, expected_rows)``. Every table is validated before
    any is written; one failed suite publishes none.
    """
    from mobility.quality import write_audit_publish_all

    return write_audit_publish_all(spark, cfg, outputs, date=date, persist=persist)
