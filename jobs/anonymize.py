"""Stage 2: ``pseudonymized_events`` -> ``curated/anonymized_events`` and ``curated/anonymized_trips``.

    python -m jobs.anonymize --conf conf/local.yaml --date 2026-10-05

Trips need exact timestamps, which ``anonymized_events`` no longer holds, so they are
detected here. The two outputs are two independent plans over the same input: the
footfall path is unchanged by trip detection, and the trip path computes H3 only at
the OD resolution and the daily id only for the (few) trip rows.
"""

from __future__ import annotations

import sys

from pyspark.sql import Observation
from pyspark.sql import functions as F

from mobility.io import publish, read_date, table_path
from mobility.runner import Context, run_job
from mobility.schemas import read_raw
from mobility.secrets import derive_daily_key
from transforms.flows import detect_trips, to_anonymized_trips, with_od_h3
from transforms.hashing import key_frame, with_key
from transforms.stage1 import cells_valid_on
from transforms.stage2 import to_anonymized_events, with_cell_h3, with_location_h3


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
    daily_key = derive_daily_key(ctx.secrets["daily_key_env"], date.isoformat())
    keys = key_frame(spark, daily_key)
    counted = Observation("anonymize")
    anonymized = (
        events.observe(counted, F.count(F.lit(1)).alias("rows_in"))
        .transform(with_location_h3, cells_h3=cells_h3, resolution=res)
        .transform(with_key, keys=keys)
        .transform(to_anonymized_events, window_minutes=g.window_minutes)
    )
    path = table_path(cfg.lake, "anonymized_events")
    validation = ctx.summary.setdefault("validation", {})
    validation["report"] = publish(spark, cfg.lake, "anonymized_events", anonymized, date=date, cfg=cfg)
    validation["anonymized_events"] = "passed"
    rows_out = read_date(spark, path, date=date, what="anonymized_events").count()  # Delta stats, no scan
    ctx.summary["anonymize"] = {"rows_in": counted.get["rows_in"], "rows_out_person_window_cell": rows_out}

    # Trips per stage-1 pseudonym (one-to-one with the daily id within the date); only
    # the trip rows get the daily key.
    trips = (
        events.select("date", "pseudo_id", "event_ts", "cell_id", "latitude", "longitude", "age_band", "gender")
        .transform(with_od_h3, cells_h3=cells_h3, resolution=od_res)
        .transform(detect_trips, id_col="pseudo_id", stay_min_minutes=cfg.insights.stay_min_minutes,
                   window_minutes=g.window_minutes)
        .transform(with_key, keys=keys)
        .transform(to_anonymized_trips, id_col="pseudo_id")
    )
    validation["report"] = publish(spark, cfg.lake, "anonymized_trips", trips, date=date, cfg=cfg)
    validation["anonymized_trips"] = "passed"
    trip_rows = read_date(spark, table_path(cfg.lake, "anonymized_trips"), date=date, what="anonymized_trips").count()
    ctx.summary["anonymize"]["trips_out"] = trip_rows


def main(argv: list[str] | None = None) -> int:
    return run_job("anonymize", argv, stage, secrets=("daily_key_env",))


if __name__ == "__main__":
    sys.exit(main())
