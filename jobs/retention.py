"""Retention: delete what is older than the ``retention`` config allows, physically.

    python -m jobs.retention --conf conf/local.yaml --date 2026-10-05

Relative to ``--date`` D, for each curated table with a ``retention.<table>_days``
setting N: DELETE the dates before D - N, then purge (``REORG TABLE ... APPLY (PURGE)``
when deletion vectors are on, VACUUM keeping ``retention.superseded_versions_hours`` of
superseded files, a checkpoint so that log entries older than
``retention.log_retention_days`` are cleaned). Every table — the insights tables and the
erasure log included — gets the lifecycle table properties and the same VACUUM, so that
superseded versions of released tables stop being readable after the configured time;
current released rows and the erasure log's rows are never deleted. The summary lists,
per table, the cut-off date, the rows deleted and the files removed.

The deletions are recorded in the restricted zone's ledger (event ``expired``, one
commit) before anything is purged, so that crash recovery keeps them and a later re-run
of an expired date is refused with a clear error instead of reading deleted rows.
"""

from __future__ import annotations

import sys

from pyspark.sql import functions as F

from mobility import ledger
from mobility.io import CURATED_TABLES, INSIGHTS_TABLES, NETWORK_TABLES, is_delta_table, table_path
from mobility.ledger import EXPIRED, new_run_id, table_version, zone_of
from mobility.lifecycle import delete_where, older_than, purge, set_properties
from mobility.publish import Publisher, table_properties_for
from mobility.runner import Context, heal, run_job
from transforms.kernels import BUILTIN, Kernels


def stage(ctx: Context) -> None:
    spark, r, lake = ctx.spark, ctx.cfg.retention, ctx.cfg.lake
    days = {**r.days(), "offer_audience": ctx.cfg.offers.audience_retention_days}
    every = (*CURATED_TABLES, *NETWORK_TABLES, *INSIGHTS_TABLES)
    tables = [t for t in every if is_delta_table(spark, table_path(lake, t))]
    heal(ctx, tables)  # a crashed run's leftovers first: they are not the ledger's to keep
    report: dict[str, dict] = {t: {"exists": False} for t in every}
    ctx.summary["retention"] = report
    records: dict[str, list[dict]] = {}
    for table in tables:
        path = table_path(lake, table)
        entry: dict = {}
        set_properties(spark, path, table_properties_for(ctx.cfg, table))
        if table in days:
            keep_from = older_than(ctx.date, days[table])
            before = table_version(spark, path)
            entry["deleted_before"] = keep_from.isoformat()
            entry["rows_deleted"] = delete_where(spark, path, F.col("date") < F.lit(keep_from))
            if table_version(spark, path) != before:
                records.setdefault(zone_of(table), []).append({
                    "run_id": new_run_id(), "job": ctx.job, "event": EXPIRED, "date": keep_from, "table_name": table,
                    "version": table_version(spark, path), "rows": entry["rows_deleted"],
                    "note": f"deleted the dates before {keep_from}"})
        report[table] = entry
    # The commit point (one per zone): recovery keeps these deletions from here on (a run
    # that dies before it is rolled back by the next run, and the next retention run deletes again).
    for zone, rows in records.items():
        ledger.append(spark, lake, zone, rows)
    for table in tables:
        report[table].update(purge(spark, table_path(lake, table), retain_hours=r.superseded_versions_hours))


def main(argv: list[str] | None = None, *, kernels: Kernels = BUILTIN, publisher: Publisher | None = None) -> int:
    return run_job("retention", argv, stage, needs=(), kernels=kernels, publisher=publisher)


if __name__ == "__main__":
    sys.exit(main())
