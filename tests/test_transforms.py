"""Unit tests of the stage transforms on small hand-built frames."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import io
import itertools

import h3
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contract.schemas import CELLS, NETWORK_EVENTS, PRIVACY_PREFERENCES, SUBSCRIBERS
from mobility.secrets import Secret
from transforms.hashing import hmac_pads, hmac_sha256_hex, key_frame, with_key, without_key
from transforms.stage1 import (
    age_band,
    age_on,
    cells_valid_on,
    gender_label,
    gender_position,
    opted_out_msisdns,
    quarantine_reason,
    with_demographics,
)
from transforms.stage2 import points_to_h3, window_start, with_cell_h3
from transforms.stage3 import count_visitors, to_footfall

D = dt.date(2026, 10, 5)
EDGES = (18, 25, 35, 45, 55, 65)


def ts(hhmm: str, day: dt.date = D) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


# --- hashing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [bytes(range(16)), bytes(range(32)), bytes(range(64)), bytes(range(100))])
def test_hmac_equals_python_hmac(spark, key):
    msgs = ["4917012345678", "", "ü-unicode", "x" * 200, None]
    df = spark.createDataFrame([(m,) for m in msgs], "m string")
    out = (df.transform(with_key, keys=key_frame(spark, Secret(key)))
           .select("m", hmac_sha256_hex(F.col("m")).alias("h")).transform(without_key))
    expected = spark.createDataFrame(
        [(m, hmac.new(key, m.encode(), hashlib.sha256).hexdigest() if m is not None else None) for m in msgs],
        "m string, h string")
    assert_df_equality(out, expected, ignore_row_order=True)


def test_key_appears_in_no_plan(spark):
    key = bytes.fromhex("c0ffee00" * 8)
    df = spark.createDataFrame([("4917012345678",)], "m string")
    out = df.transform(with_key, keys=key_frame(spark, Secret(key))).select(hmac_sha256_hex(F.col("m")).alias("h"))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        out.explain("extended")
        out.explain("formatted")
    plan = buf.getvalue().lower()
    ipad, opad = hmac_pads(key)
    assert "sha2" in plan  # the plan is really there
    for secret in (key.hex(), ipad.hex()[:24], opad.hex()[:24], "c0ffee00"):
        assert secret not in plan


# --- stage 1 -------------------------------------------------------------------------------------

def test_quarantine_reasons_first_match_wins(spark):
    rows = [
        ("a", "4917012345678", ts("10:00"), "voice", True, None, None, None),
        ("b", None, ts("10:00"), "voice", True, None, None, "missing_msisdn"),
        ("c", " ", ts("10:00"), "voice", True, None, None, "missing_msisdn"),
        ("d", "+49 170-123", ts("10:00"), "voice", True, None, None, "malformed_msisdn"),
        ("e", "017012345678", ts("10:00"), "voice", True, None, None, "malformed_msisdn"),
        ("f", "4917012345678", ts("10:00"), "VOICE", True, None, None, "unknown_event_type"),
        ("g", "4917012345678", ts("10:00"), None, True, None, None, "unknown_event_type"),
        ("h", "4917012345678", None, "sms", True, None, None, "missing_event_ts"),
        ("i", "4917012345678", ts("23:59", D - dt.timedelta(days=1)), "sms", True, None, None,
         "event_ts_outside_date"),
        ("j", "4917012345678", ts("00:00", D + dt.timedelta(days=1)), "sms", True, None, None,
         "event_ts_outside_date"),
        ("k", "4917012345678", ts("10:00"), "data", False, None, None, "unknown_cell"),
        ("l", "4917012345678", ts("10:00"), "data", True, 95.0, 11.0, "invalid_position"),
        ("m", "4917012345678", ts("10:00"), "data", True, 49.0, None, "invalid_position"),
        ("n", "4917012345678", ts("10:00"), "data", True, 49.0, 11.0, None),
        ("o", "malformed", None, "mms", False, None, None, "malformed_msisdn"),
    ]
    schema = ("id string, msisdn string, event_ts timestamp, event_type string, known boolean, "
              "latitude double, longitude double, expected string")
    df = spark.createDataFrame(rows, schema)
    out = df.select("id", quarantine_reason(date=D, cell_known=F.col("known")).alias("reason"))
    assert_df_equality(out, df.select("id", F.col("expected").alias("reason")), ignore_row_order=True)


def test_age_bands_from_edges(spark):
    df = spark.createDataFrame([(a,) for a in (None, 17, 18, 24, 25, 44, 64, 65, 101)], "age int")
    out = df.select("age", age_band(F.col("age"), edges=EDGES).alias("band"))
    expected = spark.createDataFrame(
        [(None, "unknown"), (17, "unknown"), (18, "18-24"), (24, "18-24"), (25, "25-34"), (44, "35-44"),
         (64, "55-64"), (65, "65+"), (101, "65+")], "age int, band string")
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_age_on_the_event_date(spark):
    df = spark.createDataFrame(
        [(dt.date(2008, 10, 5),), (dt.date(2008, 10, 6),), (None,), (dt.date(2030, 1, 1),)], "b date")
    ages = [r[0] for r in df.select(age_on(F.col("b"), date=D)).collect()]
    assert ages == [18, 17, None, None]


def test_gender_labels(spark):
    df = spark.createDataFrame([(g,) for g in ("F", "M", "D", "m ", None, "X")], "g string")
    labels = [r[0] for r in df.select(gender_label(gender_position(F.col("g")))).collect()]
    assert labels == ["female", "male", "diverse", "male", "unknown", "unknown"]


def test_latest_preference_as_of_the_run(spark):
    prefs = spark.createDataFrame([
        ("4917000000001", True, False, ts("08:00", dt.date(2026, 1, 1))),   # opted out ...
        ("4917000000001", False, False, ts("08:00", dt.date(2026, 2, 1))),  # ... and back in: kept
        ("4917000000002", False, False, ts("08:00", dt.date(2026, 1, 1))),
        ("4917000000002", True, False, ts("08:00", dt.date(2026, 11, 1))),  # opted out after the event date: removed
        ("4917000000003", True, False, ts("08:00", dt.date(2027, 1, 1))),   # recorded after the run: not yet in force
    ], PRIVACY_PREFERENCES)
    out = opted_out_msisdns(prefs, as_of=dt.datetime(2026, 11, 29, 12))
    assert [r.msisdn for r in out.collect()] == ["4917000000002"]


def test_cells_valid_on_the_date(spark):
    cells = spark.createDataFrame([
        ("A", 49.0, 11.0, "4G", dt.date(2020, 1, 1), D),           # ended the day before: [from, to)
        ("A", 49.1, 11.1, "5G", D, None),                            # re-planned, valid from D
        ("B", 49.2, 11.2, "4G", dt.date(2020, 1, 1), None),
        ("C", 49.3, 11.3, "4G", D + dt.timedelta(days=1), None),     # not yet built
        ("E", None, None, "4G", dt.date(2020, 1, 1), None),          # no position: cannot place events
    ], CELLS)
    out = cells_valid_on(cells, date=D).select("cell_id", "latitude", "radio")
    expected = spark.createDataFrame([("A", 49.1, "5G"), ("B", 49.2, "4G")],
                                     "cell_id string, latitude double, radio string")
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_demographics_are_coarsened_and_crm_gaps_are_unknown(spark):
    events = spark.createDataFrame([("4917000000001",), ("4917000000002",), ("4917000000009",)], "msisdn string")
    subs = spark.createDataFrame([
        ("4917000000001", dt.date(1990, 6, 1), "F", "consumer"),
        ("4917000000002", None, None, "business"),
    ], SUBSCRIBERS)
    out = with_demographics(events, subscribers=subs, date=D, age_band_edges=EDGES)
    assert "birth_date" not in out.columns
    got = {r.msisdn: (r.age_band, r.gender, r._business) for r in out.collect()}
    assert got == {"4917000000001": ("35-44", "female", False), "4917000000002": ("unknown", "unknown", True),
                   "4917000000009": ("unknown", "unknown", False)}


def test_crm_rows_of_one_person_merge_on_the_safe_side_in_every_case(spark):
    """Every pair (and every single) of CRM rows that normalize to one number, over every birth date kind
    (adult, minor, unknown), gender code (agreeing or not, unknown, missing) and customer type: the merged
    person has the youngest known age, a gender only if all rows agree, and is a business line if any row says
    so. 36 single rows and 1,296 ordered pairs, each its own person in one frame."""
    import itertools

    births = [dt.date(1990, 6, 1), dt.date(2010, 1, 1), None]           # 36, 16, unknown on D
    genders = ["F", "m ", "X", None]
    types = ["business", "consumer", None]
    kinds = list(itertools.product(births, genders, types))
    cases = [(k,) for k in kinds] + list(itertools.product(kinds, kinds))
    spellings = ("+49 170 {}", "0049170{}")
    rows, events = [], []
    for i, case in enumerate(cases):
        number = f"{i:08d}"
        events.append((f"49170{number}",))
        rows += [(spellings[j % 2].format(number), *kind) for j, kind in enumerate(case)]
    out = with_demographics(spark.createDataFrame(events, "msisdn string"),
                            subscribers=spark.createDataFrame(rows, SUBSCRIBERS), date=D, age_band_edges=EDGES)
    got = {r.msisdn: (r._age, r.age_band, r.gender, r._business) for r in out.collect()}

    label = {"F": "female", "m ": "male"}
    for i, case in enumerate(cases):
        ages = [{dt.date(1990, 6, 1): 36, dt.date(2010, 1, 1): 16}[b] for b, _, _ in case if b is not None]
        band = "unknown" if not ages or min(ages) < 18 else "35-44"
        labels = {label.get(g, "unknown") for _, g, _ in case}
        gender = labels.pop() if len(labels) == 1 else "unknown"
        expected = (min(ages, default=None), band, gender, any(t == "business" for _, _, t in case))
        assert got[f"49170{i:08d}"] == expected, case


# --- stage 2 -------------------------------------------------------------------------------------

def test_window_start_alignment(spark):
    df = spark.createDataFrame([(ts("00:00"),), (ts("10:29:59"),), (ts("10:30"),), (ts("23:59:59"),)], "t timestamp")
    got = [r[0] for r in df.select(window_start(F.col("t"), minutes=30)).collect()]
    assert got == [ts("00:00"), ts("10:00"), ts("10:30"), ts("23:30")]


def test_h3_of_cells_and_points_agree_with_h3(spark, tmp_path):
    import h3

    pts = [(49.4521, 11.0767), (49.5, 11.1), (48.0, 10.0)]
    # Read back from Parquet: the UDF paths must work over a real file scan (SPARK-58241).
    spark.createDataFrame([(f"c{i}", la, lo) for i, (la, lo) in enumerate(pts)] + [("x", None, None)],
                          "cell_id string, latitude double, longitude double").write.parquet(str(tmp_path / "p"))
    df = spark.read.parquet(str(tmp_path / "p"))
    out = df.transform(with_cell_h3, resolution=8).withColumn(
        "point_h3", points_to_h3(F.col("latitude"), F.col("longitude"), resolution=8))
    got = {r.cell_id: (r.cell_h3, r.point_h3) for r in out.collect()}
    for i, (la, lo) in enumerate(pts):
        assert got[f"c{i}"] == (h3.geo_to_h3(la, lo, 8), h3.geo_to_h3(la, lo, 8))
        assert len(got[f"c{i}"][0]) == 15
    assert got["x"] == (None, None)


# --- stage 3 -------------------------------------------------------------------------------------

def _h3_rule(cell: str | None, resolution: int) -> bool:
    """The contract's H3 check digit by digit, in Python: the reference for ``is_h3_at``."""
    import re

    if cell is None or not re.fullmatch(r"8[0-9a-f]{14}", cell):
        return False
    x = int(cell, 16)
    if (x >> 52) & 15 != resolution or (x >> 45) & 127 >= 122:
        return False
    digits = [(x >> (3 * (15 - d))) & 7 for d in range(1, 16)]
    return all(v < 7 for v in digits[:resolution]) and all(v == 7 for v in digits[resolution:])


