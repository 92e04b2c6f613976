"""Data lifecycle on Delta: table properties, deleting rows, and making the deletion physical.

A Delta DELETE only hides rows: the old files stay readable by time travel until
VACUUM removes them, soft-deleted rows stay in their files (deletion vectors) until
``REORG TABLE ... APPLY (PURGE)`` rewrites them, and the log's per-file statistics
(min/max values) outlive both until the log entries expire. So every curated table is
created with

* no column statistics (``delta.dataSkippingNumIndexedCols = 0``): curated tables are
  read by date partition, never skipped by statistics, and the log then holds no value
  of any row (only ``numRecords``);
* ``delta.deletedFileRetentionDuration`` = ``retention.superseded_versions_hours`` and
  ``delta.logRetentionDuration`` = ``retention.log_retention_days``;
* no change data feed (its files would hold deleted rows);

and :func:`purge` is DELETE's second half: REORG (when deletion vectors are on), then
VACUUM, then a checkpoint so that expired log files can be cleaned.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import types as T

from mobility.config import RetentionConfig
from mobility.io import delta_version, is_delta_table, qualified

DELTA_DEFAULT_RETENTION_HOURS = 7 * 24
CHECK_RETENTION = "spark.databricks.delta.retentionDurationCheck.enabled"


def lifecycle_properties(r: RetentionConfig) -> dict[str, str]:
    """Table properties every table gets: how long superseded files and log entries live."""
    return {
        "delta.deletedFileRetentionDuration": f"interval {r.superseded_versions_hours} hours",
        "delta.logRetentionDuration": f"interval {r.log_retention_days} days",
    }


def curated_properties(r: RetentionConfig) -> dict[str, str]:
    """Properties of a curated table: lifecycle, no column statistics in the log, no change data feed."""
    return {**lifecycle_properties(r), "delta.dataSkippingNumIndexedCols": "0",
            "delta.enableChangeDataFeed": "false"}


def release_properties(r: RetentionConfig) -> dict[str, str]:
    """Properties of a release table: lifecycle, and no per-file column statistics in the log.

    A one-row file's min = max would be the row itself, and log entries outlive VACUUM.
    """
    return {**lifecycle_properties(r), "delta.dataSkippingNumIndexedCols": "0"}


def sql_path(spark: SparkSession, path: str) -> str:
    """``delta.`<path>``` for SQL statements, the path qualified (backticks doubled).

    Spark's SQL takes ``delta.`lake/x``` for a table name, not a path, unless the path is
    absolute: a relative lake (``conf/local.yaml``'s) found its tables on the first run and
    failed on the next one, which sets their properties.
    """
    return "delta.`" + qualified(spark, path).replace("`", "``") + "`"


def prepare_table(spark: SparkSession, path: str, schema: T.StructType, properties: dict[str, str]) -> None:
    """Create the date-partitioned Delta table with ``properties`` before its first write, or set them on an older one.

    Creating it before the first write is what keeps the first commit's log entry free
    of column statistics. The location is qualified first: Delta's table builder refuses
    a relative path and calls ``file:///x`` ambiguous with its own ``file:/x``.
    """
    from delta.tables import DeltaTable

    if not is_delta_table(spark, path):
        builder = (DeltaTable.createIfNotExists(spark).location(qualified(spark, path))
                   .addColumns(schema).partitionedBy("date"))
        for key, value in properties.items():
            builder = builder.property(key, value)
        builder.execute()
        return
    set_properties(spark, path, properties)


def table_properties(spark: SparkSession, path: str) -> dict[str, str]:
    """The table's properties (from its metadata only: ``DESCRIBE DETAIL`` would size every file)."""
    return {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {sql_path(spark, path)}").collect()}


def set_properties(spark: SparkSession, path: str, properties: dict[str, str]) -> bool:
    """Set the properties that differ (one commit, none if all are set already); True if it committed."""
    current = table_properties(spark, path)
    changed = {k: v for k, v in properties.items() if current.get(k) != v}
    if not changed:
        return False
    pairs = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(changed.items()))
    spark.sql(f"ALTER TABLE {sql_path(spark, path)} SET TBLPROPERTIES ({pairs})")
    return True


def version(spark: SparkSession, path: str) -> int:
    """The current version of an existing table."""
    current = delta_version(spark, path)
    if current is None:
        raise FileNotFoundError(f"no Delta table at {path}")
    return current


def metrics_since(spark: SparkSession, path: str, before: int, metric: str) -> int:
    """Sum of an operation metric over the commits made after version ``before``."""
    from delta.tables import DeltaTable

    rows = DeltaTable.forPath(spark, path).history().filter(f"version > {before}").collect()
    return sum(int((r["operationMetrics"] or {}).get(metric, 0)) for r in rows)


def delete_where(spark: SparkSession, path: str, condition: Column) -> int:
    """DELETE the rows matching ``condition``; the number of rows deleted.

    The condition is written to the commit's log entry: use it only with values that
    are no identifiers (dates); delete people with :func:`delete_matching`.
    """
    from delta.tables import DeltaTable

    before = version(spark, path)
    DeltaTable.forPath(spark, path).delete(condition)
    return metrics_since(spark, path, before, "numDeletedRows")


def delete_matching(spark: SparkSession, path: str, ids: DataFrame, condition: str) -> int:
    """Delete the target rows (``t``) that match a row of ``ids`` (``s``); the number deleted.

    A MERGE, not a DELETE with the ids in its predicate: the log records the predicate
    of a DELETE, so the ids would be written into the very log the erasure must clean;
    a MERGE's log entry holds only ``condition`` (column names).
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    before = version(spark, path)
    (DeltaTable.forPath(spark, path).alias("t")
     .merge(F.broadcast(ids).alias("s"), condition)
     .whenMatchedDelete()
     .execute())
    return metrics_since(spark, path, before, "numTargetRowsDeleted")


@contextlib.contextmanager
def retention_check_off(spark: SparkSession, hours: int) -> Iterator[None]:
    """Allow VACUUM below Delta's 7-day safety check, for this job's session only, then restore it."""
    if hours >= DELTA_DEFAULT_RETENTION_HOURS:
        yield
        return
    old = spark.conf.get(CHECK_RETENTION, "true")
    spark.conf.set(CHECK_RETENTION, "false")
    try:
        yield
    finally:
        spark.conf.set(CHECK_RETENTION, old)


def checkpoint(spark: SparkSession, path: str) -> bool:
    """Write a checkpoint of the table's log; Delta then cleans log files older than its log retention.

    Delta has no public API for it, so the JVM ``DeltaLog.checkpoint()`` is called. False
    if this Delta version does not offer it (the next automatic checkpoint cleans instead).
    """
    from py4j.protocol import Py4JError

    jvm = spark.sparkContext._jvm
    try:
        jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path).checkpoint()
    except Py4JError:
        return False
    return True


def purge(spark: SparkSession, path: str, *, retain_hours: int) -> dict[str, int | bool]:
    """Make deletions physical: rewrite soft-deleted rows away, VACUUM, checkpoint.

    Returns the files VACUUM removed and whether deletion-vector purging and the
    checkpoint ran.
    """
    props = table_properties(spark, path)
    reorged = props.get("delta.enableDeletionVectors", "false").lower() == "true"
    if reorged:
        spark.sql(f"REORG TABLE {sql_path(spark, path)} APPLY (PURGE)")
    before = version(spark, path)
    with retention_check_off(spark, retain_hours):
        spark.sql(f"VACUUM {sql_path(spark, path)} RETAIN {retain_hours} HOURS").collect()
    # VACUUM records its own START/END commits with the files it deleted (Delta's vacuum logging).
    removed = metrics_since(spark, path, before, "numDeletedFiles")
    return {"files_removed": removed, "deletion_vectors_purged": reorged, "checkpointed": checkpoint(spark, path)}


def older_than(date: dt.date, days: int) -> dt.date:
    """The first date that is kept: rows dated before it are expired."""
    return date - dt.timedelta(days=days)
