"""Stage 2 (analytics domain): daily pseudonyms, H3 cells and time windows.

H3 is computed once per *radio cell* on the small cell table and broadcast-joined;
only events with their own position fix need a per-event H3, and those go through
a vectorized ``pandas_udf`` (h3's numpy API), never a row-at-a-time UDF.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.hashing import hmac_sha256_hex


def with_cell_h3(cells: DataFrame, *, resolution: int) -> DataFrame:
    """Add ``cell_h3`` to the (small) cell table with h3-pyspark."""
    import h3_pyspark  # imported here: it creates its UDFs at import time

    return cells.withColumn(
        "cell_h3", h3_pyspark.geo_to_h3(F.col("latitude"), F.col("longitude"), F.lit(resolution))
    )


@F.pandas_udf(T.StringType())
def _points_to_h3(lat: pd.Series, lng: pd.Series, res: pd.Series) -> pd.Series:
    """Vectorized H3 of points; null coordinates give null."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from h3.unstable import vect

    out = pd.Series([None] * len(lat), dtype=object)
    mask = lat.notna().to_numpy() & lng.notna().to_numpy()
    if mask.any():
        cells = vect.geo_to_h3(
            lat.to_numpy(dtype=np.float64)[mask], lng.to_numpy(dtype=np.float64)[mask], int(res.iloc[0])
        )
        out[mask] = [format(int(c), "x") for c in cells]
    return out


def points_to_h3(lat: Column, lng: Column, *, resolution: int) -> Column:
    """H3 cell (15-char lowercase hex) of a point at ``resolution``."""
    return _points_to_h3(lat, lng, F.lit(resolution))


def with_location_h3(events: DataFrame, *, cells_h3: DataFrame, resolution: int) -> DataFrame:
    """Add ``h3_cell``: the event's own fix if it has one, else its cell's H3.

    ``cells_h3`` holds the cells valid on the event date with ``cell_h3``; it is
    broadcast. Rows without a fix pass null coordinates to the UDF, which skips them.
    """
    has_fix = F.col("latitude").isNotNull() & F.col("longitude").isNotNull()
    fix_h3 = points_to_h3(F.when(has_fix, F.col("latitude")), F.when(has_fix, F.col("longitude")),
                          resolution=resolution)
    joined = events.join(F.broadcast(cells_h3.select("cell_id", "cell_h3")), on="cell_id", how="left")
    return joined.withColumn("h3_cell", F.coalesce(fix_h3, F.col("cell_h3"))).drop("cell_h3")


def window_start(ts: Column, *, minutes: int) -> Column:
    """Start of the fixed ``minutes``-long window (aligned to midnight UTC) holding ``ts``."""
    seconds = minutes * 60
    return F.timestamp_seconds(F.floor(F.unix_timestamp(ts) / F.lit(seconds)) * F.lit(seconds))


def to_anonymized_events(events: DataFrame, *, window_minutes: int) -> DataFrame:
    """The ``curated/anonymized_events`` contract.

    Requires the daily key columns (:func:`transforms.hashing.with_key`) and
    ``h3_cell``. Exact timestamps, coordinates, radio cells and stage-1 pseudonyms are
    dropped; what remains is collapsed to one row per person, window and H3 cell —
    how many events someone produced there is not needed downstream and not kept.
    """
    return (
        events.select(
            "date",
            hmac_sha256_hex(F.col("pseudo_id")).alias("daily_id"),
            window_start(F.col("event_ts"), minutes=window_minutes).alias("window_start"),
            "h3_cell",
            "age_band",
            "gender",
        )
        .dropDuplicates(["date", "daily_id", "window_start", "h3_cell"])
    )