def test_h3_check_is_the_digit_rule_for_every_resolution_digit_and_value(spark):
    """``is_h3_at`` checks the digits with masks; it must equal the digit-by-digit rule for every
    resolution checked against, every cell resolution, and every value of every pair of adjacent
    digits (both are conjunctions over digits, and the masks shift by at most two bits, so a digit
    can only leak into its neighbour), base cells on both sides of 122, other modes and malformed
    strings."""
    from contract.columns import is_h3_at

    def cell(res: int, digits: list[int], base: int = 20, mode: int = 1) -> str:
        x = (mode << 59) | (res << 52) | (base << 45)
        for d, v in enumerate(digits, start=1):
            x |= v << (3 * (15 - d))
        return f"{x:015x}"

    cells = set()
    for res in range(16):
        valid = [3, 6] * 7 + [3]
        valid = valid[:res] + [7] * (15 - res)
        for d in range(14):
            for v, w in itertools.product(range(8), repeat=2):
                cells.add(cell(res, [*valid[:d], v, w, *valid[d + 2:]]))
        for base in (0, 121, 122, 127):
            cells.add(cell(res, valid, base=base))
        cells.add(cell(res, valid, mode=2))
    cells |= {h3.geo_to_h3(49.4521, 11.0767, r) for r in range(16)}
    malformed = {None, "", "8", "881FABAB53FFFFF", "0881fabab53ffff", "881fabab53fffff0", "881fabab53ffffg"}
    rows = sorted(cells, key=str) + sorted(malformed, key=str)
    df = spark.createDataFrame([(c,) for c in rows], "c string")
    got = df.select("c", *[is_h3_at(F.col("c"), r).alias(f"r{r}") for r in range(16)]).collect()
    assert len(got) == len(rows) > 12000
    mismatches = [(r["c"], res) for r in got for res in range(16) if r[f"r{res}"] != _h3_rule(r["c"], res)]
    assert mismatches == []
    assert all(_h3_rule(h3.geo_to_h3(49.4521, 11.0767, r), r) for r in range(16))


