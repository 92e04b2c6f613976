"""Stage 1: raw events -> ``curated/pseudonymized_events``, ``curated/quarantine`` and ``curated/opt_outs``.

``curated/opt_outs`` is the opted-out set this run honoured (their pseudonyms and
when the set was taken), for audits; later stages still read the preferences in
force when *they* run (``jobs/_consent.py``).

    python -m jobs.pseudonymize --conf conf/local.yaml --date 2026-10-05
"""

from __future__ import annotations

import sys

from pyspark import StorageLevel

from mobility.io import read_raw
from mobility.publish import Publisher
from mobility.quality import validate_inputs
from mobility.runner import Context, publish, run_job
from mobility.summaries import check_stage1, stage1_summary
from transforms.consent import pseudonyms_of, to_opt_outs
from transforms.kernels import BUILTIN, Kernels
from transforms.stage1 import (
    cells_valid_on,
    opted_out_msisdns,
    tag_events,
    to_pseudonymized_events,
    to_quarantine,
    with_pseudonyms,
)


def stage(ctx: Context) -> None:
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    kernels: Kernels = ctx.kernels or BUILTIN
    inputs = {table: read_raw(spark, cfg.lake.raw, table, date.isoformat() if table == "network_events" else None)
              for table in ("network_events", "subscribers", "privacy_preferences", "cells")}
    valid_cells = cells_valid_on(inputs["cells"], date=date)
    # Input gate: a raw partition that fails its suite stops the run before any write.
    checked = validate_inputs(spark, cfg, date, inputs, known_cells=valid_cells, as_of=ctx.run_ts)
    ctx.summary["validation"] = {r.table: "passed" for r in checked}

    p = cfg.privacy
    opted_out = opted_out_msisdns(inputs["privacy_preferences"], as_of=ctx.run_ts)
    tagged = tag_events(inputs["network_events"], date=date, opted_out=opted_out,
                        valid_cells=valid_cells, subscribers=inputs["subscribers"],
                        age_band_edges=cfg.generalization.age_band_edges, min_age=p.min_age,
                        exclude_business=p.exclude_business)
    hasher = kernels.keyed_hash(spark, ctx.keys.network)
    # One pass computes everything; the cache holds no raw identifier (already hashed).
    tagged = tagged.transform(with_pseudonyms, hasher=hasher).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {(r["disposition"], r["reason"]): r["count"]
                  for r in tagged.groupBy("disposition", "reason").count().collect()}  # <= 12 rows
        summary = ctx.summary["pseudonymize"] = stage1_summary(counts)
        raw_rows = next(r for r in checked if r.table == "network_events").observed("rows")
        check_stage1(summary, date=date, raw_rows=raw_rows, max_quarantine_share=cfg.quality.max_quarantine_share)
        outputs = [("pseudonymized_events", to_pseudonymized_events(tagged, date=date), summary["rows_out"]),
                   ("quarantine", to_quarantine(tagged, date=date), summary["quarantined_total"]),
                   ("opt_outs", to_opt_outs(pseudonyms_of(opted_out, hasher=hasher), date=date,
                                            taken_at=ctx.run_ts), None)]
        # Events and quarantine are cheap projections of the cached frame (audited and written
        # from it, not re-cached); opt_outs is the small preferences table, hashed.
        publish(ctx, outputs, persist=False)
    finally:
        tagged.unpersist()


def main(argv: list[str] | None = None, *, kernels: Kernels = BUILTIN, publisher: Publisher | None = None) -> int:
    return run_job("pseudonymize", argv, stage, needs=("network",), kernels=kernels, publisher=publisher)


if __name__ == "__main__":
    sys.exit(main())
