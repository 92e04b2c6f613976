"""Writing report files to ``<lake.reports>`` (local, HDFS, S3, ... through Hadoop's FileSystem).

The one module of :mod:`reporting` that touches Spark: the report jobs call it with what
the pure modules built. Nothing here reads any table.
"""

from __future__ import annotations

from pyspark.sql import SparkSession


def write_bytes(spark: SparkSession, uri: str, data: bytes) -> None:
    """Write (replace) one small file."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(uri)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    out = fs.create(hpath, True)
    try:
        out.write(bytearray(data))
    finally:
        out.close()


def report_dir(reports: str, date_iso: str, *parts: str) -> str:
    """``<lake.reports>/buyers/<date>[/parts...]``: where the buyers' reports of a date go."""
    return "/".join([reports.rstrip("/"), "buyers", date_iso, *parts])
