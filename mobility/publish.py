"""Publishing: audit every output, write it once, reconcile, and commit the publication in the ledger.

A job hands its outputs to a *publisher* (``Context.publisher``): ``(table, frame,
expected_rows)`` triples of one date, published together or not at all.
:class:`DeltaPublisher` is the production one; tests pass their own instead of
patching job modules.

The order, and why (see ``mobility/ledger.py``):

1. heal: roll back table versions the ledger does not know (a crashed run's leftovers);
2. audit every frame with its suite; for release tables, refuse a republish that an
   earlier readable release of the date would make unsafe (``mobility/release.py``);
3. write each table as one Delta commit, reconciled with the audit;
4. append one ledger row per table in one commit — **the commit point**: readers read
   the versions the ledger names, so a crash before it publishes nothing;
5. after a republish, purge the superseded files so the old version cannot be read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contract.errors import ValidationError
from mobility import ledger
from mobility.config import Config
from mobility.io import INSIGHTS_TABLES, table_path, write_date
from mobility.ledger import Policy, table_version
from mobility.lifecycle import curated_properties, prepare_table, release_properties
from mobility.quality import TableResult, audit, raise_failed
from mobility.quality_report import report_index, write_report
from mobility.release import check_republish

Output = tuple[str, DataFrame, int | None]  # table, frame, rows the run summary expects (None: not checked)


# Test-only: after committing the named table, touch MI_TEST_PAUSE_FILE and wait (crash tests).
PAUSE_AFTER_ENV, PAUSE_FILE_ENV = "MI_TEST_PAUSE_AFTER", "MI_TEST_PAUSE_FILE"


@dataclass
class Publication:
    """What one call published: the report, the ledger run id, the versions, what was healed first."""

    report: str
    run_id: str | None = None
    versions: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)  # rows audited and written per table
    recovered: list[str] = field(default_factory=list)
    republished: bool = False


# Reference frames a table's suite needs, per table (e.g. the consent log for ``offer_audience``).
Refs = dict[str, dict[str, DataFrame]]


class Publisher(Protocol):
    def __call__(self, spark: SparkSession, cfg: Config, outputs: list[Output], *, date: dt.date,
                 persist: bool = True, job: str = "", refs: Refs | None = None) -> Publication: ...


def committed_rows(spark: SparkSession, path: str, *, before: int | None, table: str,
                   date: dt.date) -> tuple[int, int | None]:
    """Rows added by the one commit made since version ``before`` (0 if no commit was made), and its version.

    Reads the history entries newer than ``before`` — never just the latest entry, which
    is someone else's when a write made no commit. More than one new commit means
    another writer was active: an error, since the audit then says nothing about them.
    """
    if table_version(spark, path) is None:
        return 0, None
    entries = ledger.commits_since(spark, path, before)
    if not entries:
        return 0, before
    if len(entries) > 1:
        raise ValidationError(f"{table} {date.isoformat()}: {len(entries)} commits since version {before}; another "
                              "writer was active, so the write cannot be reconciled with the audit")
    metrics, version = entries[0]["operationMetrics"] or {}, int(entries[0]["version"])
    if "numOutputRows" in metrics:
        return int(metrics["numOutputRows"]), version
    if metrics.get("numFiles", "0") == "0":
        return 0, version  # Delta records no numOutputRows for a write that added no file (an empty date)
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
    ledger.vacuum_now(spark, path)  # the undone write's files held rows nobody may read


Writer = Callable[..., None]  # (df, path, *, date) -> None


def table_properties_for(cfg: Config, table: str) -> dict[str, str]:
    """The Delta properties a table is created with (and kept at): lifecycle, no column statistics."""
    return release_properties(cfg.retention) if table in INSIGHTS_TABLES else curated_properties(cfg.retention)


def _pause_point(table: str) -> None:
    """Test-only: stop after ``table``'s commit so a test can kill the process there."""
    if os.environ.get(PAUSE_AFTER_ENV) != table or not os.environ.get(PAUSE_FILE_ENV):
        return
    Path(os.environ[PAUSE_FILE_ENV]).write_text(table)
    time.sleep(120)


