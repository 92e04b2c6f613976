"""Location offers (``jobs.offers``) on a hand-built lake whose audience was worked out by hand (k_min = 10).

Campaign A: 300 m around a store, 10:00-20:00, once a day, everyone. Campaign B: the same
fence, twice a day, people aged 35-44 only. Campaign C: one H3 cell (resolution 9) around
the FAR site, 10:00-10:35, aged 45-54. Everyone below is a consumer with an opt-in since
January unless said otherwise; ``IN`` is a radio cell at the store.

====  ==========================================  ============================  ======================
who   what                                        events (UTC)                  expected
====  ==========================================  ============================  ======================
G1    12 women 25-34 (one with MSISDNs written    10:30 cell IN                 A: notified (report
      "+49 ..."/"0049..." in events/preferences)                                group of 12)
20    man 35-44, own fix 299 m from the store     11:10 (cell IN)               A, B: notified
21    man 35-44, own fix 301 m from the store     11:10 (cell IN)               not a candidate
22    opt-in at 12:00 on the day                  11:00                         consent too late
23    opt-in at 12:00 on the day                  11:00, 13:00                  notified at 13:00
24    withdraws at 12:00 on the day               11:30, 14:00                  notified at 11:30
25    withdrew at 09:00 on the day                11:00                         withdrawn
26    no preference record                        11:00                         no consent
27    only a record saying no                     11:00                         no consent
28    girl of 16                                  11:00                         minor (A only)
29    business line                               11:00                         business
30    four events in three windows                10:05 10:40 11:20 12:15       A: 10:05 (2 capped);
                                                                                B: 10:05, 11:20
31    outside the daily window                    09:59, 20:30                  not a candidate
32    analytics opt-out as well                   11:00                         notified, not counted
                                                                                in the report
33    at the FAR cell                             11:00                         not a candidate
40    woman 45-54 at the FAR cell                 10:20                         C: notified
41    woman 45-54, own fix in C's H3 cell         10:25 (cell IN)               C: notified (not A:
                                                                                her fix is far away)
42    woman 45-54 at cell FAR, own fix elsewhere  10:25                         not a candidate
====  ==========================================  ============================  ======================
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import h3
import pytest
from pyspark.sql import functions as F

from contract.errors import ValidationError
from contract.schemas import CAMPAIGNS, CELLS, NETWORK_EVENTS, PRIVACY_PREFERENCES, SUBSCRIBERS
from expectations import offer_audience
from expectations.common import SuiteParams
from jobs import offers
from mobility.config import load_config
from mobility.io import table_path
from tests.conftest import write_conf
from transforms.offers import check_campaigns, invalid_campaigns

D = dt.date(2026, 10, 5)
K = 10
STORE = (49.4539, 11.0775)
FAR = (49.4700, 11.0500)
ELSEWHERE = (49.4300, 11.1200)
R_EARTH = 6_371_008.8


def haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Independent of the Spark implementation: plain Python, metres."""
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R_EARTH * math.asin(math.sqrt(h))


def east_of(p: tuple[float, float], metres: float) -> tuple[float, float]:
    return p[0], p[1] + math.degrees(metres / (R_EARTH * math.cos(math.radians(p[0]))))


FIX_299, FIX_301 = east_of(STORE, 299.0), east_of(STORE, 301.0)
FENCE_C = h3.geo_to_h3(*FAR, 9)
FIX_C = (FAR[0] + 0.0001, FAR[1] + 0.0001)


def m(n: int) -> str:
    return f"4917000000{n:02d}"


def at(hhmm: str, day: dt.date = D) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


