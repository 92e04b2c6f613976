"""Stage 2 (analytics domain): daily pseudonyms, H3 cells and time windows.

H3 is computed once per *radio cell* on the small cell table and broadcast-joined;
only events with their own position fix need a per-event H3, and those go through
a vectorized ``pandas_udf`` (h3's numpy API), never a row-at-a-time UDF.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contract.columns import window_start
from contract.vocabulary import GENDERS
from transforms.hashing import KeyedHash


def with_cell_h3(cells: DataFrame, *, resolution: int) -> DataFrame:
    """Add ``cell_h3`` to the (small) cell table with h3-pyspark."""
    import h3_pyspark  # imported here: it creates its UDFs at import time

    return cells.withColumn(
        "cell_h3", h3_pyspark.geo_to_h3(F.col("latitude"), F.col("longitude"), F.lit(resolution))
    )


def cells_at_resolutions(cells: DataFrame, targets: dict[str, int]) -> DataFrame:
    """The (small) cell table with one H3 column per target: ``cell_<name>`` at its resolution."""
    for name, resolution in targets.items():
        cells = with_cell_h3(cells, resolution=resolution).withColumnRenamed("cell_h3", f"cell_{name}")
    return cells


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


def locate(events: DataFrame, *, cells_h3: DataFrame, targets: dict[str, tuple[str, int]]) -> DataFrame:
    """Add one H3 column per target: the event's own fix if it has one, else its radio cell's.

    ``targets`` maps each new column to ``(column of cells_h3 with the cell's H3, resolution)``.
    ``cells_h3`` (the cells valid on the date) is broadcast. The frame is split so that
    only rows with a fix go through the vectorized UDF (one Arrow round trip computes
    every resolution); the rest take their cell's H3 from the join. Splitting costs a
    second scan of the input, far less than sending every row through Python (see
    ``benchmarks/README.md``); callers that use the result twice cache it.
    """
    has_fix = F.col("latitude").isNotNull() & F.col("longitude").isNotNull()
    cell_cols = [F.col(src).alias(f"_cell_{out}") for out, (src, _) in targets.items()]
    joined = events.join(F.broadcast(cells_h3.select("cell_id", *cell_cols)), on="cell_id", how="left")
    cols = events.columns
    lat, lng = F.col("latitude"), F.col("longitude")
    fixes = joined.filter(has_fix).select(*cols, *[
        F.coalesce(points_to_h3(lat, lng, resolution=res), F.col(f"_cell_{out}")).alias(out)
        for out, (_, res) in targets.items()])
    others = joined.filter(~has_fix).select(*cols, *[F.col(f"_cell_{out}").alias(out) for out in targets])
    return fixes.unionByName(others)


def by_person(events: DataFrame, *, id_col: str = "pseudo_id") -> DataFrame:
    """``events`` hash-partitioned by the person's id: the one shuffle of the events in stage 2.

    The collapse to person/window/cell (:func:`to_anonymized_events`) and trip detection
    (``transforms.flows``) both group by keys that include ``id_col``; Spark accepts a hash
    partitioning on a subset of the grouping keys, so neither shuffles the events again
    when they read this frame (cached).
    """
    return events.repartition(id_col)


def to_anonymized_events(events: DataFrame, *, hasher: KeyedHash, window_minutes: int,
                         age_bands: Sequence[str]) -> DataFrame:
    """The ``curated/anonymized_events`` contract.

    Needs ``pseudo_id`` and ``h3_cell``; ``hasher`` holds the daily key; ``age_bands``
    are every label stage 1 can write (:func:`contract.vocabulary.age_bands` of the
    configured edges). Exact timestamps, coordinates, radio cells and stage-1 pseudonyms
    are dropped; what remains is collapsed to one row per person, window and H3 cell —
    how many events someone produced there is not needed downstream and not kept. The
    stage-1 pseudonym maps one-to-one to the daily id within the date, so rows are
    collapsed first and only the survivors are hashed, and the key columns are attached
    after the shuffle, never carried through it.

    One row per (person, window, cell) holds by construction (stage 3 counts rows as
    people): the grouping keys are exactly those, and age band and gender (one per person
    and date from stage 1) are carried as their smallest position in the vocabulary. Small
    integers keep the grouping a hash aggregation; strings would make Spark sort every row
    (measured at 4 M events: 10.2-10.7 s against 12.9-14.0 s). A value outside the vocabulary
    (or null) stops the job, naming the value (its first 32 characters), rather than being
    dropped or mislabelled. Should a person's labels ever disagree within a day, the
    smallest position of each column is kept, each on its own: still one row per key,
    and the same row on every run.
    """
    demographics = {"age_band": tuple(age_bands), "gender": GENDERS}
    vocab = {c: F.array(*[F.lit(v) for v in values]) for c, values in demographics.items()}

    def code(c: str) -> Column:
        position = F.array_position(vocab[c], F.col(c))
        return F.when(position > 0, position).otherwise(F.raise_error(F.concat(
            F.lit(f"{c} "), F.coalesce(F.substring(F.col(c), 1, 32), F.lit("null")),
            F.lit(f" is not one of {', '.join(demographics[c])} (stage 1 ran with other settings?)"))))

    def label(c: str) -> Column:
        return F.element_at(vocab[c], F.col(c).cast("int")).alias(c)

    return (
        events.select(
            "date",
            "pseudo_id",
            window_start(F.col("event_ts"), minutes=window_minutes).alias("window_start"),
            "h3_cell",
            *[code(c).alias(c) for c in demographics],
        )
        .groupBy("date", "pseudo_id", "window_start", "h3_cell")
        .agg(*[F.min(c).alias(c) for c in demographics])
        .transform(hasher.attach)
        .select("date", hasher.hex(F.col("pseudo_id")).alias("daily_id"), "window_start", "h3_cell",
                *[label(c) for c in demographics])
    )
