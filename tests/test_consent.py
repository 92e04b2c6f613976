"""Consent in stage 1 on hand-built frames: one canonical MSISDN, dispositions in the law's order, a quarantine
that is no side door; the input suites' checks after normalization; the retention config."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import pytest
import yaml
from pyspark.sql import functions as F

from contract.columns import canonical_msisdn
from contract.errors import ConfigError
from contract.schemas import PRIVACY_PREFERENCES, SUBSCRIBERS
from expectations import privacy_preferences as prefs_suite
from expectations import subscribers as subs_suite
from expectations.common import SuiteParams
from mobility.config import RetentionConfig, load_config
from mobility.secrets import Secret
from mobility.summaries import stage1_summary
from tests.conftest import write_conf
from transforms.consent import daily_ids_of, pseudonyms_of, quarantine_ids_of, unusable_preferences
from transforms.hashing import BroadcastHmac
from transforms.stage1 import (
    latest_preferences,
    opted_out_msisdns,
    tag_events,
    to_pseudonymized_events,
    to_quarantine,
    with_pseudonyms,
)

D = dt.date(2026, 10, 5)
EDGES = (18, 25, 35, 45, 55, 65)
KEY = bytes.fromhex("a1" * 32)


def at(hhmm: str, day: dt.date = D) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


def py_hmac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def test_canonical_msisdn(spark):
    cases = [
        ("4917012345678", "4917012345678"), ("+4917012345678", "4917012345678"),
        ("004917012345678", "4917012345678"), ("+49 170 1234 5678", "4917012345678"),
        ("4917012345678 ", "4917012345678"), ("\t49 170\u00a012345678", "4917012345678"),
        ("+49-170-12345678", None), ("017012345678", None), ("49abc12345", None), ("1234567", None),
        ("", None), ("   ", None), (None, None), ("++4917012345678", None), ("0004917012345678", None),
    ]
    df = spark.createDataFrame(cases, "raw string, expected string")
    got = [(r.raw, r.c) for r in df.select("raw", canonical_msisdn(F.col("raw")).alias("c")).collect()]
    assert got == [(raw, expected) for raw, expected in cases]


def msisdn_spellings() -> list[str]:
    """Every combination of a prefix, a number's digits with or without a blank inside, and an ending.

    Prefixes include the international ones (``+``, ``00``), doubled and national ones;
    numbers are 7-16 digits starting with 1-9 or with 0; blanks and endings cover every
    kind of :data:`contract.vocabulary.BLANKS` (ASCII, no-break, narrow, line separators),
    a letter, a hyphen, a decimal point, a control character and non-ASCII digits (Arabic-Indic,
    full-width), which a number parser may accept but the rule must not.
    """
    prefixes = ["", "+", "00", "+ ", " 0 0", "0", "++", "+00", "000", "\u202f+", "-"]
    blanks = [" ", "\t", "\u00a0", "\u202f", "\u2009", "\u2028", "\u3000", "\x85", "\n", "-", "x", "",
              "\u0664", "\uff14", "."]
    endings = ["", " ", "\n", "\u2028", "\u2029", "\x85", "\r\n", "x", "\u00a0", "0", ".0", "\x01"]
    out = []
    for first in "41" + "0":
        for n in range(7, 17):
            digits = first + "9" * (n - 1)
            for blank in blanks:
                body = digits[:3] + blank + digits[3:]
                for prefix in prefixes:
                    out += [prefix + body + ending for ending in endings]
    return out


def test_canonical_msisdn_is_the_portals_rule_for_every_spelling(spark):
    """One rule for the pipeline (Spark) and the portal (Python), checked on 59,400 spellings: every
    combination of prefix, length, inner blank and ending (:func:`msisdn_spellings`). An opt-out typed
    into the portal must match the events however the network wrote the number."""
    from portal.msisdn import normalize_msisdn

    spellings = msisdn_spellings()
    df = spark.createDataFrame([(i, s) for i, s in enumerate(spellings)], "i int, raw string")
    got = {r.i: r.c for r in df.select("i", canonical_msisdn(F.col("raw")).alias("c")).collect()}
    wrong = [(spellings[i], got[i], normalize_msisdn(spellings[i])) for i in range(len(spellings))
             if got[i] != normalize_msisdn(spellings[i])]
    assert not wrong, wrong[:5]
    assert sum(v is not None for v in got.values()) > 1000  # the rule accepts what it should, not nothing
    # A trailing line separator is a blank like any other (the regular expressions kept it: "$" matches
    # before a final line terminator, so the number came out with it and joined no other spelling).
    assert got[spellings.index("4999999999999\u2028")] == "4999999999999"


# Person numbers (canonical); events are written plainly unless said otherwise.
OPT_PLUS, OPT_00, OPT_BLANK = "4917000000001", "4917000000002", "4917000000003"
MINOR, BIZ, ADULT, BACK_IN = "4917000000010", "4917000000011", "4917000000012", "4917000000013"


@pytest.fixture(scope="module")
def tagged(spark):
    events = spark.createDataFrame([
        ("e1", OPT_PLUS, at("10:00"), "data", "C1", None, None),
        ("e2", OPT_00, at("10:00"), "data", "C1", None, None),
        ("e3", OPT_BLANK + " ", at("10:00"), "data", "C1", None, None),  # trailing blank: still the opted-out person
        ("e4", OPT_PLUS, at("10:00"), "data", "ZZ", None, None),         # opted out AND a bad row
        ("e5", MINOR, at("10:00"), "data", "C1", None, None),
        ("e6", MINOR, at("10:00"), "data", "ZZ", None, None),              # a minor's bad row
        ("e7", BIZ, at("11:00"), "sms", "C1", None, None),
        ("e8", "+" + ADULT, at("12:34:56"), "voice", "C1", 49.45678, 11.07891),
        ("e9", ADULT, at("12:34:56"), "voice", "ZZ", 49.45678, 11.07891),  # an adult's bad row: quarantined
        ("e10", "49-170-0000099", at("10:00"), "data", "C1", None, None),  # cannot be normalized
        ("e11", BACK_IN, at("10:00"), "data", "C1", None, None),
    ], "eid string, msisdn string, event_ts timestamp, event_type string, cell_id string, latitude double, "
       "longitude double").withColumn("imsi", F.lit("262011234567890")).withColumn("imei", F.lit("35123456789012"))
    prefs = spark.createDataFrame([
        ("+" + OPT_PLUS, True, False, at("08:00", dt.date(2026, 1, 1))),
        ("00" + OPT_00, True, False, at("08:00", dt.date(2026, 1, 1))),
        ("+49 170 000 000 03", True, False, at("08:00", dt.date(2026, 1, 1))),
        (BACK_IN, True, False, at("08:00", dt.date(2026, 1, 1))),
        ("+" + BACK_IN, False, False, at("08:00", dt.date(2026, 2, 1))),  # back in, written differently
    ], PRIVACY_PREFERENCES)
    subs = spark.createDataFrame([
        ("+49 170 000 000 10", dt.date(2010, 1, 1), "F", "consumer"),   # a minor written with '+' and blanks
        ("00" + BIZ, dt.date(1990, 1, 1), "M", "business"),
        (ADULT, dt.date(1990, 1, 1), "F", "consumer"),
    ], SUBSCRIBERS)
    cells = spark.createDataFrame([("C1",)], "cell_id string")
    out = tag_events(events, date=D, opted_out=opted_out_msisdns(prefs, as_of=at("12:00", dt.date(2026, 11, 1))),
                     valid_cells=cells, subscribers=subs, age_band_edges=EDGES, min_age=18, exclude_business=True)
    hasher = BroadcastHmac.for_secret(spark, Secret(KEY))
    tagged = out.transform(with_pseudonyms, hasher=hasher).cache()
    yield tagged
    tagged.unpersist()  # the session is shared: later tests check that nothing stays cached


def test_dispositions_honour_every_way_of_writing_a_number(tagged):
    got = {r.eid: (r.disposition, r.reason) for r in tagged.collect()}
    assert got == {
        "e1": ("opted_out", None), "e2": ("opted_out", None), "e3": ("opted_out", None),
        "e4": ("opted_out", "unknown_cell"), "e5": ("minor", None), "e6": ("minor", "unknown_cell"),
        "e7": ("business", None), "e8": ("kept", None), "e9": ("quarantine", "unknown_cell"),
        "e10": ("quarantine", "malformed_msisdn"), "e11": ("kept", None),
    }
    counts = {(r.disposition, r.reason): r["count"] for r in tagged.groupBy("disposition", "reason").count().collect()}
    s = stage1_summary(counts)
    assert (s["rows_in"], s["excluded_opted_out"], s["excluded_minor"], s["excluded_business"],
            s["quarantined_total"], s["rows_out"]) == (11, 4, 2, 1, 2, 2)
    assert s["quarantined"] == {"malformed_msisdn": 1, "unknown_cell": 1}


def test_kept_rows_are_pseudonymized_from_the_canonical_number(tagged):
    kept = to_pseudonymized_events(tagged, date=D)
    assert sorted(r.pseudo_id for r in kept.collect()) == sorted([py_hmac(KEY, ADULT), py_hmac(KEY, BACK_IN)])
    adult = kept.filter(F.col("pseudo_id") == py_hmac(KEY, ADULT)).first()
    assert (adult.age_band, adult.gender) == ("35-44", "female")  # CRM found although the event had '+'


def test_quarantine_holds_no_excluded_person_and_no_joinable_id(tagged):
    q = to_quarantine(tagged, date=D)
    records = {r.reason: json.loads(r.record) for r in q.collect()}
    assert set(records) == {"unknown_cell", "malformed_msisdn"}  # e4 (opted out) and e6 (minor) are not here
    bad = records["unknown_cell"]
    assert bad["msisdn_hmac"] == py_hmac(KEY, "quarantine/msisdn/" + ADULT) != py_hmac(KEY, ADULT)
    assert bad["imsi_hmac"] == py_hmac(KEY, "quarantine/imsi/262011234567890")
    assert bad["imei_hmac"] == py_hmac(KEY, "quarantine/imei/35123456789012")
    assert records["malformed_msisdn"]["msisdn_hmac"] == py_hmac(KEY, "quarantine/msisdn-raw/49-170-0000099")
    assert (bad["event_hour"][:19], bad["latitude_2dp"], bad["longitude_2dp"]) == ("2026-10-05T12:00:00", 49.46, 11.08)
    assert set(bad) == {"msisdn_hmac", "imsi_hmac", "imei_hmac", "event_hour", "event_type", "cell_id",
                        "latitude_2dp", "longitude_2dp"}
    # No quarantine id joins to a curated pseudonym (the adult has rows in both).
    ids = q.select(F.get_json_object("record", "$.msisdn_hmac").alias("pseudo_id"))
    assert ids.join(to_pseudonymized_events(tagged, date=D), on="pseudo_id", how="inner").count() == 0


def test_latest_preference_is_per_canonical_number_and_a_tie_is_an_opt_out(spark):
    prefs = spark.createDataFrame([
        ("+" + ADULT, False, True, at("08:00")),
        ("00" + ADULT, True, False, at("08:00")),   # same time, other format: tie -> the opt-out wins
        (OPT_PLUS, True, False, at("08:00")),
        ("+" + OPT_PLUS, False, True, at("09:00")),  # later, other format: back in, offers opt-in
    ], PRIVACY_PREFERENCES)
    got = {r.msisdn: (r.analytics_opt_out, r.location_offers_opt_in)
           for r in latest_preferences(prefs, as_of=at("12:00")).collect()}
    assert got == {ADULT: (True, False), OPT_PLUS: (False, True)}


def test_latest_preference_in_every_case_of_up_to_three_records(spark):
    """Every log of 1-3 records for one subscriber — each at 08:00, 09:00 or 13:00 (after the run at 12:00),
    opting out, in or saying nothing (null), offers opt-in true, false or null, in three spellings — against
    the rule written plainly: the latest records at or before the run decide; among them an opt-out wins and an
    offers opt-in needs all of them. 20,439 subscribers in one frame."""
    import itertools

    times = [at("08:00"), at("09:00"), at("13:00")]
    flags = [True, False, None]
    kinds = list(itertools.product(times, flags, flags))
    cases = [c for n in (1, 2, 3) for c in itertools.product(kinds, repeat=n)]
    spellings = ("+49 170 {}", "0049170{}", "49170{}")
    rows = [(spellings[j].format(f"{i:08d}"), out, offers, when)
            for i, case in enumerate(cases) for j, (when, out, offers) in enumerate(case)]
    got = {r.msisdn: (r.analytics_opt_out, r.location_offers_opt_in)
           for r in latest_preferences(spark.createDataFrame(rows, PRIVACY_PREFERENCES), as_of=at("12:00")).collect()}
    expected = {}
    for i, case in enumerate(cases):
        current = [(when, out, offers) for when, out, offers in case if when <= at("12:00")]
        if current:
            last = max(when for when, _, _ in current)
            latest = [(out, offers) for when, out, offers in current if when == last]
            expected[f"49170{i:08d}"] = (any(out is True for out, _ in latest),
                                         all(offers is True for _, offers in latest))
    assert got == expected


def test_opted_out_hashes_in_every_domain(spark):
    msisdns = spark.createDataFrame([(ADULT,), (ADULT,), (None,)], "msisdn string")
    hasher = BroadcastHmac.for_secret(spark, Secret(KEY))
    pseudo = pseudonyms_of(msisdns, hasher=hasher)
    assert [r.pseudo_id for r in pseudo.collect()] == [py_hmac(KEY, ADULT)]
    day_key = hmac.new(b"m" * 32, b"daily/2026-10-05", hashlib.sha256).digest()
    daily = daily_ids_of(pseudo, hasher=BroadcastHmac.for_secret(spark, Secret(day_key)), date=D).collect()
    assert [(r.date, r.daily_id) for r in daily] == [(D, py_hmac(day_key, py_hmac(KEY, ADULT)))]
    q = quarantine_ids_of(msisdns, hasher=hasher).collect()
    assert [r.msisdn_hmac for r in q] == [py_hmac(KEY, "quarantine/msisdn/" + ADULT)]


def test_input_suites_judge_canonical_numbers(spark, tmp_path):
    cfg = load_config(write_conf(tmp_path))
    p = SuiteParams(date=D, cfg=cfg, as_of=at("12:00"))
    subs = spark.createDataFrame([
        ("+" + ADULT, dt.date(1990, 1, 1), "F", "consumer"), (ADULT, dt.date(1990, 1, 1), "F", "consumer"),
        ("00" + BIZ, None, None, "business"), ("49-170", None, None, "consumer"),
    ], SUBSCRIBERS)
    row = subs_suite.profile(subs, p).first()
    assert (row.duplicate_msisdns, row.wellformed_msisdn_share) == (1, 0.75)
    prefs = spark.createDataFrame([
        ("+" + ADULT, True, False, at("08:00")), (ADULT, False, False, at("08:00")),  # a tie after normalization
        ("0170 1234567", True, False, at("08:00")),                                   # cannot be normalized
        (BIZ, False, False, at("08:00")),
    ], PRIVACY_PREFERENCES)
    row = prefs_suite.profile(prefs, p).first()
    assert (row.unnormalizable_msisdns, row.ambiguous_latest_preferences, row.null_key_rows) == (1, 1, 0)
    assert [r.msisdn for r in unusable_preferences(prefs).collect()] == ["0170 1234567"]


def test_retention_section_is_checked_and_defaults_only_as_a_whole(tmp_path):
    conf = write_conf(tmp_path)
    cfg = load_config(conf)
    assert cfg.retention.days() == {"pseudonymized_events": 7, "anonymized_events": 30, "anonymized_trips": 30,
                                    "quarantine": 14, "opt_outs": 30}
    with pytest.raises(ConfigError, match=r"retention\.quarantine_days"):
        load_config(conf, ["retention.quarantine_days=0"])
    with pytest.raises(ConfigError, match=r"retention\.typo_days"):
        load_config(conf, ["retention.typo_days=3"])
    data = yaml.safe_load(conf.read_text())
    del data["retention"]["log_retention_days"]
    conf.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"retention\.log_retention_days"):
        load_config(conf)
    del data["retention"]  # a deployment from before the section: the documented defaults
    conf.write_text(yaml.safe_dump(data))
    assert load_config(conf).retention == RetentionConfig.defaults() == cfg.retention


def test_no_raw_identifier_in_quarantine_or_curated_rows(tagged):
    blob = "\n".join(json.dumps(r.asDict(), default=str) for r in to_quarantine(tagged, date=D).collect())
    blob += "\n".join(str(r) for r in to_pseudonymized_events(tagged, date=D).collect())
    for raw in (OPT_PLUS, MINOR, ADULT, "262011234567890", "35123456789012", "49-170-0000099", KEY.hex()):
        assert raw not in blob