G1 = list(range(1, 13))
JAN = dt.datetime(2026, 1, 1, 8, 0)
F25, M41, F16, F48 = dt.date(1995, 3, 1), dt.date(1985, 3, 1), dt.date(2010, 3, 1), dt.date(1978, 3, 1)
PEOPLE = {**{n: (F25, "F", "consumer") for n in G1},
          **{n: (M41, "M", "consumer") for n in range(20, 34)},
          28: (F16, "F", "consumer"), 29: (M41, "M", "business"),
          40: (F48, "F", "consumer"), 41: (F48, "F", "consumer"), 42: (F48, "F", "consumer")}
# (msisdn as written, analytics_opt_out, location_offers_opt_in, updated_at)
PREFS = [(m(n), False, True, JAN) for n in [*G1[1:], 20, 21, 24, 25, 28, 29, 30, 31, 33, 40, 41, 42]] + [
    ("0049" + m(1)[2:], False, True, JAN),      # G1's first, written with a 00 prefix
    (m(22), False, True, at("12:00")), (m(23), False, True, at("12:00")),
    (m(24), False, False, at("12:00")), (m(25), False, False, at("09:00")),
    (m(27), False, False, JAN), (m(32), True, True, JAN),
]


def ev(n: int, hhmm: str, cell: str = "IN", fix=None, number: str | None = None):
    lat, lng = fix or (None, None)
    return (number or m(n), None, None, at(hhmm), "data", cell, lat, lng)


EVENTS = (
    [ev(1, "10:30", number="+49 1700 0000 01")] + [ev(n, "10:30") for n in G1[1:]]
    + [ev(20, "11:10", fix=FIX_299), ev(21, "11:10", fix=FIX_301)]
    + [ev(22, "11:00"), ev(23, "11:00"), ev(23, "13:00"), ev(24, "11:30"), ev(24, "14:00")]
    + [ev(n, "11:00") for n in (25, 26, 27, 28, 29, 32)]
    + [ev(30, t) for t in ("10:05", "10:40", "11:20", "12:15")]
    + [ev(31, "09:59"), ev(31, "20:30"), ev(33, "11:00", cell="FAR")]
    + [ev(40, "10:20", cell="FAR"), ev(41, "10:25", fix=FIX_C), ev(42, "10:25", cell="FAR", fix=ELSEWHERE)]
    + [("49abc", None, None, at("11:00"), "data", "IN", None, None)]  # unprocessable: ignored
)


def campaign(cid: str, *, point=STORE, radius=300.0, fence_h3=None, res=None, frm="10:00", to="20:00", cap=1,
             ages=None, genders=None, start=D, end=None, merchant="Store"):
    lat, lng = point if point else (None, None)
    return (cid, merchant, lat, lng, radius if point else None, fence_h3, res, start, end, frm, to, cap, ages,
            genders)


CAMPAIGN_ROWS = [
    campaign("A"),
    campaign("B", cap=2, ages=["35-44"]),
    campaign("C", point=None, fence_h3=[FENCE_C.upper()], res=9, frm="10:00", to="10:35", ages=["45-54"]),
    campaign("OLD", start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 31)),  # not active on D
]

EXPECTED_AUDIENCE = sorted(
    [("A", m(n), "10:30") for n in G1]
    + [("A", m(20), "11:10"), ("A", m(23), "13:00"), ("A", m(24), "11:30"), ("A", m(30), "10:05"),
       ("A", m(32), "11:00")]
    + [("B", m(20), "11:10"), ("B", m(23), "13:00"), ("B", m(24), "11:30"), ("B", m(30), "10:05"),
       ("B", m(30), "11:20"), ("B", m(32), "11:00")]
    + [("C", m(40), "10:20"), ("C", m(41), "10:25")]
)
EXPECTED_BY_CAMPAIGN = {
    "A": {"candidates": 23, "notified": 17, "excluded_minor": 1, "excluded_business": 1, "excluded_withdrawn": 1,
          "excluded_consent_too_late": 1, "excluded_no_consent": 2, "consented_windows": 19, "notifications": 17,
          "excluded_by_cap": 2},
    "B": {"candidates": 10, "notified": 5, "excluded_minor": 0, "excluded_business": 1, "excluded_withdrawn": 1,
          "excluded_consent_too_late": 1, "excluded_no_consent": 2, "consented_windows": 7, "notifications": 6,
          "excluded_by_cap": 1},
    "C": {"candidates": 2, "notified": 2, "excluded_minor": 0, "excluded_business": 0, "excluded_withdrawn": 0,
          "excluded_consent_too_late": 0, "excluded_no_consent": 0, "consented_windows": 2, "notifications": 2,
          "excluded_by_cap": 0},
}


