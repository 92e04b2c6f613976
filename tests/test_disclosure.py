"""Secondary suppression and the privacy audit: no small group visible or derivable by subtraction."""

from __future__ import annotations

import datetime as dt
import random
import secrets as pysecrets

import h3
import pytest
from pyspark.sql import functions as F

from contract.errors import ValidationError
from mobility.config import load_config
from mobility.io import read_date, table_path, write_date
from mobility.runner import Context
from mobility.secrets import Keys, Secret
from tests.conftest import write_conf
from transforms.disclosure import FINDINGS_SCHEMA, audit_release, mark_suppression
from transforms.stage3 import to_footfall

D = dt.date(2026, 10, 5)
W8 = dt.datetime(2026, 10, 5, 8, 0)
K = 15
GROUPS = "date date, window_start timestamp, h3_cell string, age_band string, gender string, visitors long"
PRESENCE = "date date, window_start timestamp, h3_cell string, visitors long"
AGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown")
GENDERS = ("female", "male", "diverse", "unknown")


def frames(spark, cells: dict[str, list[int]]):
    """Footfall groups and presence for cell-windows given as lists of group sizes (presence = their sum)."""
    groups, presence = [], []
    for cell, sizes in cells.items():
        combos = [(a, g) for a in AGES for g in GENDERS]
        for (age, gender), n in zip(combos, sizes, strict=False):
            groups.append((D, W8, cell, age, gender, n))
        presence.append((D, W8, cell, sum(sizes)))
    return spark.createDataFrame(groups, GROUPS), spark.createDataFrame(presence, PRESENCE)


def release(spark, cells: dict[str, list[int]], k: int = K):
    """Run the rule; return (footfall, presence, statuses as {cell: sorted [(visitors, status)]})."""
    groups, presence_counts = frames(spark, cells)
    marked = mark_suppression(groups, presence_counts, k_min=k)
    statuses: dict[str, list] = {}
    for r in marked.collect():
        statuses.setdefault(r["h3_cell"], []).append((r["visitors"], r["suppression"]))
    footfall = to_footfall(marked.filter(F.col("suppression").isNull()), k_min=k, h3_resolution=8)
    presence = presence_counts.filter(F.col("visitors") >= k).withColumn("h3_resolution", F.lit(8))
    return footfall, presence, {c: sorted(v, key=lambda x: (x[0], str(x[1]))) for c, v in statuses.items()}


def remainders(footfall, presence) -> dict[str, int]:
    sums = {r["h3_cell"]: r["s"] for r in footfall.groupBy("h3_cell").agg(F.sum("visitors").alias("s")).collect()}
    return {r["h3_cell"]: r["visitors"] - sums.get(r["h3_cell"], 0) for r in presence.collect()}


def test_single_suppressed_group_beside_released_siblings_is_not_derivable(spark):
    footfall, presence, status = release(spark, {"c": [20, 30, 3]})
    # 3 is below k; alone, presence 53 - (20 + 30) would reveal it. The smallest sibling (20) goes too.
    assert status["c"] == [(3, "primary"), (20, "secondary"), (30, None)]
    assert remainders(footfall, presence) == {"c": 23}
    assert [r["visitors"] for r in footfall.collect()] == [30]
    assert audit_release(footfall, presence, None, K).count() == 0


def test_suppressed_group_whose_complement_is_also_small(spark):
    # Two small groups (4 + 5 = 9 < k): their sum is derivable too, so one more group goes.
    footfall, presence, status = release(spark, {"c": [4, 5, 30, 40], "tiny": [4, 5]})
    assert status["c"] == [(4, "primary"), (5, "primary"), (30, "secondary"), (40, None)]
    assert remainders(footfall, presence) == {"c": 39}
    # A cell-window whose total is below k releases neither presence nor any footfall row.
    assert status["tiny"] == [(4, "primary"), (5, "primary")]
    assert presence.filter(F.col("h3_cell") == "tiny").count() == 0
    assert footfall.filter(F.col("h3_cell") == "tiny").count() == 0


