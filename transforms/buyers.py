"""DataFrame -> DataFrame functions behind the buyers' reports (map and store report).

They only ever see released rows (``mobility.release.read_release``): post-processing
what was released adds no privacy risk, and nothing here may read a curated table.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def with_window_label(df: DataFrame, *, column: str = "window_start") -> DataFrame:
    """Add ``window`` ("HH:MM", UTC): the label buyers see for a time window."""
    return df.withColumn("window", F.date_format(F.col(column), "HH:mm"))


def to_store_visitors(footfall: DataFrame, store_cells: DataFrame) -> DataFrame:
    """Sum the released footfall groups of each store's covering cells, per window and target group.

    Args:
        footfall: released footfall rows (``h3_cell``, ``window_start``, ``age_band``,
            ``gender``, ``visitors``).
        store_cells: one row per store and covering cell (``store_id``, ``h3_cell``).

    The result is a *sum of released cell-window groups*: a person seen in two covering
    cells in one window counts twice, and a group suppressed in a cell contributes
    nothing (it is absent, not zero). ``cells_with_release`` says how many covering
    cells contributed to each sum.
    """
    joined = footfall.join(store_cells.select("store_id", "h3_cell").distinct(), on="h3_cell", how="inner")
    return (
        joined.groupBy("store_id", "window_start", "age_band", "gender")
        .agg(F.sum("visitors").cast("long").alias("visitors_sum"),
             F.countDistinct("h3_cell").alias("cells_with_release"))
        .select("store_id", "window_start", "age_band", "gender", "visitors_sum", "cells_with_release")
    )
