"""Trips, OD flows and presence on small hand-built frames."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import h3
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from contract.vocabulary import age_bands
from mobility.diagnose import explain
from mobility.secrets import Secret
from mobility.spark import persist_partitioned
from transforms.flows import (
    count_od_trips,
    count_presence,
    detect_trips,
    h3_parent,
    invalid_region_factors,
    to_anonymized_trips,
    to_od_flows,
    to_presence,
    to_stays,
    with_expansion_factor,
)
from transforms.hashing import BroadcastHmac
from transforms.stage2 import by_person, locate, to_anonymized_events
from transforms.stage3 import count_visitors, distinct_people, people_in_unique_rows

D = dt.date(2026, 10, 5)
BANDS = age_bands((18, 25, 35, 45, 55, 65))
EVENTS = "date date, pid string, event_ts timestamp, od_h3 string, age_band string, gender string"
TRIPS = ("date date, pid string, window_start timestamp, origin_h3 string, destination_h3 string, "
         "age_band string, gender string")


def ts(hhmm: str) -> dt.datetime:
    return dt.datetime.combine(D, dt.time.fromisoformat(hhmm))


def day(spark, pid: str, visits: list[tuple[str, str]], *, age: str = "25-34", gender: str = "female"):
    """A person's events as (HH:MM, od cell) pairs, in any order."""
    return spark.createDataFrame([(D, pid, ts(t), c, age, gender) for t, c in visits], EVENTS)


# home -> (07:20-07:30 cafe: 10 min, below the 20 min threshold) -> work -> shop -> home
ROUTINE = [
    ("17:30", "home"), ("00:10", "home"), ("03:00", "home"), ("06:50", "home"),  # unordered on purpose
    ("07:20", "cafe"), ("07:30", "cafe"),
    ("07:50", "work"), ("12:00", "work"), ("16:10", "work"),
    ("16:40", "shop"), ("17:05", "shop"),
    ("23:00", "home"),
]


def test_home_work_shop_home_gives_three_trips(spark):
    trips = detect_trips(day(spark, "a", ROUTINE), id_col="pid", stay_min_minutes=20, window_minutes=60)
    expected = spark.createDataFrame(
        [
            (D, "a", ts("06:00"), "home", "work", "25-34", "female"),  # leaves home 06:50
            (D, "a", ts("16:00"), "work", "shop", "25-34", "female"),  # leaves work 16:10
            (D, "a", ts("17:00"), "shop", "home", "25-34", "female"),  # leaves shop 17:05
        ],
        TRIPS,
    )
    assert_df_equality(trips, expected, ignore_row_order=True, ignore_nullable=True)


def test_dwell_below_threshold_is_not_a_stay(spark):
    stays = to_stays(day(spark, "a", ROUTINE), id_col="pid", stay_min_minutes=20)
    assert sorted((r["od_h3"], r["arrive_ts"].strftime("%H:%M"), r["leave_ts"].strftime("%H:%M"))
                  for r in stays.collect()) == [
        ("home", "00:10", "06:50"), ("home", "17:30", "23:00"), ("shop", "16:40", "17:05"),
        ("work", "07:50", "16:10")]
    # With a 10-minute threshold the cafe becomes a stay and splits the commute.
    trips = detect_trips(day(spark, "a", ROUTINE), id_col="pid", stay_min_minutes=10, window_minutes=60)
    assert sorted((r["origin_h3"], r["destination_h3"]) for r in trips.collect()) == [
        ("cafe", "work"), ("home", "cafe"), ("shop", "home"), ("work", "shop")]


def test_single_event_and_same_cell_stays_make_no_trip(spark):
    # b: home, a 10-minute stop at work, home again -> the stays are both "home": no trip.
    # c: one event only.
    events = day(spark, "b", [("01:00", "home"), ("09:00", "home"), ("09:30", "work"), ("09:40", "work"),
                              ("10:00", "home"), ("11:00", "home")]).unionByName(day(spark, "c", [("12:00", "work")]))
    assert detect_trips(events, id_col="pid", stay_min_minutes=20, window_minutes=60).count() == 0


