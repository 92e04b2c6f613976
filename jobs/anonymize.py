"""Stage 2: ``pseudonymized_events`` -> ``curated/anonymized_events``.

    python -m jobs.anonymize --conf conf/local.yaml --date 2026-10-05
"""

from __future__ import annotations

import sys

from pyspark.sql import Observation
from pyspark.sql import functions as F

from mobility.io import publish, read_date, table_path
from mobility.runner import Context, run_job
from mobility.schemas import read_raw
from mobility.secrets import derive_daily_key
from transforms.hashing import key_frame, with_key
from transforms.stage1 import cells_valid_on
from transforms.stage2 import to_anonymized_events, with_cell_h3, with_location_h3


def stage(ctx: Context) -> None:
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    res = cfg.generalization.h3_resolution
    events = read_date(spark, table_path(cfg.lake, "pseudonymized_events"), date=date,
                       what="curated/pseudonymized_events")
    cells_h3 = with_cell_h3(cells_valid_on(read_raw(spark, cfg.lake.raw, "cells"), date=date), resolution=res)
    daily_key = derive_daily_key(ctx.secrets["daily_key_env"], date.isoformat())
    counted = Observation("anonymize")
    anonymized = (
        events.observe(counted, F.count(F.lit(1)).alias("rows_in"))
        .transform(with_location_h3, cells_h3=cells_h3, resolution=res)
        .transform(with_key, keys=key_frame(spark, daily_key))
        .transform(to_anonymized_events, window_minutes=cfg.generalization.window_minutes)
    )
    path = table_path(cfg.lake, "anonymized_events")
    publish(spark, cfg.lake, "anonymized_events", anonymized, date=date)
    rows_out = read_date(spark, path, date=date, what="anonymized_events").count()  # Delta stats, no scan
    ctx.summary["anonymize"] = {"rows_in": counted.get["rows_in"], "rows_out_person_window_cell": rows_out}


def main(argv: list[str] | None = None) -> int:
    return run_job("anonymize", argv, stage, secrets=("daily_key_env",))


if __name__ == "__main__":
    sys.exit(main())