def write_lake(spark, cfg, campaigns=CAMPAIGN_ROWS) -> None:
    raw = cfg.lake.raw
    spark.createDataFrame(EVENTS, NETWORK_EVENTS).coalesce(1).write.mode("overwrite").parquet(
        f"{raw}/network_events/event_date={D}")
    spark.createDataFrame([(m(n), *v) for n, v in PEOPLE.items()], SUBSCRIBERS).write.mode("overwrite").parquet(
        f"{raw}/subscribers")
    spark.createDataFrame(PREFS, PRIVACY_PREFERENCES).write.mode("overwrite").parquet(f"{raw}/privacy_preferences")
    old = dt.date(2020, 1, 1)
    spark.createDataFrame([("IN", *STORE, "4G", old, None), ("FAR", *FAR, "4G", old, None)], CELLS).write.mode(
        "overwrite").parquet(f"{raw}/cells")
    spark.createDataFrame(campaigns, CAMPAIGNS).coalesce(1).write.mode("overwrite").parquet(f"{raw}/campaigns")


@pytest.fixture(scope="module")
def run(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("offers")
    conf = write_conf(tmp, privacy={"k_min": K})
    cfg = load_config(conf)
    write_lake(spark, cfg)
    code = offers.main(["--conf", str(conf), "--date", D.isoformat()])
    summary = json.loads((tmp / "lake" / "reports" / "runs" / D.isoformat() / "offers.json").read_text())["summary"]
    return code, cfg, summary


def read(spark, cfg, table):
    return spark.read.format("delta").load(table_path(cfg.lake, table))


def test_fixture_geometry_is_what_the_table_says():
    """The fixture's own claims, checked with plain Python (haversine, h3)."""
    assert 298.9 < haversine(STORE, FIX_299) < 299.1 and 300.9 < haversine(STORE, FIX_301) < 301.1
    assert h3.geo_to_h3(*FIX_C, 9) == FENCE_C and h3.geo_to_h3(*ELSEWHERE, 9) != FENCE_C
    assert haversine(STORE, FAR) > 2000 and haversine(STORE, FIX_C) > 2000


def test_audience_is_exactly_the_consenting_people_in_the_fence(spark, run):
    code, cfg, _ = run
    assert code == 0
    rows = read(spark, cfg, "offer_audience").collect()
    assert {r["date"] for r in rows} == {D}
    got = sorted((r["campaign_id"], r["msisdn"], r["notify_at"].strftime("%H:%M")) for r in rows)
    assert got == EXPECTED_AUDIENCE
    assert read(spark, cfg, "offer_audience").columns == ["date", "campaign_id", "msisdn", "notify_at"]


def test_point_fence_membership_matches_python_haversine(spark, run):
    _, cfg, _ = run
    in_a = {r["msisdn"] for r in read(spark, cfg, "offer_audience").filter("campaign_id = 'A'").collect()}
    for n, fix in ((20, FIX_299), (21, FIX_301), (41, FIX_C)):
        assert (m(n) in in_a) == (haversine(STORE, fix) <= 300.0), n


def test_nobody_in_the_audience_without_consent_at_notify_at(spark, run):
    """Recomputed in Python from the preference records: the latest one at or before notify_at says yes."""
    _, cfg, _ = run
    canon = {(("49" + num[4:]) if num.startswith("0049") else num): [] for num, *_ in PREFS}
    for num, _, opt_in, ts in PREFS:
        canon[("49" + num[4:]) if num.startswith("0049") else num].append((ts, opt_in))
    for r in read(spark, cfg, "offer_audience").collect():
        before = sorted(rec for rec in canon.get(r["msisdn"], []) if rec[0] <= r["notify_at"])
        assert before and before[-1][1] is True, (r["msisdn"], r["notify_at"])


def test_summary_adds_up_and_matches_the_hand_count(run):
    _, _, s = run
    assert s["offers"]["campaigns_active"] == 3
    for cid, expected in EXPECTED_BY_CAMPAIGN.items():
        got = s["offers"]["by_campaign"][cid]
        assert {k: got[k] for k in expected} == expected, cid
        exclusions = sum(got[k] for k in ("excluded_minor", "excluded_business", "excluded_withdrawn",
                                          "excluded_consent_too_late", "excluded_no_consent"))
        assert got["candidates"] == got["notified"] + exclusions
        assert got["consented_windows"] == got["notifications"] + got["excluded_by_cap"]
    total = s["offers"]
    assert total["candidates"] == 35 and total["notifications"] == len(EXPECTED_AUDIENCE)
    assert total["report_excluded_analytics_opt_out"] == 2  # person 32, in A and B
    assert total["report_groups_released"] == 1 and total["report_groups_suppressed"] == 7


def test_merchant_report_is_k_anonymous_and_carries_no_identifier(spark, run):
    _, cfg, _ = run
    report = read(spark, cfg, "offer_report")
    assert report.columns == ["date", "campaign_id", "window_start", "age_band", "gender", "notified"]
    rows = [(r["campaign_id"], r["window_start"].strftime("%H:%M"), r["age_band"], r["gender"], r["notified"])
            for r in report.collect()]
    # Only G1 reaches k; person 30's 10:00 group (1), the 11:00 men (2, and 32 left out), C (2) are suppressed.
    assert rows == [("A", "10:00", "25-34", "female", 12)]
    assert all(n >= K for *_, n in rows)
    numbers = {m(n) for n in PEOPLE} | {num for num, *_ in PREFS} | {e[0] for e in EVENTS}
    text = " ".join(str(v) for r in report.collect() for v in r)
    assert not any(num[-8:] in text for num in numbers)


def test_audience_suite_counts_rows_without_consent(spark, run):
    """The suite's own check (a range join, independent of the job's window) catches crafted rows."""
    _, cfg, _ = run
    consent = spark.createDataFrame(
        [(("49" + n[4:]) if n.startswith("0049") else n, o, ts) for n, _, o, ts in PREFS],
        "msisdn string, location_offers_opt_in boolean, updated_at timestamp")
    good = read(spark, cfg, "offer_audience")
    p = SuiteParams(date=D, cfg=cfg)
    assert offer_audience.profile(good, p, consent=consent).first()["rows_without_consent"] == 0
    bad = spark.createDataFrame([(D, "A", m(26), at("11:00")),   # never opted in
                                 (D, "A", m(24), at("14:00")),   # after the withdrawal
                                 (D, "A", m(22), at("11:00")),   # before the opt-in
                                 (D, "A", m(23), at("12:00"))],  # at the very instant of the opt-in: fine
                                "date date, campaign_id string, msisdn string, notify_at timestamp")
    prof = offer_audience.profile(good.unionByName(bad), p, consent=consent).first()
    assert prof["rows_without_consent"] == 3
    with pytest.raises(ValueError, match="consent"):
        offer_audience.profile(good, p)


BAD_CAMPAIGNS = {
    "ZERO": campaign("ZERO", radius=0.0),
    "HUGE": campaign("HUGE", radius=50_001.0),
    "LATE": campaign("LATE", frm="20:00", to="25:00"),
    "INVERTED": campaign("INVERTED", frm="18:00", to="10:00"),
    "LABEL": campaign("LABEL", ages=["30-39"]),
    "GENDERX": campaign("GENDERX", genders=["F"]),
    "NOFENCE": campaign("NOFENCE", point=None),
    "BOTH": campaign("BOTH", fence_h3=[FENCE_C], res=9),
    "BADH3": campaign("BADH3", point=None, fence_h3=["8a1f8e2b0dfffff"], res=9),
    "WRONGRES": campaign("WRONGRES", point=None, fence_h3=[FENCE_C], res=8),
    "NOCAP": campaign("NOCAP", cap=0),
    "DATES": campaign("DATES", start=D, end=D - dt.timedelta(days=1)),
}
EXPECTED_REASONS = {"ZERO": "radius_not_positive", "HUGE": "radius_too_large", "LATE": "window_outside_day",
                    "INVERTED": "inverted_window", "LABEL": "unknown_target_age_band",
                    "GENDERX": "unknown_target_gender", "NOFENCE": "no_fence", "BOTH": "both_fence_forms",
                    "BADH3": "invalid_h3_cell", "WRONGRES": "invalid_h3_cell", "NOCAP": "invalid_cap",
                    "DATES": "inverted_dates"}
LABELS = dict(age_bands=("18-24", "25-34", "35-44", "45-54", "55-64", "65+"), genders=("female", "male", "diverse"),
              max_radius_m=50_000.0)


def test_each_bad_campaign_row_gets_its_reason(spark):
    rows = [*CAMPAIGN_ROWS, *BAD_CAMPAIGNS.values(), campaign("A", merchant="dup")]
    got = {(r["campaign_id"], r["reason"]) for r in invalid_campaigns(
        spark.createDataFrame(rows, CAMPAIGNS), **LABELS).collect()}
    assert got == {*EXPECTED_REASONS.items(), ("A", "duplicate_campaign_id")}
    check_campaigns(spark.createDataFrame(CAMPAIGN_ROWS, CAMPAIGNS), **LABELS)  # the good ones pass
    with pytest.raises(ValidationError, match="HUGE \\(radius_too_large\\)"):
        check_campaigns(spark.createDataFrame([CAMPAIGN_ROWS[0], BAD_CAMPAIGNS["HUGE"]], CAMPAIGNS), **LABELS)


def test_a_bad_campaign_fails_the_job_naming_it(spark, tmp_path, capsys):
    conf = write_conf(tmp_path, privacy={"k_min": K})
    cfg = load_config(conf)
    spark.createDataFrame([CAMPAIGN_ROWS[0], BAD_CAMPAIGNS["INVERTED"]], CAMPAIGNS).write.parquet(
        f"{cfg.lake.raw}/campaigns")
    code = offers.main(["--conf", str(conf), "--date", D.isoformat()])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: campaigns:" in err and "INVERTED (inverted_window)" in err
    assert not Path(table_path(cfg.lake, "offer_audience")).exists()


def test_audience_lives_in_the_network_zone_never_curated_or_released(run, tmp_path_factory):
    """The numbers for delivery stay in the network domain (default ``<lake.raw>/_network``)."""
    _, cfg, _ = run
    path = Path(table_path(cfg.lake, "offer_audience"))
    assert path == Path(cfg.lake.raw) / "_network" / "offer_audience" and (path / "_delta_log").is_dir()
    for zone in (cfg.lake.curated, cfg.lake.insights):
        assert not list(Path(zone).rglob("offer_audience")), zone
    assert (Path(cfg.lake.raw) / "_network" / "_publish_ledger" / "_delta_log").is_dir()


def test_released_counts_ignore_the_opt_out_only_in_the_report(spark, run):
    """Person 32 (analytics opt-out, offers opt-in) gets the offer but is not counted for the merchant."""
    _, cfg, _ = run
    aud = read(spark, cfg, "offer_audience").filter(F.col("msisdn") == m(32)).count()
    assert aud == 2