def test_no_secondary_when_nothing_or_enough_is_suppressed(spark):
    footfall, presence, status = release(spark, {"full": [20, 30], "enough": [9, 8, 20]})
    assert status["full"] == [(20, None), (30, None)]            # R = 0
    assert status["enough"] == [(8, "primary"), (9, "primary"), (20, None)]  # R = 17 >= k
    assert remainders(footfall, presence) == {"full": 0, "enough": 17}


def test_ties_are_broken_deterministically(spark):
    _, _, status = release(spark, {"c": [2, 20, 20, 20]})
    assert [s for _, s in status["c"]].count("secondary") == 1


def reference_rule(sizes: list[int], k: int) -> list[int]:
    """Plain-Python rule: the released group sizes of one cell-window."""
    if sum(sizes) < k:
        return []
    released = sorted(s for s in sizes if s >= k)
    remainder = sum(sizes) - sum(released)
    while 0 < remainder < k:
        remainder += released.pop(0)
    return released


def test_random_cell_windows_match_the_reference_and_pass_the_audit(spark):
    rng = random.Random(7)
    cells = {f"c{i}": [rng.choice([1, 2, 5, 9, 14, 15, 16, 22, 40]) for _ in range(rng.randint(1, 6))]
             for i in range(40)}
    footfall, presence, _ = release(spark, cells)
    released: dict[str, list[int]] = {}
    for r in footfall.collect():
        released.setdefault(r["h3_cell"], []).append(r["visitors"])
    assert {c: sorted(v) for c, v in released.items()} == {
        c: reference_rule(s, K) for c, s in cells.items() if reference_rule(s, K)}
    assert all(r == 0 or r >= K for r in remainders(footfall, presence).values())
    assert footfall.filter(F.col("visitors") < K).count() == 0
    assert presence.filter(F.col("visitors") < K).count() == 0
    assert audit_release(footfall, presence, None, K).count() == 0


def test_audit_finds_a_crafted_leak_and_nothing_after_suppression(spark):
    groups, presence_counts = frames(spark, {"c": [20, 30, 3]})
    presence = presence_counts.withColumn("h3_resolution", F.lit(8))
    primary_only = to_footfall(groups, k_min=K, h3_resolution=8)
    findings = audit_release(primary_only, presence, None, K)
    assert [(f.name, f.dataType) for f in findings.schema] == [(f.name, f.dataType) for f in FINDINGS_SCHEMA]
    assert [(r["kind"], r["cell"], r["value"]) for r in findings.collect()] == [("derivable_remainder", "c", 3)]
    footfall, presence, _ = release(spark, {"c": [20, 30, 3]})
    assert audit_release(footfall, presence, None, K).count() == 0


def test_audit_finds_small_rows_mixed_resolutions_and_broken_sums(spark):
    footfall = spark.createDataFrame(
        [(D, W8, "a", 8, "25-34", "male", 14), (D, W8, "b", 8, "25-34", "male", 40),
         (D, W8, "c", 7, "65+", "male", 20)],
        "date date, window_start timestamp, h3_cell string, h3_resolution int, age_band string, gender string, "
        "visitors long")
    presence = spark.createDataFrame([(D, W8, "b", 8, 30, 100.0)],
                                     "date date, window_start timestamp, h3_cell string, h3_resolution int, "
                                     "visitors long, population_estimate double")
    od = spark.createDataFrame([(D, W8, "x", "y", 7, "25-34", "male", 3)],
                               "date date, window_start timestamp, origin_h3 string, destination_h3 string, "
                               "h3_resolution int, age_band string, gender string, trips long")
    found = sorted((r["kind"], r["cell"], r["value"]) for r in audit_release(footfall, presence, od, K).collect())
    assert found == [
        ("below_k:footfall", "a", 14),
        ("below_k:od_flows", "x>y", 3),
        ("multiple_resolutions:footfall", None, 2),
        ("negative_remainder", "b", -10),
        ("resolution_mismatch", None, 8),
    ]
    with pytest.raises(ValueError):
        audit_release(None, None, None, K)


# --- the jobs, end to end on a hand-built day ----------------------------------------------------

