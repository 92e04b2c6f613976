"""The synthetic lake: contract schemas, determinism, bad-row shares, realistic routines."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from contract.schemas import RAW_TABLES
from jobs.generate_lake import generate_lake
from mobility.io import read_raw
from transforms.stage1 import cells_valid_on, latest_preferences, quarantine_reason

START = dt.date(2026, 10, 5)
SIZES = {"n_subscribers": 3000, "n_events": 30000, "n_cells": 300}
BAD_SHARE = 0.01


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("gen") / "raw")
    counts = generate_lake(spark, raw_root=root, start=START, days=2, seed=7, bad_share=BAD_SHARE, **SIZES)
    return root, counts


def test_files_match_the_contract_exactly(spark, lake):
    root, counts = lake
    for table, schema in RAW_TABLES.items():
        df = spark.read.parquet(f"{root}/{table}")
        cols = [f for f in df.schema.fields if f.name != "event_date"]
        assert [(f.name, f.dataType) for f in cols] == [(f.name, f.dataType) for f in schema.fields], table
    parts = spark.read.parquet(f"{root}/network_events").select("event_date").distinct().collect()
    assert sorted(r[0] for r in parts) == [START, START + dt.timedelta(days=1)]
    assert counts["network_events"] == 2 * SIZES["n_events"]
    assert counts["subscribers"] == SIZES["n_subscribers"]


def test_same_seed_same_data_other_seed_other_data(spark, lake, tmp_path):
    root, _ = lake
    again = str(tmp_path / "again")
    other = str(tmp_path / "other")
    generate_lake(spark, raw_root=again, start=START, days=2, seed=7, bad_share=BAD_SHARE, **SIZES)
    generate_lake(spark, raw_root=other, start=START, days=1, seed=8, bad_share=BAD_SHARE, **SIZES)
    for table in RAW_TABLES:
        date = START.isoformat() if table == "network_events" else None
        a, b = read_raw(spark, root, table, date), read_raw(spark, again, table, date)
        assert a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0, table
    ev = read_raw(spark, root, "network_events", START.isoformat())
    assert ev.exceptAll(read_raw(spark, other, "network_events", START.isoformat())).count() > 0


def test_each_bad_row_class_in_its_share(spark, lake):
    root, _ = lake
    events = read_raw(spark, root, "network_events", START.isoformat())
    known = cells_valid_on(read_raw(spark, root, "cells"), date=START).select("cell_id", F.lit(True).alias("k"))
    reasons = {
        r["reason"]: r["count"]
        for r in events.join(known, on="cell_id", how="left")
        .select(quarantine_reason(date=START, cell_known=F.coalesce("k", F.lit(False))).alias("reason"))
        .groupBy("reason").count().collect()
    }
    total = SIZES["n_events"]
    for reason in ("missing_msisdn", "malformed_msisdn", "unknown_cell", "event_ts_outside_date",
                   "unknown_event_type"):
        share = reasons.get(reason, 0) / total
        assert 0.6 * BAD_SHARE <= share <= 1.4 * BAD_SHARE, (reason, share)
    assert reasons.get("invalid_position", 0) == 0
    assert reasons[None] / total > 0.9


def test_population_mix(spark, lake):
    root, _ = lake
    subs = read_raw(spark, root, "subscribers")
    n = subs.count()
    age = F.floor(F.months_between(F.lit(START), F.col("birth_date")) / 12)
    m = subs.agg(
        F.avg((age < 18).cast("int")).alias("minors"),
        F.avg((F.col("customer_type") == "business").cast("int")).alias("business"),
        F.avg(F.col("birth_date").isNull().cast("int")).alias("no_birth"),
        F.avg(F.col("gender").isNull().cast("int")).alias("no_gender"),
        F.avg((F.col("gender") == "F").cast("int")).alias("female"),
        F.countDistinct("msisdn").alias("unique"),
    ).first()
    assert 0.03 < m.minors < 0.07 and 0.07 < m.business < 0.13
    assert 0.005 < m.no_birth < 0.04 and 0.003 < m.no_gender < 0.04 and 0.44 < m.female < 0.54
    assert m.unique == n
    assert subs.filter(~F.col("msisdn").rlike(r"^49[0-9]{10}$")).count() == 0

    prefs = read_raw(spark, root, "privacy_preferences")
    during = latest_preferences(prefs, as_of=dt.datetime.combine(START, dt.time(12)))
    later = latest_preferences(prefs, as_of=dt.datetime(2030, 1, 1))
    out_during = during.filter("analytics_opt_out").count() / n
    out_later = later.filter("analytics_opt_out").count() / n
    assert 0.015 < out_during < 0.035 < out_later < 0.045 or 0.015 < out_during < out_later < 0.045
    assert out_later > out_during  # some opted out only after the generated dates
    opted_back = prefs.groupBy("msisdn").agg(F.collect_set("analytics_opt_out").alias("s")).filter(F.size("s") == 2)
    assert opted_back.count() > 0  # some changed their mind
    # Location offers: ~12 % opted in before, ~3 % during the dates, a tenth of the early ones withdrew.
    in_later = later.filter("location_offers_opt_in").count() / n
    in_before = latest_preferences(prefs, as_of=dt.datetime.combine(START, dt.time())).filter(
        "location_offers_opt_in").count() / n
    assert 0.08 < in_before < 0.16 and 0.09 < in_later < 0.18 and in_later != in_before
    changed = prefs.filter(F.to_date("updated_at").between(START, START + dt.timedelta(days=1)))
    assert changed.filter("location_offers_opt_in").count() > 0  # opt-ins during the dates
    assert changed.filter("NOT location_offers_opt_in AND NOT analytics_opt_out").count() > 0  # withdrawals


def test_cell_plan_is_denser_in_the_centre_and_replanned_mid_period(spark, lake):
    root, _ = lake
    cells = read_raw(spark, root, "cells")
    assert cells.select("cell_id").distinct().count() == SIZES["n_cells"]
    assert set(r[0] for r in cells.select("radio").distinct().collect()) == {"2G", "3G", "4G", "5G"}
    replanned = cells.groupBy("cell_id").count().filter("count = 2")
    assert replanned.count() > 0
    # Old record ends where the new begins (half-open ranges, no overlap, no gap).
    pairs = cells.join(replanned.select("cell_id"), "cell_id").groupBy("cell_id").agg(
        F.min("valid_to").alias("end_old"), F.max("valid_from").alias("start_new"))
    assert pairs.filter(F.col("end_old") != F.col("start_new")).count() == 0
    dist = F.sqrt(F.pow(F.col("latitude") - 49.4521, 2) + F.pow((F.col("longitude") - 11.0767) * 0.65, 2)) * 111
    d = cells.select(dist.alias("km"))
    inner, outer = d.filter("km < 3").count(), d.filter("km >= 3 and km < 6").count()
    assert inner > outer  # the inner disc (9x smaller area... 1/3 of the ring) holds more cells


def test_routines_home_at_night_elsewhere_by_day(spark, lake):
    root, _ = lake
    ev = read_raw(spark, root, "network_events", START.isoformat()).filter(F.col("msisdn").rlike(r"^49\d{10}$"))
    hour = F.hour("event_ts")
    night = ev.filter((hour < 5) & (F.to_date("event_ts") == F.lit(START)))
    per_cell = night.groupBy("msisdn", "cell_id").count()
    top = per_cell.withColumn("rank", F.row_number().over(Window.partitionBy("msisdn").orderBy(F.desc("count"))))
    home = top.filter("rank = 1").select("msisdn", F.col("cell_id").alias("home"))
    share_at_home = night.join(home, "msisdn").agg(F.avg((F.col("cell_id") == F.col("home")).cast("int"))).first()[0]
    assert share_at_home > 0.9
    day = ev.filter((hour >= 10) & (hour < 15)).join(home, "msisdn")
    day_at_home = day.agg(F.avg((F.col("cell_id") == F.col("home")).cast("int"))).first()[0]
    assert day_at_home < 0.5  # most people are at work, school or shops by day
    fix_share = ev.agg(F.avg(F.col("latitude").isNotNull().cast("int"))).first()[0]
    assert 0.10 < fix_share < 0.20
    types = {r[0] for r in ev.select("event_type").distinct().collect()}
    assert {"voice", "sms", "data", "handover", "location_update"} <= types