def test_trips_are_per_person(spark):
    # Two people interleaved in time must not form runs with each other's events.
    a = day(spark, "a", [("08:00", "x"), ("08:30", "x"), ("09:00", "y"), ("09:30", "y")])
    b = day(spark, "b", [("08:10", "y"), ("08:40", "y"), ("09:10", "x"), ("09:40", "x")], gender="male")
    trips = detect_trips(a.unionByName(b), id_col="pid", stay_min_minutes=20, window_minutes=30)
    expected = spark.createDataFrame(
        [(D, "a", ts("08:30"), "x", "y", "25-34", "female"), (D, "b", ts("08:30"), "y", "x", "25-34", "male")],
        TRIPS)
    assert_df_equality(trips, expected, ignore_row_order=True, ignore_nullable=True)


def test_anonymized_trips_carry_the_daily_id_not_the_pseudonym(spark):
    key = bytes(range(32))
    trips = detect_trips(day(spark, "p1", ROUTINE), id_col="pid", stay_min_minutes=20, window_minutes=60)
    out = to_anonymized_trips(trips, hasher=BroadcastHmac.for_secret(spark, Secret(key)), id_col="pid")
    assert out.columns == ["date", "daily_id", "window_start", "origin_h3", "destination_h3", "age_band", "gender"]
    assert {r["daily_id"] for r in out.collect()} == {hmac.new(key, b"p1", hashlib.sha256).hexdigest()}


def test_locate_prefers_the_fix_over_the_cell_at_every_resolution(spark):
    lat, lng = 49.4521, 11.0767
    cells = spark.createDataFrame([("C1", h3.geo_to_h3(49.40, 11.00, 7), h3.geo_to_h3(49.40, 11.00, 9))],
                                  "cell_id string, cell_od_h3 string, cell_h3 string")
    events = spark.createDataFrame([("e1", "C1", None, None), ("e2", "C1", lat, lng), ("e3", "C9", None, None),
                                    ("e4", "C9", lat, lng)],
                                   "eid string, cell_id string, latitude double, longitude double")
    located = locate(events, cells_h3=cells, targets={"od_h3": ("cell_od_h3", 7), "h3_cell": ("cell_h3", 9)})
    assert located.columns == [*events.columns, "od_h3", "h3_cell"]
    out = {r["eid"]: (r["od_h3"], r["h3_cell"]) for r in located.collect()}
    assert out == {
        "e1": (h3.geo_to_h3(49.40, 11.00, 7), h3.geo_to_h3(49.40, 11.00, 9)),  # no fix: the cell's
        "e2": (h3.geo_to_h3(lat, lng, 7), h3.geo_to_h3(lat, lng, 9)),          # the fix wins
        "e3": (None, None),                                                    # unknown cell, no fix
        "e4": (h3.geo_to_h3(lat, lng, 7), h3.geo_to_h3(lat, lng, 9)),          # a fix needs no cell
    }


def test_od_flows_release_only_groups_of_k(spark):
    rows = [(D, f"p{i}", ts("08:00"), "x", "y", "25-34", "female") for i in range(4)]
    rows += [(D, "p0", ts("08:00"), "x", "y", "25-34", "female")]  # the same person twice counts once
    rows += [(D, f"q{i}", ts("08:00"), "y", "x", "25-34", "female") for i in range(3)]
    trips = spark.createDataFrame(rows, TRIPS).withColumnRenamed("pid", "daily_id")
    out = to_od_flows(count_od_trips(trips), k_min=4, h3_resolution=7)
    expected = spark.createDataFrame([(D, ts("08:00"), "x", "y", 7, "25-34", "female", 4)],
                                     "date date, window_start timestamp, origin_h3 string, destination_h3 string, "
                                     "h3_resolution int, age_band string, gender string, trips long")
    assert_df_equality(out, expected, ignore_nullable=True)


@pytest.mark.parametrize("res", [0, 5, 7, 8])
def test_h3_parent_matches_the_h3_library(spark, res):
    cells = [h3.geo_to_h3(49.45 + i * 0.01, 11.07 + i * 0.013, 8) for i in range(5)]
    out = spark.createDataFrame([(c,) for c in cells], "c string").select(
        "c", h3_parent(F.col("c"), resolution=res).alias("p"))
    assert {r["c"]: r["p"] for r in out.collect()} == {c: h3.h3_to_parent(c, res) for c in cells}


def test_h3_parent_of_a_coarser_cell_is_null(spark):
    out = spark.createDataFrame([(h3.geo_to_h3(49.45, 11.07, 5),)], "c string").select(
        h3_parent(F.col("c"), resolution=7).alias("p"))
    assert out.first()["p"] is None


