"""Stage 2: ``pseudonymized_events`` -> ``curated/anonymized_events`` and ``curated/anonymized_trips``.

    python -m jobs.anonymize --conf conf/local.yaml --date 2026-10-05

Trips need exact timestamps, which ``anonymized_events`` no longer holds, so they are
detected here. The events are located at both H3 resolutions in one pass (rows with a
position fix through the vectorized UDF, the others from the cell table) and cached;
both outputs are computed from that cache. The daily id is computed only
for the rows that survive the collapse to person/window/cell, and for the trip rows.
"""

from __future__ import annotations

import sys

from pyspark import StorageLevel
from pyspark.sql import Observation
from pyspark.sql import functions as F

from mobility.io import publish, read_date, table_path
from mobility.runner import Context, run_job
from mobility.schemas import read_raw
from mobility.secrets import derive_daily_key
from transforms.flows import detect_trips, to_anonymized_trips
from transforms.hashing import key_frame, with_key
from transforms.stage1 import cells_valid_on
from transforms.stage2 import locate, to_anonymized_events, with_cell_h3


def stage(ctx: Context) -> None:
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    g = cfg.generalization
    res, od_res = g.h3_resolution, g.od_h3_resolution
    events = read_date(spark, table_path(cfg.lake, "pseudonymized_events"), date=date,
                       what="curated/pseudonymized_events")
    # Both resolutions on the small cell table (one h3-pyspark call per cell and resolution).
    cells_h3 = (
        with_cell_h3(cells_valid_on(read_raw(spark, cfg.lake.raw, "cells"), date=date), resolution=od_res)
        .withColumnRenamed("cell_h3", "cell_od_h3")
        .transform(with_cell_h3, resolution=res)
    )
    keys = key_frame(spark, derive_daily_key(ctx.secrets["daily_key_env"], date.isoformat()))
    counted = Observation("anonymize")
    # The events located at both resolutions, cached: one computation feeds both outputs.
    located = (
        events.observe(counted, F.count(F.lit(1)).alias("rows_in"))
        .select("date", "pseudo_id", "event_ts", "cell_id", "latitude", "longitude", "age_band", "gender")
        .transform(locate, cells_h3=cells_h3, targets={"h3_cell": ("cell_h3", res), "od_h3": ("cell_od_h3", od_res)})
        .drop("cell_id", "latitude", "longitude")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        anonymized = located.transform(to_anonymized_events, keys=keys, window_minutes=g.window_minutes)
        validation = ctx.summary.setdefault("validation", {})
        validation["report"] = publish(spark, cfg.lake, "anonymized_events", anonymized, date=date, cfg=cfg)
        validation["anonymized_events"] = "passed"
        rows_out = read_date(spark, table_path(cfg.lake, "anonymized_events"), date=date,
                             what="anonymized_events").count()  # Delta stats, no scan
        ctx.summary["anonymize"] = {"rows_in": counted.get["rows_in"], "rows_out_person_window_cell": rows_out}

        # Trips per stage-1 pseudonym (one-to-one with the daily id within the date); only
        # the trip rows get the daily key.
        trips = (
            located.select("date", "pseudo_id", "event_ts", "od_h3", "age_band", "gender")
            .transform(detect_trips, id_col="pseudo_id", stay_min_minutes=cfg.insights.stay_min_minutes,
                       window_minutes=g.window_minutes)
            .transform(with_key, keys=keys)
            .transform(to_anonymized_trips, id_col="pseudo_id")
        )
        validation["report"] = publish(spark, cfg.lake, "anonymized_trips", trips, date=date, cfg=cfg)
        validation["anonymized_trips"] = "passed"
        ctx.summary["anonymize"]["trips_out"] = read_date(spark, table_path(cfg.lake, "anonymized_trips"), date=date,
                                                          what="anonymized_trips").count()
    finally:
        located.unpersist()


def main(argv: list[str] | None = None) -> int:
    return run_job("anonymize", argv, stage, secrets=("daily_key_env",))


if __name__ == "__main__":
    sys.exit(main())