@dataclass(frozen=True)
class DeltaPublisher:
    """Audit every table first; write them only if all passed; commit them in the ledger together.

    Each frame is audited before it is written, and the audit and the write read the
    same cached rows (``persist=True``; pass ``False`` when the frames are cheap
    projections of data the caller has cached already), so every output is computed
    once and written once. One failed suite publishes none of the tables, and a commit
    whose own row count differs from the audit undoes every table this call wrote. A
    failed suite raises ValidationError; the published tables keep their Delta versions,
    and the rejected rows are written nowhere (the report names what failed).
    """

    write: Writer = write_date

    def __call__(self, spark: SparkSession, cfg: Config, outputs: list[Output], *, date: dt.date,
                 persist: bool = True, job: str = "", refs: Refs | None = None) -> Publication:
        tables = [t for t, _, _ in outputs]
        zones = {ledger.zone_of(t) for t in tables}
        if len(zones) != 1:
            raise ValueError(f"one publication is one zone: {tables}")
        zone = zones.pop()
        publication = Publication(report=report_index(cfg.lake, date))
        publication.recovered = ledger.recover(spark, cfg.lake, tables, job=job)
        frames = [(table, df.persist(StorageLevel.MEMORY_AND_DISK) if persist else df, rows)
                  for table, df, rows in outputs]
        results: list[TableResult] = []
        policy = Policy.of(cfg)
        try:
            results = [audit(cfg, table, df, date=date, expected_rows=rows, **(refs or {}).get(table, {}))
                       for table, df, rows in frames]
            if all(r.success for r in results):
                if zone == "insights":
                    publication.republished = check_republish(
                        spark, cfg.lake, date, {t: df for t, df, _ in frames}, policy,
                        budget_epsilon=cfg.dp.budget_epsilon, budget_delta=cfg.dp.budget_delta) > 0
                else:
                    # Only these tables' own earlier versions of the date are superseded (stage 2
                    # after stage 1 of the same date is a first publication, not a republish).
                    publication.republished = ledger.was_published(spark, cfg.lake, zone, tables, date)
                versions = self._write_all(spark, cfg, frames, results, date=date)
                run_id = ledger.new_run_id()
                ledger.append(spark, cfg.lake, zone, [
                    {"run_id": run_id, "job": job, "event": "published", "date": date, "table_name": table,
                     "version": versions[table], "rows": int(r.observed("rows")),
                     # from the release profile's own aggregation (expectations.common.digest_check)
                     "digest": r.digest if table in INSIGHTS_TABLES else None,
                     **dataclasses.asdict(policy)}
                    for (table, df, _), r in zip(frames, results, strict=True)])
                publication.run_id, publication.versions = run_id, versions
                publication.rows = {t: int(r.observed("rows")) for (t, _, _), r in zip(frames, results, strict=True)}
                if publication.republished:
                    for table in tables:  # the superseded version of the date must not stay readable
                        ledger.vacuum_now(spark, table_path(cfg.lake, table))
            # Rows that failed are not kept anywhere: a failed suite may mean identifiers or
            # groups below k, which must not land in any table. The report says what failed.
        finally:
            if persist:
                for _, df, _ in frames:
                    df.unpersist()
            if results:
                publication.report = write_report(spark, cfg.lake, date, results)
        names = ", ".join(tables)
        raise_failed(results, f"{names} {date.isoformat()} {'was' if len(outputs) == 1 else 'were'} not published:")
        return publication

    def _write_all(self, spark: SparkSession, cfg: Config, frames: list[Output], results: list[TableResult], *,
                   date: dt.date) -> dict[str, int]:
        paths = {table: table_path(cfg.lake, table) for table, _, _ in frames}
        for table, df, _ in frames:  # created before the first write: no column statistics in any log entry
            prepare_table(spark, paths[table], df.schema, table_properties_for(cfg, table))
        befores = {table: table_version(spark, path) for table, path in paths.items()}
        written: list[str] = []
        versions: dict[str, int] = {}
        try:
            for (table, df, _), result in zip(frames, results, strict=True):
                written.append(table)
                t0 = time.perf_counter()
                self.write(df, paths[table], date=date)
                result.timings["write_s"] = round(time.perf_counter() - t0, 3)
                rows, version = committed_rows(spark, paths[table], before=befores[table], table=table, date=date)
                audited = int(result.observed("rows"))
                if rows != audited:
                    raise ValidationError(f"{table} {date.isoformat()}: the write committed {rows} rows but "
                                          f"{audited} were audited")
                versions[table] = version if version is not None else table_version(spark, paths[table])
                _pause_point(table)
        except Exception:
            # All or nothing: undo every table this call has written, then fail.
            for table in reversed(written):
                undo(spark, paths[table], befores[table], date=date)
            raise
        return versions
