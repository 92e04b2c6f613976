"""Delta and file I/O for the curated and insights zones."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mobility.config import LakeConfig

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
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(uri)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    out = fs.create(hpath, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def publish(spark: SparkSession, lake: LakeConfig, table: str, df: DataFrame, *, date: dt.date) -> None:
    """The single point where a job makes a table's date visible to readers.

    Every job writes its outputs through here, so write-audit-publish (data-quality
    suites run on a staged copy before the published table changes) has one home.
    """
    write_date(df, table_path(lake, table), date=date)
