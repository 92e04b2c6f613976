"""Stage 3 (release): count distinct people per group and keep only groups of at least k.

Footfall and presence count rows, not distinct ids (:func:`people_in_unique_rows`):
``anonymized_events`` holds one row per person, window and H3 cell (stage 2 collapses
to it before it hashes the one-to-one daily id), and both tables' groups include the
window and the cell, so each person is at most one row of a group. That saves the
distinct aggregation's second shuffle. Trips are not unique per person and group (two
trips A->B in one window), so od_flows count distinct ids.

Distinct counting uses ``xxhash64(daily_id)`` instead of the 64-character hex string: the
shuffle then moves 8 bytes per person instead of 64. A hash collision can only
merge two people into one, so it can only *lower* a count — it errs towards
suppression, never towards releasing a group that is too small. With 64-bit hashes
and groups of thousands of people the chance of any collision in a group is below
10^-12.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contract.vocabulary import RELEASE_KEYS

FOOTFALL_KEYS = RELEASE_KEYS["footfall"]
# How people are counted per group: a function of the id column giving an aggregate.
DistinctPeople = Callable[..., Column]


def distinct_people(id_col: str = "daily_id") -> Column:
    """Exact distinct count of people over a compact 64-bit form of their daily id."""
    return F.count_distinct(F.xxhash64(F.col(id_col)))


def people_in_unique_rows(id_col: str = "daily_id") -> Column:
    """People per group of rows that are unique per person within every group: a plain count.

    Only for ``anonymized_events`` grouped by keys that include ``window_start`` and
    ``h3_cell`` (footfall, presence): the table is unique per (``daily_id``,
    ``window_start``, ``h3_cell``), written so by stage 2 alone (one commit; an erasure
    only deletes rows). On any other input use :func:`distinct_people`.
    """
    return F.count(F.col(id_col))


def count_visitors(anonymized: DataFrame, *, keys: tuple[str, ...] = FOOTFALL_KEYS,
                   distinct: DistinctPeople = distinct_people) -> DataFrame:
    """Distinct people per group (all groups, before suppression)."""
    return anonymized.groupBy(*keys).agg(distinct().alias("visitors"))


def to_footfall(groups: DataFrame, *, k_min: int, h3_resolution: int) -> DataFrame:
    """The ``insights/footfall`` contract: groups with at least ``k_min`` visitors."""
    return groups.filter(F.col("visitors") >= F.lit(k_min)).select(
        "date",
        "window_start",
        "h3_cell",
        F.lit(h3_resolution).alias("h3_resolution"),
        "age_band",
        "gender",
        F.col("visitors").cast("long").alias("visitors"),
    )