def test_footfall_counts_distinct_people_and_suppresses_below_k(spark):
    w = ts("10:00")
    rows = [(D, f"p{i}", w, "h1", "25-34", "female") for i in range(5)]
    rows += [(D, "p0", w, "h1", "25-34", "female")]  # the same person twice counts once
    rows += [(D, f"q{i}", w, "h2", "25-34", "female") for i in range(4)]
    df = spark.createDataFrame(rows, "date date, daily_id string, window_start timestamp, h3_cell string, "
                                     "age_band string, gender string")
    out = to_footfall(count_visitors(df), k_min=5, h3_resolution=8)
    expected = spark.createDataFrame([(D, w, "h1", 8, "25-34", "female", 5)],
                                     "date date, window_start timestamp, h3_cell string, h3_resolution int, "
                                     "age_band string, gender string, visitors long")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_raw_schemas_are_the_contract():
    assert NETWORK_EVENTS.simpleString() == (
        "struct<msisdn:string,imsi:string,imei:string,event_ts:timestamp,event_type:string,"
        "cell_id:string,latitude:double,longitude:double>")
    assert isinstance(SUBSCRIBERS["birth_date"].dataType, T.DateType)


def _disk_bytes_of_cache(spark, cached) -> int:
    """Bytes on disk of ``cached``'s blocks (Spark's storage info), once it is materialized."""
    try:
        assert cached.count() == 20_000
        return sum(info.diskSize() for info in spark.sparkContext._jsc.sc().getRDDStorageInfo())
    finally:
        cached.unpersist(blocking=True)