def test_presence_counts_people_and_scales_by_market_share(spark):
    c8 = h3.geo_to_h3(49.45, 11.07, 8)
    rows = [(D, f"p{i}", ts("08:00"), c8, "25-34", "female") for i in range(5)]
    rows += [(D, f"p{i}", ts("08:00"), c8, "25-34", "female") for i in range(2)]  # duplicates count once
    rows += [(D, f"q{i}", ts("09:00"), c8, "65+", "male") for i in range(3)]   # below k
    anonymized = spark.createDataFrame(rows, EVENTS).withColumnRenamed("pid", "daily_id").withColumnRenamed(
        "event_ts", "window_start").withColumnRenamed("od_h3", "h3_cell")
    out = to_presence(count_presence(anonymized), k_min=4, h3_resolution=8, market_share=0.25)
    expected = spark.createDataFrame([(D, ts("08:00"), c8, 8, 5, 20.0)],
                                     "date date, window_start timestamp, h3_cell string, h3_resolution int, "
                                     "visitors long, population_estimate double")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_region_factors_use_the_finest_enclosing_region(spark):
    a8, b8, c8 = (h3.geo_to_h3(49.45, 11.07, 8), h3.geo_to_h3(49.30, 10.80, 8), h3.geo_to_h3(48.0, 9.0, 8))
    factors = spark.createDataFrame(
        [(h3.h3_to_parent(a8, 5), 2.0), (h3.h3_to_parent(a8, 7), 3.0), (h3.h3_to_parent(b8, 6), 5.0)],
        "h3_cell string, expansion_factor double")
    cells = spark.createDataFrame([(a8, 10), (b8, 10), (c8, 10)], "h3_cell string, visitors int")
    out = with_expansion_factor(cells, market_share=0.5, h3_resolution=8, region_factors=factors)
    assert {r["h3_cell"]: r["expansion_factor"] for r in out.collect()} == {a8: 3.0, b8: 5.0, c8: 2.0}


def test_invalid_region_factors_are_named(spark):
    ok = h3.geo_to_h3(49.45, 11.07, 6)
    factors = spark.createDataFrame(
        [(ok, 2.0), ("zz", 2.0), (h3.geo_to_h3(49.45, 11.07, 9), 2.0), (h3.geo_to_h3(48.0, 9.0, 6), 0.0),
         (h3.geo_to_h3(47.0, 9.0, 6), 1.5), (h3.geo_to_h3(47.0, 9.0, 6), 1.6)],
        "h3_cell string, expansion_factor double")
    reasons = sorted(r["reason"] for r in invalid_region_factors(factors, h3_resolution=8).collect())
    assert reasons == ["duplicate_h3_cell", "duplicate_h3_cell", "finer_than_h3_resolution", "malformed_h3_cell",
                       "non_positive_factor"]


def _shuffles(df) -> int:
    """Shuffles the planner adds to ``df``'s physical plan to group rows (not a requested repartition)."""
    plan = df._jdf.queryExecution().executedPlan().toString()
    return sum("Exchange hashpartitioning" in line and "ENSURE_REQUIREMENTS" in line for line in plan.splitlines())


def test_stage2_shuffles_the_events_once_for_both_outputs(spark):
    """Both stage-2 outputs read the events partitioned by person and shuffle nothing more."""
    key = BroadcastHmac.for_secret(spark, Secret(bytes(range(32))))
    located = (day(spark, "a", ROUTINE).unionByName(day(spark, "b", ROUTINE[:5]))
               .withColumnRenamed("pid", "pseudo_id").withColumn("h3_cell", F.col("od_h3")))

    def outputs(frame):
        anonymized = to_anonymized_events(frame, hasher=key, window_minutes=60, age_bands=BANDS)
        trips = detect_trips(frame, id_col="pseudo_id", stay_min_minutes=20, window_minutes=60)
        return anonymized, to_anonymized_trips(trips, hasher=key)

    assert all(_shuffles(out) >= 1 for out in outputs(located))  # the check can see a shuffle
    cached = persist_partitioned(by_person(located))
    try:
        anonymized, trips = outputs(cached)
        assert (_shuffles(anonymized), _shuffles(trips)) == (0, 0)
        # Same rows as without the partitioning.
        assert_df_equality(anonymized, outputs(located)[0], ignore_row_order=True, ignore_nullable=True)
        assert_df_equality(trips, outputs(located)[1], ignore_row_order=True, ignore_nullable=True)
    finally:
        cached.unpersist()


