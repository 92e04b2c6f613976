"""Stage 3: ``anonymized_events`` -> ``insights/footfall`` (groups of at least k_min people).

    python -m jobs.aggregate --conf conf/local.yaml --date 2026-10-05
"""

from __future__ import annotations

import sys

from pyspark.sql import Observation
from pyspark.sql import functions as F

from mobility.io import publish, read_date, table_path
from mobility.runner import Context, run_job
from transforms.stage3 import count_visitors, to_footfall


def stage(ctx: Context) -> None:
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    k = cfg.privacy.k_min
    anonymized = read_date(spark, table_path(cfg.lake, "anonymized_events"), date=date,
                           what="curated/anonymized_events")
    seen = Observation("aggregate")
    groups = count_visitors(anonymized).observe(
        seen,
        F.count(F.lit(1)).alias("groups"),
        F.coalesce(F.sum(F.when(F.col("visitors") < k, 1)), F.lit(0)).alias("suppressed"),
        F.coalesce(F.sum(F.when(F.col("visitors") >= k, 1)), F.lit(0)).alias("released"),
    )
    footfall = to_footfall(groups, k_min=k, h3_resolution=cfg.generalization.h3_resolution)
    publish(spark, cfg.lake, "footfall", footfall, date=date)
    m = seen.get
    ctx.summary["aggregate"] = {
        "footfall_groups": m["groups"],
        "footfall_released": m["released"],
        "footfall_suppressed_below_k": m["suppressed"],
    }


def main(argv: list[str] | None = None) -> int:
    return run_job("aggregate", argv, stage, secrets=())


if __name__ == "__main__":
    sys.exit(main())