@pytest.mark.e2e
def test_anonymize_and_aggregate_publish_only_safe_rows(spark, tmp_path):
    """40 commuters home -> work, 3 stay-at-home people: trips, presence and footfall pass the audit."""
    from jobs import aggregate, anonymize

    cfg = load_config(write_conf(tmp_path))
    home, work = (49.4521, 11.0767), (49.50, 11.20)
    cells = spark.createDataFrame([("H", *home, "4G", dt.date(2020, 1, 1), None),
                                   ("W", *work, "4G", dt.date(2020, 1, 1), None)],
                                  "cell_id string, latitude double, longitude double, radio string, "
                                  "valid_from date, valid_to date")
    cells.write.parquet(f"{cfg.lake.raw}/cells")
    rows = []
    for i in range(43):
        gender = "female" if i % 2 else "male"
        age = "25-34" if i < 36 else "65+"   # 7 people 65+ -> a small group at home and at work
        plan = [("01:00", "H"), ("07:00", "H")] + ([("08:10", "W"), ("16:00", "W")] if i < 40 else [])
        rows += [(D, f"{i:064x}", dt.datetime.combine(D, dt.time.fromisoformat(t)), "data", c, None, None, age, gender)
                 for t, c in plan]
    events = spark.createDataFrame(rows, "date date, pseudo_id string, event_ts timestamp, event_type string, "
                                         "cell_id string, latitude double, longitude double, age_band string, "
                                         "gender string")
    events.write.format("delta").partitionBy("date").save(table_path(cfg.lake, "pseudonymized_events"))
    # The data-quality suites inside the publisher have their own tests; here only the rule and the audit count.
    def publish_unchecked(spark_, cfg_, outputs, *, date, **_):
        for table, df, _ in outputs:
            write_date(df, table_path(cfg_.lake, table), date=date)
        return "unchecked"

    ctx = Context(spark=spark, cfg=cfg, date=D, run_ts=dt.datetime(2026, 10, 6),
                  keys=Keys(daily=Secret(pysecrets.token_bytes(32))), publisher=publish_unchecked)
    anonymize.stage(ctx)
    aggregate.stage(ctx)

    def read(t):
        return read_date(spark, table_path(cfg.lake, t), date=D, what=t)

    trips = read("anonymized_trips").collect()
    assert len(trips) == 40 and {(r["origin_h3"], r["destination_h3"]) for r in trips} == {
        (h3.geo_to_h3(*home, 7), h3.geo_to_h3(*work, 7))}
    od = read("od_flows").collect()
    assert sorted((r["gender"], r["trips"], r["h3_resolution"]) for r in od) == [("female", 18, 7), ("male", 18, 7)]
    footfall, presence = read("footfall"), read("presence")
    assert footfall.filter(F.col("visitors") < K).count() == 0 and presence.filter(F.col("visitors") < K).count() == 0
    assert audit_release(footfall, presence, read("od_flows"), K).count() == 0
    s = ctx.summary["aggregate"]
    assert s["audit_findings"] == 0
    assert s["footfall_suppressed_below_k"] > 0 and s["footfall_suppressed_secondary"] > 0
    # The summary's counts equal the groups counted independently from the curated rows.
    anon = read("anonymized_events")
    groups = anon.groupBy("window_start", "h3_cell", "age_band", "gender").agg(
        F.count_distinct("daily_id").alias("n")).collect()
    assert s["footfall_groups"] == len(groups)
    assert s["footfall_suppressed_below_k"] == sum(1 for g in groups if g["n"] < K)
    assert s["footfall_released"] == footfall.count() == len(groups) - s["footfall_suppressed_below_k"] - s[
        "footfall_suppressed_secondary"]
    # A leak planted in the rule (secondary suppression switched off) is caught before anything is published.
    def leaky(g, p, k_min):
        return mark_suppression(g, p, k_min=k_min).withColumn(
            "suppression", F.when(F.col("suppression") == "secondary", F.lit(None)).otherwise(F.col("suppression")))

    before = sorted(read("footfall").collect())
    with pytest.raises(ValidationError, match="derivable_remainder"):
        aggregate.stage(ctx, suppress=leaky)
    assert sorted(read("footfall").collect()) == before