def test_disk_caches_are_stored_uncompressed_and_the_setting_comes_back(spark):
    """``persist_on_disk`` (stages 1 and 2's caches): the frame is stored uncompressed although first
    computed after the call (Spark fixes the choice at ``persist``); the session's setting comes back,
    also after an error, and frames persisted afterwards are compressed again."""
    from pyspark import StorageLevel

    from mobility.spark import CACHE_COMPRESSED, persist_on_disk, session_conf

    before = spark.conf.get(CACHE_COMPRESSED)
    frame = spark.range(20_000).select("id", F.lit("x" * 64).alias("same"))  # compresses well
    compressed = _disk_bytes_of_cache(spark, frame.persist(StorageLevel.DISK_ONLY))
    on_disk = persist_on_disk(frame)
    assert spark.conf.get(CACHE_COMPRESSED) == before
    assert on_disk.storageLevel == StorageLevel.DISK_ONLY
    assert _disk_bytes_of_cache(spark, on_disk) > 5 * compressed > 0
    with pytest.raises(RuntimeError), session_conf(spark, {CACHE_COMPRESSED: "false"}):
        assert spark.conf.get(CACHE_COMPRESSED) == "false"
        raise RuntimeError("a failed stage")
    assert spark.conf.get(CACHE_COMPRESSED) == before
    assert _disk_bytes_of_cache(spark, frame.persist(StorageLevel.DISK_ONLY)) == compressed
