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
"""

from __future__ import annotations

import sys

from pyspark.sql import functions as F

from mobility.io import CURATED_TABLES, INSIGHTS_TABLES, is_delta_table, table_path
from mobility.lifecycle import curated_properties, delete_where, lifecycle_properties, older_than, purge, set_properties
from mobility.publish import Publisher
from mobility.runner import Context, run_job
from transforms.kernels import BUILTIN, Kernels


def stage(ctx: Context) -> None:
    spark, r = ctx.spark, ctx.cfg.retention
    days = r.days()
    report: dict[str, dict] = {}
    ctx.summary["retention"] = report
    for table in (*CURATED_TABLES, *INSIGHTS_TABLES):
        path = table_path(ctx.cfg.lake, table)
        if not is_delta_table(spark, path):
            report[table] = {"exists": False}
            continue
        entry: dict = {}
        set_properties(spark, path, curated_properties(r) if table in CURATED_TABLES else lifecycle_properties(r))
        if table in days:
            keep_from = older_than(ctx.date, days[table])
            entry["deleted_before"] = keep_from.isoformat()
            entry["rows_deleted"] = delete_where(spark, path, F.col("date") < F.lit(keep_from))
        entry.update(purge(spark, path, retain_hours=r.superseded_versions_hours))
        report[table] = entry


def main(argv: list[str] | None = None, *, kernels: Kernels = BUILTIN, publisher: Publisher | None = None) -> int:
    return run_job("retention", argv, stage, needs=(), kernels=kernels, publisher=publisher)


if __name__ == "__main__":
    sys.exit(main())