def test_counting_rows_of_anonymized_events_equals_counting_distinct_people_exhaustively(spark):
    """Footfall and presence count rows of ``anonymized_events`` (``people_in_unique_rows``).

    Every case of two people over two windows x two cells, 0-2 events in each (window,
    cell) slot, same or different demographics: 3^4 x 3^4 x 2 = 13,122 cases, each its
    own cells. Per case, the plain count over stage 2's output equals the distinct count.
    """
    import itertools

    key = BroadcastHmac.for_secret(spark, Secret(bytes(range(32))))
    slots = [(w, c) for w in ("08", "09") for c in ("x", "y")]
    patterns = list(itertools.product(range(3), repeat=len(slots)))  # events per slot
    rows = []
    for case, (pa, pb, same) in enumerate(itertools.product(patterns, patterns, (True, False))):
        for person, pattern, gender in (("a", pa, "female"), ("b", pb, "female" if same else "male")):
            for (hour, cell), n in zip(slots, pattern, strict=True):
                rows += [(D, f"{case}-{person}", ts(f"{hour}:{10 * i:02d}"), f"{case}-{cell}", "25-34", gender)
                         for i in range(n)]
    events = spark.createDataFrame(rows, EVENTS).withColumnRenamed("pid", "pseudo_id") \
        .withColumnRenamed("od_h3", "h3_cell")
    anonymized = to_anonymized_events(events, hasher=key, window_minutes=60, age_bands=BANDS).persist()
    try:
        for count in (count_visitors, count_presence):
            by_rows = count(anonymized, distinct=people_in_unique_rows)
            by_ids = count(anonymized, distinct=distinct_people)
            assert by_rows.count() > 13_000
            assert by_rows.exceptAll(by_ids).isEmpty() and by_ids.exceptAll(by_rows).isEmpty()
    finally:
        anonymized.unpersist()


def test_collapse_is_a_hash_aggregation_one_row_per_person_window_and_cell(spark):
    """Stage 2's collapse groups by small integer codes (no sort of every row), and keeps one
    row per (person, window, cell) even if a person's demographics disagreed within the day."""
    key = BroadcastHmac.for_secret(spark, Secret(bytes(range(32))))
    rows = [(D, "p", ts("08:05"), "x", "25-34", "female"), (D, "p", ts("08:40"), "x", "unknown", "male"),
            (D, "p", ts("09:10"), "x", "25-34", "female"), (D, "q", ts("08:15"), "x", "65+", "diverse")]
    events = spark.createDataFrame(rows, EVENTS).withColumnRenamed("pid", "pseudo_id") \
        .withColumnRenamed("od_h3", "h3_cell")
    out = to_anonymized_events(events, hasher=key, window_minutes=60, age_bands=BANDS)
    plan = out._jdf.queryExecution().executedPlan().toString()
    assert "SortAggregate" not in plan and "HashAggregate" in plan
    got = sorted((r["window_start"].hour, r["age_band"], r["gender"]) for r in out.collect())
    # p at 8:00 had two labels: the one first in the vocabulary is kept (bands before
    # unknown, female before male); one row either way.
    assert got == [(8, "25-34", "female"), (8, "65+", "diverse"), (9, "25-34", "female")]


def test_collapse_names_a_label_outside_the_vocabulary(spark):
    key = BroadcastHmac.for_secret(spark, Secret(bytes(range(32))))
    events = spark.createDataFrame([(D, "p", ts("08:05"), "x", "30-39", "female")], EVENTS) \
        .withColumnRenamed("pid", "pseudo_id").withColumnRenamed("od_h3", "h3_cell")
    with pytest.raises(Exception, match="age_band 30-39 is not one of 18-24") as raised:
        to_anonymized_events(events, hasher=key, window_minutes=60, age_bands=BANDS).collect()
    # The job's one error line is that message, not a guess about damaged tables.
    code, message = explain(raised.value)
    assert code == 1 and message.startswith("age_band 30-39 is not one of 18-24, 25-34"), message
    assert "\tat " not in message and "most recent failure" not in message, message  # no task stack frames
    nulls = events.withColumn("age_band", F.lit("25-34")).withColumn("gender", F.lit(None).cast("string"))
    with pytest.raises(Exception, match="gender null is not one of female, male, diverse, unknown"):
        to_anonymized_events(nulls, hasher=key, window_minutes=60, age_bands=BANDS).collect()
