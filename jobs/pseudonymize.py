"""Stage 1: raw events -> ``curated/pseudonymized_events`` and ``curated/quarantine``.

    python -m jobs.pseudonymize --conf conf/local.yaml --date 2026-10-05
"""

from __future__ import annotations

import sys

from pyspark import StorageLevel

from mobility.io import publish_together
from mobility.quality import validate_inputs
from mobility.runner import Context, ValidationError, run_job
from mobility.schemas import read_raw
from transforms.hashing import key_frame, with_key, without_key
from transforms.stage1 import (
    DISPOSITIONS,
    cells_valid_on,
    opted_out_msisdns,
    tag_events,
    to_pseudonymized_events,
    to_quarantine,
    with_pseudonyms,
)


def stage(ctx: Context) -> None:
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    raw = cfg.lake.raw
    events = read_raw(spark, raw, "network_events", date.isoformat())
    subscribers = read_raw(spark, raw, "subscribers")
    prefs = read_raw(spark, raw, "privacy_preferences")
    cells = read_raw(spark, raw, "cells")
    # Input gate: a raw partition that fails its suite stops the run before any write.
    inputs = {"network_events": events, "subscribers": subscribers, "privacy_preferences": prefs, "cells": cells}
    checked = validate_inputs(spark, cfg, date, inputs, as_of=ctx.run_ts)
    raw_rows = next(r for r in checked if r.table == "network_events")
    ctx.summary["validation"] = {r.table: "passed" for r in checked}

    tagged = (
        tag_events(
            events,
            date=date,
            opted_out=opted_out_msisdns(prefs, as_of=ctx.run_ts),
            valid_cells=cells_valid_on(cells, date=date),
            subscribers=subscribers,
            age_band_edges=cfg.generalization.age_band_edges,
            min_age=cfg.privacy.min_age,
            exclude_business=cfg.privacy.exclude_business,
        )
        .transform(with_key, keys=key_frame(spark, ctx.secrets["network_key_env"]))
        .transform(with_pseudonyms)
        .transform(without_key)
    )
    # One pass computes everything; the cache holds no raw identifier (already hashed).
    tagged = tagged.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {(r["disposition"], r["reason"]): r["count"]
                  for r in tagged.groupBy("disposition", "reason").count().collect()}  # <= 12 rows
        rows_in = sum(counts.values())
        by_disp = {d: sum(n for (disp, _), n in counts.items() if disp == d) for d in DISPOSITIONS}
        quarantined = {reason: n for (disp, reason), n in sorted(counts.items(), key=str) if disp == "quarantine"}
        ctx.summary["pseudonymize"] = {
            "rows_in": rows_in,
            "excluded_opted_out": by_disp["opted_out"],
            "quarantined": quarantined,
            "quarantined_total": by_disp["quarantine"],
            "excluded_minor": by_disp["minor"],
            "excluded_business": by_disp["business"],
            "rows_out": by_disp["kept"],
        }
        share = by_disp["quarantine"] / rows_in if rows_in else 0.0
        if rows_in == 0:
            raise ValidationError(f"network_events partition {date} is empty")
        if share > cfg.quality.max_quarantine_share:
            raise ValidationError(
                f"network_events {date}: {share:.2%} of rows are unprocessable, more than "
                f"quality.max_quarantine_share={cfg.quality.max_quarantine_share:.2%}; nothing was written"
            )
        if rows_in != raw_rows.observed("rows"):
            raise ValidationError(f"network_events {date}: stage 1 tagged {rows_in} rows but the partition has "
                                  f"{raw_rows.observed('rows')}; nothing was written")
        outputs = {"pseudonymized_events": (to_pseudonymized_events(tagged, date=date), by_disp["kept"]),
                   "quarantine": (to_quarantine(tagged, date=date), by_disp["quarantine"])}
        # Both are cheap projections of the cached frame: audited and written from it, not re-cached.
        report = publish_together(spark, cfg, [(t, f, n) for t, (f, n) in outputs.items()], date=date, persist=False)
        ctx.summary["validation"].update({table: "passed" for table in outputs})
        ctx.summary["validation"]["report"] = report
    finally:
        tagged.unpersist()


def main(argv: list[str] | None = None) -> int:
    return run_job("pseudonymize", argv, stage, secrets=("network_key_env",))


if __name__ == "__main__":
    sys.exit(main())
