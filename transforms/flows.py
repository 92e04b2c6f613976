"""Insight products beyond footfall: trips (origin-destination flows) and presence.

Trips are detected in stage 2, where exact timestamps still exist; stage 3 only counts.

A *run* is a maximal sequence of one person's consecutive events (ordered by
``event_ts``) in the same H3 cell at the OD resolution. A run is a *stay* when its
last event is at least ``stay_min_minutes`` after its first. A *trip* joins two
consecutive stays in different cells; it departs at the end of the origin stay.
Everything is one window pass per person (``lag`` + running sum for the run ids,
then a grouped min/max and one more ``lag`` over the few stays), all partitioned by
the person's id, so Spark shuffles the events once and runs no Python per person.

Presence counts people per cell and window without demographics and scales them to
the population with an expansion factor: ``1 / market_share``, or a per-region
factor from a small table keyed by H3 cells at any resolution up to the released one
(the finest region containing the released cell wins).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from contract.columns import h3_parent, h3_resolution_of, window_start
from contract.vocabulary import RELEASE_KEYS
from transforms.hashing import KeyedHash
from transforms.stage3 import DistinctPeople, distinct_people

OD_KEYS = RELEASE_KEYS["od_flows"]
PRESENCE_KEYS = RELEASE_KEYS["presence"]


# --- stage 2: location at the OD resolution, stays, trips ----------------------------------------

def to_stays(events: DataFrame, *, id_col: str, stay_min_minutes: int) -> DataFrame:
    """One row per stay: ``date, <id_col>, age_band, gender, run_id, od_h3, arrive_ts, leave_ts``.

    Events without an ``od_h3`` cannot place anyone and are skipped. Ties in
    ``event_ts`` are broken by the cell so that the result does not depend on the
    partitioning.
    """
    by_person = Window.partitionBy(id_col).orderBy("event_ts", "od_h3")
    prev_cell = F.lag("od_h3").over(by_person)
    runs = (
        events.filter(F.col("od_h3").isNotNull())
        .select("date", id_col, "event_ts", "od_h3", "age_band", "gender",
                F.when(prev_cell.isNull() | (prev_cell != F.col("od_h3")), 1).otherwise(0).alias("_new_run"))
        .withColumn("run_id", F.sum("_new_run").over(
            by_person.rowsBetween(Window.unboundedPreceding, Window.currentRow)))
    )
    dwell_seconds = F.unix_timestamp("leave_ts") - F.unix_timestamp("arrive_ts")
    return (
        # Grouping by a superset of the window's partition key reuses its partitioning: no new shuffle.
        runs.groupBy("date", id_col, "age_band", "gender", "run_id", "od_h3")
        .agg(F.min("event_ts").alias("arrive_ts"), F.max("event_ts").alias("leave_ts"))
        .filter(dwell_seconds >= F.lit(stay_min_minutes * 60))
    )


def to_trips(stays: DataFrame, *, id_col: str, window_minutes: int) -> DataFrame:
    """Trips between consecutive stays in different cells, departing at the end of the origin stay.

    Returns ``date, <id_col>, window_start, origin_h3, destination_h3, age_band, gender``.
    Two consecutive stays in the same cell (with a short excursion between) are no trip.
    """
    by_person = Window.partitionBy(id_col).orderBy("run_id")
    origin = F.lag("od_h3").over(by_person)
    departure = F.lag("leave_ts").over(by_person)
    return (
        stays.select("date", id_col, "age_band", "gender", F.col("od_h3").alias("destination_h3"),
                     origin.alias("origin_h3"), departure.alias("departure_ts"))
        .filter(F.col("origin_h3").isNotNull() & (F.col("origin_h3") != F.col("destination_h3")))
        .select("date", id_col, window_start(F.col("departure_ts"), minutes=window_minutes).alias("window_start"),
                "origin_h3", "destination_h3", "age_band", "gender")
    )


def detect_trips(events: DataFrame, *, id_col: str, stay_min_minutes: int, window_minutes: int) -> DataFrame:
    """Stays then trips of every person in ``events`` (needs ``event_ts``, ``od_h3``, demographics)."""
    return to_trips(to_stays(events, id_col=id_col, stay_min_minutes=stay_min_minutes),
                    id_col=id_col, window_minutes=window_minutes)


def to_anonymized_trips(trips: DataFrame, *, hasher: KeyedHash, id_col: str = "pseudo_id") -> DataFrame:
    """The ``curated/anonymized_trips`` contract, with the daily id computed from ``id_col``.

    The stage-1 pseudonym maps one-to-one to the daily id within a date, so trips can be
    detected per stage-1 pseudonym and only the (far fewer) trip rows hashed with the
    daily key (``hasher``).
    """
    return trips.transform(hasher.attach).select(
        "date",
        hasher.hex(F.col(id_col)).alias("daily_id"),
        "window_start",
        "origin_h3",
        "destination_h3",
        "age_band",
        "gender",
    )


# --- stage 3: counting ---------------------------------------------------------------------------

def count_od_trips(trips: DataFrame, *, distinct: DistinctPeople = distinct_people) -> DataFrame:
    """Distinct people per OD group (all groups, before suppression), as ``trips``."""
    return trips.groupBy(*OD_KEYS).agg(distinct().alias("trips"))


def to_od_flows(groups: DataFrame, *, k_min: int, h3_resolution: int) -> DataFrame:
    """The ``insights/od_flows`` contract: OD groups of at least ``k_min`` people."""
    return groups.filter(F.col("trips") >= F.lit(k_min)).select(
        "date",
        "window_start",
        "origin_h3",
        "destination_h3",
        F.lit(h3_resolution).alias("h3_resolution"),
        "age_band",
        "gender",
        F.col("trips").cast("long").alias("trips"),
    )


def count_presence(anonymized: DataFrame, *, distinct: DistinctPeople = distinct_people) -> DataFrame:
    """Distinct people per cell and window (all cells, before suppression), as ``visitors``."""
    return anonymized.groupBy(*PRESENCE_KEYS).agg(distinct().alias("visitors"))


def with_expansion_factor(cells: DataFrame, *, market_share: float, h3_resolution: int,
                          region_factors: DataFrame | None = None) -> DataFrame:
    """Add ``expansion_factor`` to a (small, aggregated) frame with ``h3_cell``.

    Without ``region_factors`` every cell gets ``1 / market_share``. With it (columns
    ``h3_cell``, ``expansion_factor``; cells at any resolution up to ``h3_resolution``)
    each cell gets the factor of its finest enclosing region, else ``1 / market_share``.
    Enclosing regions are found by exploding each released cell into its parents at
    every resolution 0..``h3_resolution`` and joining on equality — no UDF, no
    non-equi join, and it works on the released aggregate, never on events.
    """
    default = F.lit(1.0 / market_share)
    if region_factors is None:
        return cells.withColumn("expansion_factor", default)
    distinct_cells = cells.select("h3_cell").distinct()
    parents = distinct_cells.select(
        "h3_cell",
        F.explode(F.array(*[F.struct(F.lit(r).alias("res"), h3_parent(F.col("h3_cell"), resolution=r).alias("region"))
                            for r in range(h3_resolution + 1)])).alias("p"),
    ).select("h3_cell", F.col("p.res").alias("res"), F.col("p.region").alias("region"))
    factors = region_factors.select(F.lower(F.col("h3_cell")).alias("region"),
                                    F.col("expansion_factor").cast("double").alias("_factor"))
    finest = (
        parents.join(factors, on="region", how="inner")
        .groupBy("h3_cell")
        .agg(F.max_by("_factor", "res").alias("_factor"))
    )
    return (
        cells.join(finest, on="h3_cell", how="left")
        .withColumn("expansion_factor", F.coalesce(F.col("_factor"), default))
        .drop("_factor")
    )


def to_presence(counts: DataFrame, *, k_min: int, h3_resolution: int, market_share: float,
                region_factors: DataFrame | None = None) -> DataFrame:
    """The ``insights/presence`` contract: cells and windows with at least ``k_min`` people.

    ``population_estimate`` is ``visitors`` times the expansion factor
    (:func:`with_expansion_factor`), rounded to a whole number of people.
    """
    released = counts.filter(F.col("visitors") >= F.lit(k_min))
    return released.transform(with_expansion_factor, market_share=market_share, h3_resolution=h3_resolution,
                              region_factors=region_factors).select(
        "date",
        "window_start",
        "h3_cell",
        F.lit(h3_resolution).alias("h3_resolution"),
        F.col("visitors").cast("long").alias("visitors"),
        F.round(F.col("visitors") * F.col("expansion_factor"), 0).alias("population_estimate"),
    )


def invalid_region_factors(factors: DataFrame, *, h3_resolution: int) -> DataFrame:
    """Rows of a region-factor table that cannot be used, with a ``reason``.

    A factor must be a positive number for a well-formed H3 cell at a resolution up to
    the released one (a finer region could never enclose a released cell), and each
    region may appear once, or the factor it gets would be arbitrary.
    """
    cell = F.lower(F.col("h3_cell"))
    dup = F.count(F.lit(1)).over(Window.partitionBy(cell)) > 1
    reason = (
        F.when(F.col("h3_cell").isNull() | ~cell.rlike("^[0-9a-f]{15}$"), F.lit("malformed_h3_cell"))
        .when(h3_resolution_of(cell) > F.lit(h3_resolution), F.lit("finer_than_h3_resolution"))
        .when(F.col("expansion_factor").isNull() | ~(F.col("expansion_factor") > 0), F.lit("non_positive_factor"))
        .when(dup, F.lit("duplicate_h3_cell"))
    )
    return factors.select("h3_cell", "expansion_factor", reason.alias("reason")).filter(F.col("reason").isNotNull())
