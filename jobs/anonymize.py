"""Stage 2: ``pseudonymized_events`` -> ``curated/anonymized_events`` and ``curated/anonymized_trips``.

    python -m jobs.anonymize --conf conf/local.yaml --date 2026-10-05

Trips need exact timestamps, which ``anonymized_events`` no longer holds, so they are
detected here. The events are located at both H3 resolutions in one pass (rows with a
position fix through the vectorized UDF, the others from the cell table), hash-partitioned
by the stage-1 pseudonym (the run's only shuffle of the events) and cached; both outputs
are computed from that cache without shuffling the events again. The daily id is computed only
for the rows that survive the collapse to person/window/cell, and for the trip rows.

Opt-outs: the events of everyone whose opt-out is in force *now* (the current raw
``privacy_preferences``, hashed with the network key) are dropped first, so a stage-2
re-run of a past date after a new opt-out no longer holds that person.
"""

from __future__ import annotations

import sys

from pyspark.sql import Observation
from pyspark.sql import functions as F

from contract.columns import count_if
from contract.vocabulary import age_bands
from jobs._consent import opted_out_pseudonyms
from mobility.io import read_raw
from mobility.ledger import read_pinned
from mobility.publish import Publisher
from mobility.runner import Context, publish, run_job
from mobility.secrets import derive_daily_key
from mobility.spark import persist_on_disk
from transforms.consent import with_excluded_flag
from transforms.flows import detect_trips, to_anonymized_trips
from transforms.kernels import BUILTIN, Kernels
from transforms.stage1 import cells_valid_on
from transforms.stage2 import by_person, cells_at_resolutions, to_anonymized_events

OUTPUTS = ("anonymized_events", "anonymized_trips")


def stage(ctx: Context) -> None:
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    kernels: Kernels = ctx.kernels or BUILTIN
    g = cfg.generalization
    events = read_pinned(spark, cfg.lake, "pseudonymized_events", date, what="curated/pseudonymized_events")
    targets = {"h3_cell": g.h3_resolution, "od_h3": g.od_h3_resolution}
    cells_h3 = cells_at_resolutions(cells_valid_on(read_raw(spark, cfg.lake.raw, "cells"), date=date), targets)
    hasher = kernels.keyed_hash(spark, derive_daily_key(ctx.keys.daily, date.isoformat()))
    counted = Observation("anonymize")
    # The events located at both resolutions, cached: one computation feeds both outputs.
    located = (
        events.transform(with_excluded_flag, ids=opted_out_pseudonyms(ctx), on="pseudo_id")
        .observe(counted, F.count(F.lit(1)).alias("rows_in"), count_if(F.col("_excluded")).alias("excluded"))
        .filter(~F.col("_excluded"))
        .select("date", "pseudo_id", "event_ts", "cell_id", "latitude", "longitude", "age_band", "gender")
        .transform(kernels.locate, cells_h3=cells_h3, targets={c: (f"cell_{c}", r) for c, r in targets.items()})
        .drop("cell_id", "latitude", "longitude")
        .transform(by_person)  # the one shuffle of the events; both outputs reuse it
    )
    located = persist_on_disk(located, keep_partitioning=True)  # as stage 1's cache: see persist_on_disk
    try:
        anonymized = located.transform(to_anonymized_events, hasher=hasher, window_minutes=g.window_minutes,
                                       age_bands=age_bands(g.age_band_edges))
        # Trips per stage-1 pseudonym (one-to-one with the daily id within the date); only
        # the trip rows get the daily key.
        trips = (
            located.select("date", "pseudo_id", "event_ts", "od_h3", "age_band", "gender")
            .transform(detect_trips, id_col="pseudo_id", stay_min_minutes=cfg.insights.stay_min_minutes,
                       window_minutes=g.window_minutes)
            .transform(to_anonymized_trips, hasher=hasher, id_col="pseudo_id")
        )
        # Rows in the order of the day's id (a keyed hash per day), never of the stable
        # stage-1 pseudonym: files of two days cannot be lined up by row position.
        outputs = [(t, frame.sortWithinPartitions("daily_id"), None)
                   for t, frame in zip(OUTPUTS, (anonymized, trips), strict=True)]
        rows = publish(ctx, outputs).rows
        ctx.summary["anonymize"] = {"rows_in": counted.get["rows_in"],
                                    "excluded_opted_out": counted.get["excluded"],
                                    "rows_out_person_window_cell": rows["anonymized_events"],
                                    "trips_out": rows["anonymized_trips"]}
    finally:
        located.unpersist()


def main(argv: list[str] | None = None, *, kernels: Kernels = BUILTIN, publisher: Publisher | None = None) -> int:
    return run_job("anonymize", argv, stage, needs=("network", "daily"), kernels=kernels, publisher=publisher)


if __name__ == "__main__":
    sys.exit(main())
