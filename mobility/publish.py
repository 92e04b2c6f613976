"""Publishing: audit every output, write it once, reconcile the commit with the audit, undo on failure.

A job hands its outputs to a *publisher* (``Context.publisher``): ``(table, frame,
expected_rows)`` triples of one date. :class:`DeltaPublisher` is the production one;
tests pass their own instead of patching job modules.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contract.errors import ValidationError
from mobility.config import Config
from mobility.io import is_delta_table, table_path, write_date
from mobility.quality import TableResult, audit, raise_failed
from mobility.quality_report import report_index, write_report

Output = tuple[str, DataFrame, int | None]  # table, frame, rows the run summary expects (None: not checked)


# Reference frames a table's suite needs, per table (e.g. the consent log for ``offer_audience``).
Refs = dict[str, dict[str, DataFrame]]


class Publisher(Protocol):
    def __call__(self, spark: SparkSession, cfg: Config, outputs: list[Output], *, date: dt.date,
                 persist: bool = True, refs: Refs | None = None) -> str: ...


def table_version(spark: SparkSession, path: str) -> int | None:
    """The table's current Delta version, or None if there is no table yet."""
    from delta.tables import DeltaTable

    if not is_delta_table(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).history(1).first()["version"])


def committed_rows(spark: SparkSession, path: str, *, before: int | None, table: str, date: dt.date) -> int:
    """Rows added by the one commit made since version ``before`` (0 if no commit was made).

    Reads the history entries newer than ``before`` — never just the latest entry, which
    is someone else's when a write made no commit. More than one new commit means
    another writer was active: an error, since the audit then says nothing about them.
    """
    from delta.tables import DeltaTable

    if not is_delta_table(spark, path):
        return 0
    since = -1 if before is None else before
    entries = [r for r in DeltaTable.forPath(spark, path).history().collect() if r["version"] > since]
    if not entries:
        return 0
    if len(entries) > 1:
        raise ValidationError(f"{table} {date.isoformat()}: {len(entries)} commits since version {before}; another "
                              "writer was active, so the write cannot be reconciled with the audit")
    metrics = entries[0]["operationMetrics"] or {}
    if "numOutputRows" in metrics:
        return int(metrics["numOutputRows"])
    if metrics.get("numFiles", "0") == "0":
        return 0  # Delta records no numOutputRows for a write that added no file (an empty date)
    raise ValidationError(f"{table} {date.isoformat()}: the Delta commit recorded no numOutputRows, so it cannot be "
                          "reconciled with the audit (keep spark.databricks.delta.history.metricsEnabled on)")


def undo(spark: SparkSession, path: str, before: int | None, *, date: dt.date) -> None:
    """Put a table back as it was at version ``before`` (None: the table was created by this run)."""
    from delta.tables import DeltaTable

    if table_version(spark, path) == before:
        return  # nothing was committed
    if before is None:  # the table was created by this run: it must hold nothing of it
        DeltaTable.forPath(spark, path).delete(F.col("date") == F.lit(date))
    else:
        DeltaTable.forPath(spark, path).restoreToVersion(before)


Writer = Callable[..., None]  # (df, path, *, date) -> None


@dataclass(frozen=True)
class DeltaPublisher:
    """Audit every table first; write them only if all passed, each as one Delta commit.

    Each frame is audited before it is written, and the audit and the write read the
    same cached rows (``persist=True``; pass ``False`` when the frames are cheap
    projections of data the caller has cached already), so every output is computed
    once and written once. Tables released together must change together: one failed
    suite publishes none of them, and a commit whose own row count differs from the
    audit undoes every table this call wrote. A failed suite raises ValidationError;
    the published tables keep their Delta versions, and the rejected rows are written
    nowhere (the report names what failed).
    """

    write: Writer = write_date

    def __call__(self, spark: SparkSession, cfg: Config, outputs: list[Output], *, date: dt.date,
                 persist: bool = True, refs: Refs | None = None) -> str:
        frames = [(table, df.persist(StorageLevel.MEMORY_AND_DISK) if persist else df, rows)
                  for table, df, rows in outputs]
        results: list[TableResult] = []
        index = report_index(cfg.lake, date)
        try:
            results = [audit(cfg, table, df, date=date, expected_rows=rows, **(refs or {}).get(table, {}))
                       for table, df, rows in frames]
            if all(r.success for r in results):
                self._write_all(spark, cfg, frames, results, date=date)
            # Rows that failed are not kept anywhere: a failed suite may mean identifiers or
            # groups below k, which must not land in any table. The report says what failed.
        finally:
            if persist:
                for _, df, _ in frames:
                    df.unpersist()
            if results:
                index = write_report(spark, cfg.lake, date, results)
        names = ", ".join(t for t, _, _ in outputs)
        raise_failed(results, f"{names} {date.isoformat()} {'was' if len(outputs) == 1 else 'were'} not published:")
        return index

    def _write_all(self, spark: SparkSession, cfg: Config, frames: list[Output], results: list[TableResult], *,
                   date: dt.date) -> None:
        paths = {table: table_path(cfg.lake, table) for table, _, _ in frames}
        befores = {table: table_version(spark, path) for table, path in paths.items()}
        written: list[str] = []
        try:
            for (table, df, _), result in zip(frames, results, strict=True):
                written.append(table)
                t0 = time.perf_counter()
                self.write(df, paths[table], date=date)
                result.timings["write_s"] = round(time.perf_counter() - t0, 3)
                rows = committed_rows(spark, paths[table], before=befores[table], table=table, date=date)
                audited = int(result.observed("rows"))
                if rows != audited:
                    raise ValidationError(f"{table} {date.isoformat()}: the write committed {rows} rows but "
                                          f"{audited} were audited")
        except Exception:
            # All or nothing: undo every table this call has written, then fail.
            for table in reversed(written):
                undo(spark, paths[table], befores[table], date=date)
            raise
