"""Data-quality suites, the input gate and write-audit-publish.

Great Expectations runs Spark jobs per metric, so the frames are tiny and each test
validates as few suites as it can; the job tests run stage 1 in-process on the
session fixture.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tests.conftest import write_conf

DATE = dt.date(2026, 10, 5)
TS = dt.datetime(2026, 10, 5, 10, 17)
WIN = dt.datetime(2026, 10, 5, 10, 0)
HEX = "ab" * 32
H3_8 = "881fabab53fffff"  # Nuremberg, resolution 8
H3_7 = "871fabab5ffffff"  # its parent, resolution 7
MSISDNS = [f"49170{i:08d}" for i in range(1, 41)]


@pytest.fixture(scope="module")
def params():
    from expectations.common import SuiteParams
    from mobility.config import load_config
    from tests.conftest import ROOT

    cfg = load_config(ROOT / "conf" / "local.yaml", ["privacy.k_min=15", "generalization.h3_resolution=8",
                                                      "generalization.od_h3_resolution=7",
                                                      "generalization.window_minutes=60",
                                                      "generalization.age_band_edges=[18, 25, 35, 45, 55, 65]",
                                                      "quality.max_quarantine_share=0.05",
                                                      "quality.min_known_cell_share=0.95",
                                                      "quality.min_wellformed_msisdn_share=0.95"])
    return SuiteParams(date=DATE, cfg=cfg, as_of=dt.datetime(2026, 10, 6))


def frame(spark, table: str, rows: list[tuple]):
    """A frame with the table's contracted schema (from the suite module's COLUMNS)."""
    from expectations import suite_module

    kinds = {"string": T.StringType(), "long": T.LongType(), "int": T.IntegerType(), "double": T.DoubleType(),
             "date": T.DateType(), "timestamp": T.TimestampType(), "boolean": T.BooleanType()}
    cols = suite_module(table).COLUMNS
    schema = T.StructType([T.StructField(c, kinds[k]) for c, k in cols.items()])
    return spark.createDataFrame(rows, schema)


def failed_checks(result) -> set[str]:
    """The failed expectations as ``ExpectationType:column``."""
    return {f"{e['expectation']}:{e['kwargs'].get('column', '')}" for e in result.expectations if not e["success"]}


def run(table, df, p, **refs):
    from mobility.quality import run_suite

    return run_suite(table, df, p, stage="test", **refs)


# ----------------------------------------------------------------------------- input suites


def test_network_events_suite_fails_on_shares_and_schema(spark, params):
    good = [(m, None, None, TS, "voice", "C1", None, None) for m in MSISDNS]
    bad = good[:30] + [("12ab", None, None, TS, "mms", "C9", None, None)] * 10  # 25 % bad in every way
    cells = spark.createDataFrame([("C1",)], "cell_id string")
    result = run("network_events", frame(spark, "network_events", bad), params, known_cells=cells)
    min_between = "expect_column_min_to_be_between"
    assert failed_checks(result) == {f"{min_between}:{c}" for c in (
        "wellformed_msisdn_share", "known_cell_share", "known_event_type_share", "processable_share")}
    assert result.observed("known_cell_share") == pytest.approx(0.75)
    # Schema: a missing column and a mistyped one fail the schema part; the profile is not run.
    mistyped = frame(spark, "network_events", good).drop("imei").withColumn("latitude", F.lit("x"))
    schema_result = run("network_events", mistyped, params, known_cells=cells)
    failed = failed_checks(schema_result)
    assert "expect_table_columns_to_match_set:" in failed
    assert "expect_column_values_to_be_of_type:latitude" in failed
    assert "expect_column_values_to_be_of_type:longitude" not in failed


def test_stage1_gate_profile_equals_the_suites_own_for_every_outcome_and_disposition(spark, params):
    """Stage 1 takes the gate's network_events profile from its tagging pass; it must be the profile the
    suite computes from the raw partition alone, for every combination of the four checks' outcomes and
    every disposition (opted out, minor, business, kept or quarantined), each with its own row count."""
    import itertools
    from types import SimpleNamespace

    from contract.schemas import PRIVACY_PREFERENCES, SUBSCRIBERS
    from expectations import network_events
    from jobs.pseudonymize import OnePass
    from mobility.secrets import Secret
    from transforms.hashing import BroadcastHmac

    people = {"consumer": "4917000000001", "opted_out": "+49 170 000 000 02", "minor": "4917000000003",
              "business": "004917000000004", "not_in_crm": "4917000000005"}
    rows = []
    outcomes = itertools.product(people, itertools.product((True, False), repeat=4))
    for n, (who, (wellformed, on_date, known, typed)) in enumerate(outcomes, start=1):
        number = people[who] if wellformed else people[who] + "x"
        ts = TS if on_date else TS - dt.timedelta(days=1)
        rows += [(number, "262011234567890", "35123456789012", ts, "voice" if typed else "mms",
                  "C1" if known else "C9", None, None)] * (n % 7 + 1)
    raw = frame(spark, "network_events", rows)
    prefs = spark.createDataFrame([(people["opted_out"].replace(" ", ""), True, False, dt.datetime(2026, 1, 1))],
                                  PRIVACY_PREFERENCES)
    subs = spark.createDataFrame([(people["consumer"], dt.date(1990, 1, 1), "F", "consumer"),
                                  (people["minor"], dt.date(2012, 1, 1), "M", "consumer"),
                                  (people["business"], dt.date(1990, 1, 1), "F", "business")], SUBSCRIBERS)
    cells = spark.createDataFrame([("C1",)], "cell_id string")
    ctx = SimpleNamespace(cfg=params.cfg, date=DATE, run_ts=dt.datetime(2026, 10, 6))
    one = OnePass(ctx, {"network_events": raw, "subscribers": subs, "privacy_preferences": prefs},
                  cells, hasher=BroadcastHmac.for_secret(spark, Secret(b"k" * 32)))
    try:
        got = one.gate_profile()
        want = network_events.profile(raw, params, known_cells=cells).toPandas()
        assert list(got.columns) == list(want.columns)
        assert int(got.at[0, "rows"]) == int(want.at[0, "rows"]) == len(rows) == one.raw.get["rows"]
        for column in want.columns[1:]:
            assert got.at[0, column] == pytest.approx(want.at[0, column], abs=1e-12), column
        assert sum(one.counts.values()) == len(rows)
        assert {d for d, _ in one.counts} == {"opted_out", "minor", "business", "quarantine", "kept"}
        # The counts are observed while the cache is built; they must be a plain count of the tagged
        # rows, and the cache must hold exactly the rows an output keeps.
        from collections import Counter

        from transforms.stage1 import opted_out_msisdns, tag_events
        p = params.cfg.privacy
        tagged = tag_events(raw, date=DATE, opted_out=opted_out_msisdns(prefs, as_of=ctx.run_ts), valid_cells=cells,
                            subscribers=subs, age_band_edges=params.cfg.generalization.age_band_edges,
                            min_age=p.min_age, exclude_business=p.exclude_business)
        want_counts = Counter()
        for r in tagged.groupBy("disposition", "reason").count().collect():
            want_counts[(r["disposition"], r["reason"] if r["disposition"] == "quarantine" else None)] += r["count"]
        assert one.counts == want_counts
        cached = Counter(r["disposition"] for r in one.tagged.select("disposition").collect())
        assert cached == {d: n for d, n in Counter(d for d, _ in want_counts.elements()).items()
                          if d in ("kept", "quarantine")}
        assert one.tagged.filter("pseudo_id is null and disposition = 'kept'").count() == 0
    finally:
        if one.tagged is not None:
            one.tagged.unpersist()  # the session is shared: later tests check that nothing stays cached


def test_profile_of_counts_names_exactly_the_checks():
    from expectations import network_events

    empty = network_events.profile_of_counts([])
    assert int(empty.at[0, "rows"]) == 0 and (empty.drop(columns="rows") == 1.0).all(axis=None)
    with pytest.raises(ValueError, match="exactly the checks"):
        network_events.profile_of_counts([({"wellformed_msisdn": True}, 3)])


def test_subscriber_preference_and_cell_suites_fail_on_crafted_rows(spark, params):
    subs = [(m, dt.date(1980, 1, 1), "F", "consumer") for m in MSISDNS[:10]]
    subs += [(MSISDNS[0], dt.date(2030, 1, 1), "X", "vip")] * 2  # duplicate, future birth, bad codes
    sub_result = run("subscribers", frame(spark, "subscribers", subs), params)
    assert failed_checks(sub_result) == {
        "expect_column_max_to_be_between:duplicate_msisdns",
        "expect_column_min_to_be_between:plausible_birth_date_share",
        "expect_column_max_to_be_between:unexpected_gender",
        "expect_column_max_to_be_between:unexpected_customer_type",
    }
    assert sub_result.observed("duplicate_msisdns") == 2

    t0 = dt.datetime(2026, 1, 1)
    prefs = [(MSISDNS[0], True, False, t0), (MSISDNS[0], False, False, t0),  # two "latest" records: a tie
             (MSISDNS[1], True, False, t0), (MSISDNS[1], False, False, t0 + dt.timedelta(days=1)),  # fine
             (None, True, False, t0)]
    pref_result = run("privacy_preferences", frame(spark, "privacy_preferences", prefs), params)
    assert failed_checks(pref_result) == {"expect_column_max_to_be_between:ambiguous_latest_preferences",
                                          "expect_column_max_to_be_between:null_key_rows"}
    assert pref_result.observed("ambiguous_latest_preferences") == 1

    d = dt.date
    cells = [("C1", 49.4, 11.0, "4G", d(2020, 1, 1), d(2026, 6, 1)), ("C1", 49.4, 11.0, "5G", d(2026, 6, 1), None),
             ("C2", 49.4, 11.0, "4G", d(2020, 1, 1), None), ("C2", 49.5, 11.1, "5G", d(2026, 1, 1), None),  # overlap
             ("C3", 95.0, 11.0, "4G", d(2020, 1, 1), d(2019, 1, 1))]  # bad latitude, empty range
    cell_result = run("cells", frame(spark, "cells", cells), params)
    assert failed_checks(cell_result) == {"expect_column_max_to_be_between:cells_with_overlapping_validity",
                                          "expect_column_max_to_be_between:empty_validity_ranges",
                                          "expect_column_max_to_be_between:coordinates_out_of_range"}
    assert cell_result.observed("cells_with_overlapping_validity") == 1


# ----------------------------------------------------------------------------- output suites


def test_anonymized_suites_pass_on_good_rows_and_fail_on_each_class(spark, params):
    good = [(DATE, HEX, WIN, H3_8, "25-34", "female")] * 3
    assert run("anonymized_events", frame(spark, "anonymized_events", good), params).success
    bad = [*good, (DATE, "AB" * 32, dt.datetime(2026, 10, 5, 10, 5), H3_7, "12-17", "x"),
           (DATE, "4917012345678", WIN, None, "25-34", "female")]
    result = run("anonymized_events", frame(spark, "anonymized_events", bad), params)
    assert failed_checks(result) == {
        "expect_column_max_to_be_between:malformed_daily_id",
        "expect_column_max_to_be_between:invalid_h3_cell",
        "expect_column_max_to_be_between:misaligned_window_start",
        "expect_column_max_to_be_between:null_key_rows",
        "expect_column_max_to_be_between:identifier_shaped_values",
        "expect_column_max_to_be_between:unexpected_age_band",
        "expect_column_max_to_be_between:unexpected_gender",
    }
    trips_good = [(DATE, HEX, WIN, H3_7, H3_7, "65+", "male")]
    assert run("anonymized_trips", frame(spark, "anonymized_trips", trips_good), params).success
    trips_bad = frame(spark, "anonymized_trips", [*trips_good, (DATE, HEX, WIN, H3_8, H3_7, "65+", "male")])
    assert failed_checks(run("anonymized_trips", trips_bad, params)) == {
        "expect_column_max_to_be_between:invalid_origin_h3"}


def test_vocabulary_skip_never_changes_the_identifier_check(spark, params):
    """Skipping a column's vocabulary terms must give the full search's answer on every value.

    The values: every term of the vocabularies the output suites pass (age bands for the
    test's edges and for a wide set of edges, genders, event types), each with a prefix
    and a suffix, identifier-shaped strings, nulls, and a vocabulary of our own whose
    terms include identifier-shaped ones (which must still be found).
    """
    import itertools

    from contract.vocabulary import EVENT_TYPES, GENDERS, age_bands
    from expectations.common import identifier_shaped

    shaped_terms = ("+4917012345678", "262011234567890", "x 12345678", "1234567")
    vocab = {"age_band": (*params.age_bands, *age_bands((1, 10, 100, 1000))), "gender": GENDERS,
             "event_type": EVENT_TYPES, "other": (*shaped_terms, "code-1", "")}
    terms = sorted({t for ts in vocab.values() for t in ts})
    affixes = ("", " ", "0", "+", "12345678", "a", ".")
    values = [None, *{a + t + b for t in terms for a, b in itertools.product(affixes, repeat=2)}]
    df = spark.createDataFrame([(v,) * len(vocab) for v in values], ", ".join(f"{c} string" for c in vocab))
    for col, words in vocab.items():
        rows = df.select(F.col(col).alias("v"), identifier_shaped(col).alias("full"),
                         identifier_shaped(col, vocabularies={col: words}).alias("skip")).collect()
        differ = [r["v"] for r in rows if r["full"] != r["skip"]]
        assert not differ, (col, differ[:5])
        found = {r["v"] for r in rows if r["skip"]}
        assert found >= {"+4917012345678", "262011234567890", "x 12345678"}, col  # still found with the skip
    assert len(values) > 1000


def test_every_release_profile_carries_the_ledger_digest(spark, params):
    """The publisher records each release table's digest from its profile: every release suite must compute it,
    equal to the ledger's definition (``mobility.ledger.fingerprint``), and keep it out of the report."""
    from expectations import suite_module
    from expectations.common import DIGEST
    from mobility.io import INSIGHTS_TABLES
    from mobility.ledger import fingerprint
    from mobility.quality import run_suite

    rows = {"footfall": [(DATE, WIN, H3_8, 8, "25-34", "female", 20)], "presence": [(DATE, WIN, H3_8, 8, 20, 66.0)],
            "od_flows": [(DATE, WIN, H3_7, H3_7, 7, "18-24", "unknown", 15)],
            "offer_report": [(DATE, "spring-sale", WIN, "25-34", "female", 20)]}
    assert set(rows) == set(INSIGHTS_TABLES)
    for table in INSIGHTS_TABLES:
        for data in (rows[table], []):
            df = frame(spark, table, data)
            assert DIGEST in suite_module(table).profile(df, params).columns, table
            result = run_suite(table, df, params, stage="output")
            assert result.success and result.digest == fingerprint(df)[1], (table, result.digest)
            assert all(e["kwargs"].get("column") != DIGEST for e in result.expectations), table


def test_release_suites_enforce_k_and_resolution(spark, params):
    od_good = [(DATE, WIN, H3_7, H3_7, 7, "18-24", "unknown", 15)]
    assert run("od_flows", frame(spark, "od_flows", od_good), params).success
    od_bad = [*od_good, (DATE, WIN, H3_7, H3_7, 8, "18-24", "unknown", 14)]
    assert failed_checks(run("od_flows", frame(spark, "od_flows", od_bad), params)) == {
        "expect_column_min_to_be_between:min_trips", "expect_column_max_to_be_between:unexpected_h3_resolution"}

    pr_good = [(DATE, WIN, H3_8, 8, 20, 66.0)]
    assert run("presence", frame(spark, "presence", pr_good), params).success
    pr_bad = [*pr_good, (DATE, dt.datetime(2026, 10, 6, 0, 0), H3_8, 8, 3, 0.0)]
    assert failed_checks(run("presence", frame(spark, "presence", pr_bad), params)) == {
        "expect_column_min_to_be_between:min_visitors", "expect_column_max_to_be_between:non_positive_estimates",
        "expect_column_max_to_be_between:misaligned_window_start"}
    # A demographic split (or any extra column) in presence breaks its exact column set.
    split = frame(spark, "presence", pr_good).withColumn("age_band", F.lit("25-34"))
    assert "expect_table_columns_to_match_set:" in failed_checks(run("presence", split, params))


def test_empty_releases_pass(spark, params):
    """A day with no group of k people releases nothing, and that is not a failure."""
    for table in ("footfall", "presence", "od_flows"):
        assert run(table, frame(spark, table, []), params).success, table


def test_quarantine_suite_is_no_back_door(spark, params):
    rec = json.dumps({"msisdn_hmac": HEX, "cell_id": "XX-12", "latitude": 49.4521234567})
    good = [(DATE, "network_events", "unknown_cell", rec)]
    assert run("quarantine", frame(spark, "quarantine", good), params).success
    leaked = json.dumps({"msisdn": "+4917012345678", "cell_id": "C1"})
    bad = [*good, (DATE, "crm", "bad_vibes", leaked),
           (DATE - dt.timedelta(days=1), "network_events", "unknown_cell", rec)]
    assert failed_checks(run("quarantine", frame(spark, "quarantine", bad), params)) == {
        "expect_column_max_to_be_between:identifier_shaped_values",
        "expect_column_max_to_be_between:rows_off_date",
        "expect_column_max_to_be_between:unexpected_source",
        "expect_column_max_to_be_between:unexpected_reason",
    }


# ----------------------------------------------------------------------------- write-audit-publish


def _footfall(spark, visitors: int, h3: str = H3_8):
    return frame(spark, "footfall", [(DATE, WIN, h3, 8, "25-34", "female", visitors),
                                     (DATE, WIN, h3, 8, "35-44", "male", 40)])


def test_failed_audit_leaves_published_table_unchanged(spark, tmp_path, params):
    from delta.tables import DeltaTable

    from contract.errors import ValidationError
    from mobility.config import load_config
    from mobility.io import table_path
    from mobility.publish import DeltaPublisher

    cfg = load_config(write_conf(tmp_path))
    cache = spark._jsparkSession.sharedState().cacheManager()
    index = DeltaPublisher()(spark, cfg, [("footfall", _footfall(spark, 20), 2)], date=DATE).report
    path = table_path(cfg.lake, "footfall")
    version = DeltaTable.forPath(spark, path).history(1).first()["version"]
    published = sorted(spark.read.format("delta").load(path).collect())
    assert [r["visitors"] for r in published] == [20, 40]
    # One Delta commit holds exactly the audited rows; nothing was staged, no frame stays cached.
    assert DeltaTable.forPath(spark, path).history(1).first()["operationMetrics"]["numOutputRows"] == "2"
    assert not Path(cfg.lake.curated).exists()
    assert cache.isEmpty()

    with pytest.raises(ValidationError) as err:  # a group below k and a malformed H3 cell
        DeltaPublisher()(spark, cfg, [("footfall", _footfall(spark, 14, h3="not-a-cell"), None)], date=DATE)
    assert "visitors >= privacy.k_min" in str(err.value) and "h3_cell is a valid H3 cell" in str(err.value)
    assert DeltaTable.forPath(spark, path).history(1).first()["version"] == version
    assert sorted(spark.read.format("delta").load(path).collect()) == published
    # The rejected rows (a group below k) are written nowhere, not even in the restricted zone.
    assert sorted(p.name for p in Path(cfg.lake.curated).glob("*")) == []
    assert cache.isEmpty()

    report = json.loads(Path(index).with_name("footfall.json").read_text())
    assert report["success"] is False and report["stage"] == "output"
    html = Path(index).read_text()
    assert "footfall" in html and "FAILED" in html


def test_tables_released_together_publish_all_or_nothing(spark, tmp_path, params):
    """A failing presence keeps a passing footfall of the same date unpublished too."""
    from contract.errors import ValidationError
    from mobility.config import load_config
    from mobility.io import table_path
    from mobility.publish import DeltaPublisher

    cfg = load_config(write_conf(tmp_path))
    bad_presence = frame(spark, "presence", [(DATE, WIN, H3_8, 8, 3, 10.0)])  # 3 visitors < k
    with pytest.raises(ValidationError, match="not published") as err:
        DeltaPublisher()(spark, cfg, [("footfall", _footfall(spark, 20), 2), ("presence", bad_presence, 1)],
                         date=DATE)
    assert "presence" in str(err.value) and "footfall:" not in str(err.value)
    for table in ("footfall", "presence"):
        assert not Path(table_path(cfg.lake, table)).exists(), table


def _write_raw_lake(spark, cfg, *, bad_rows: int) -> None:
    """A tiny raw lake: 40 subscribers, 2 cells, 80 events of which ``bad_rows`` are unknown-cell rows."""
    from contract.schemas import CELLS, NETWORK_EVENTS, PRIVACY_PREFERENCES, SUBSCRIBERS
    from mobility.io import raw_path

    raw = cfg.lake.raw
    subs = [(m, dt.date(1950 + i, 3, 1), "FMD"[i % 3], "consumer") for i, m in enumerate(MSISDNS)]
    spark.createDataFrame(subs, SUBSCRIBERS).write.parquet(raw_path(raw, "subscribers"))
    prefs = [(MSISDNS[0], True, False, dt.datetime(2026, 1, 1))]
    spark.createDataFrame(prefs, PRIVACY_PREFERENCES).write.parquet(raw_path(raw, "privacy_preferences"))
    cells = [("C1", 49.45, 11.07, "4G", dt.date(2020, 1, 1), None), ("C2", 49.46, 11.08, "5G", dt.date(2020, 1, 1),
                                                                      None)]
    spark.createDataFrame(cells, CELLS).write.parquet(raw_path(raw, "cells"))
    events = [(MSISDNS[i % 40], "262011234567890", None, TS + dt.timedelta(minutes=i), "data",
               "XX" if i >= 80 - bad_rows else f"C{1 + i % 2}", None, None) for i in range(80)]
    spark.createDataFrame(events, NETWORK_EVENTS).write.parquet(raw_path(raw, "network_events", DATE.isoformat()))


def test_bad_raw_partition_stops_stage1_before_any_write(spark, tmp_path, keys, capsys):
    from contract.schemas import SUBSCRIBERS
    from jobs import pseudonymize
    from mobility.config import load_config

    conf = write_conf(tmp_path)
    cfg = load_config(conf)
    _write_raw_lake(spark, cfg, bad_rows=8)  # 10 % unknown cells > max_quarantine_share 5 %
    assert pseudonymize.main(["--conf", str(conf), "--date", DATE.isoformat()]) == 1
    err = capsys.readouterr().err
    assert "network_events" in err and "known on the date" in err and "nothing was written" in err
    assert not Path(cfg.lake.curated).exists()
    reports = Path(cfg.lake.reports) / "quality" / DATE.isoformat()
    html = (reports / "index.html").read_text()
    for table in ("network_events", "subscribers", "privacy_preferences", "cells"):
        assert f"id='{table}'" in html
    # The events' profile came from stage 1's tagging pass; with a CRM that fails as well, the
    # gate scans the raw events instead (the pass needs valid small tables): same verdict, same share.
    via_pass = json.loads((reports / "network_events.json").read_text())
    subs = spark.read.parquet(f"{cfg.lake.raw}/subscribers").collect()
    spark.createDataFrame(subs + subs[:1], SUBSCRIBERS).write.mode("overwrite").parquet(f"{cfg.lake.raw}/subscribers")
    assert pseudonymize.main(["--conf", str(conf), "--date", DATE.isoformat()]) == 1
    err = capsys.readouterr().err
    assert "subscribers" in err and "network_events" in err and "known on the date" in err
    assert not Path(cfg.lake.curated).exists()
    via_scan = json.loads((reports / "network_events.json").read_text())
    assert [(e["check"], e["success"], e["observed"]) for e in via_scan["expectations"]] == [
        (e["check"], e["success"], e["observed"]) for e in via_pass["expectations"]]
    assert next(e["observed"] for e in via_scan["expectations"]
                if e["kwargs"].get("column") == "known_cell_share") == pytest.approx(0.9)


def test_stage1_publishes_validated_outputs_and_a_corrupted_run_changes_nothing(spark, tmp_path, keys, capsys):
    from delta.tables import DeltaTable

    from jobs import pseudonymize
    from mobility.config import load_config
    from mobility.io import table_path
    from mobility.publish import DeltaPublisher

    conf = write_conf(tmp_path)
    cfg = load_config(conf)
    _write_raw_lake(spark, cfg, bad_rows=2)
    argv = ["--conf", str(conf), "--date", DATE.isoformat()]
    assert pseudonymize.main(argv) == 0
    out = capsys.readouterr().out
    assert "validation.pseudonymized_events" in out and "index.html" in out
    path = table_path(cfg.lake, "pseudonymized_events")
    version = DeltaTable.forPath(spark, path).history(1).first()["version"]
    rows = sorted(spark.read.format("delta").load(path).collect())
    assert len(rows) == 76  # 80 events - 2 unknown-cell rows quarantined - 2 of the opted-out subscriber

    # Corrupt the output on its way to the publisher: the stage-1 pseudonym is replaced by a raw MSISDN.
    real = DeltaPublisher()

    def corrupting(spark_, cfg_, outputs, **kw):
        return real(spark_, cfg_, [(t, f.withColumn("pseudo_id", F.lit("4917000000001")) if t == "pseudonymized_events"
                                    else f, n) for t, f, n in outputs], **kw)

    assert pseudonymize.main(argv, publisher=corrupting) == 1
    err = capsys.readouterr().err
    assert "pseudo_id is 64 lowercase hex" in err and "MSISDN/IMSI/IMEI" in err
    assert DeltaTable.forPath(spark, path).history(1).first()["version"] == version
    assert sorted(spark.read.format("delta").load(path).collect()) == rows


def test_write_holding_other_rows_than_audited_is_undone(spark, tmp_path, params):
    """Each commit's own row count must equal the audited count, else every table of the batch is rolled back."""
    from delta.tables import DeltaTable

    from contract.errors import ValidationError
    from mobility.config import load_config
    from mobility.io import table_path, write_date
    from mobility.publish import DeltaPublisher

    cfg = load_config(write_conf(tmp_path))
    presence = frame(spark, "presence", [(DATE, WIN, H3_8, 8, 30, 60.0)])
    DeltaPublisher()(spark, cfg, [("footfall", _footfall(spark, 20), 2), ("presence", presence, 1)], date=DATE)
    paths = {t: table_path(cfg.lake, t) for t in ("footfall", "presence")}
    published = {t: sorted(spark.read.format("delta").load(p).collect()) for t, p in paths.items()}
    # The second table's write differs from what was audited (as if its input changed in between).
    doubling = DeltaPublisher(write=lambda df, p, *, date: write_date(
        df.union(df) if p == paths["presence"] else df, p, date=date))
    with pytest.raises(ValidationError, match="presence 2026-10-05: the write committed 2 rows but 1 were audited"):
        doubling(spark, cfg, [("footfall", _footfall(spark, 35), 2), ("presence", presence, 1)], date=DATE)
    for table, path in paths.items():  # footfall passed its check, and was rolled back all the same
        assert sorted(spark.read.format("delta").load(path).collect()) == published[table], table
        ops = [r["operation"] for r in DeltaTable.forPath(spark, path).history().collect()]
        assert next(op for op in ops if not op.startswith("VACUUM")) == "RESTORE", table
        live = {str(Path(f.removeprefix("file:"))) for f in spark.read.format("delta").load(path).inputFiles()}
        on_disk = {str(f) for f in Path(path).rglob("*.parquet") if "_delta_log" not in f.parts}  # not checkpoints
        assert on_disk == live, table  # the undone write's files are purged


def test_an_empty_date_after_a_full_one_publishes_as_empty(spark, tmp_path, params):
    """An empty release is valid (nothing reached k), after a full date as before one.

    The reconciliation reads the commit this write made: an empty write makes none, and
    the table's newest history entry is then another date's full write.
    """
    from mobility.config import load_config
    from mobility.io import table_path
    from mobility.ledger import read_ledger
    from mobility.publish import DeltaPublisher

    cfg = load_config(write_conf(tmp_path))
    after = DATE + dt.timedelta(days=1)
    DeltaPublisher()(spark, cfg, [("footfall", _footfall(spark, 20), 2)], date=DATE)
    DeltaPublisher()(spark, cfg, [("footfall", _footfall(spark, 20).limit(0), 0)], date=after)
    DeltaPublisher()(spark, cfg, [("footfall", _footfall(spark, 20).limit(0), 0)], date=DATE - dt.timedelta(days=1))
    rows = spark.read.format("delta").load(table_path(cfg.lake, "footfall"))
    assert sorted((r["date"], r["visitors"]) for r in rows.collect()) == [(DATE, 20), (DATE, 40)]
    ledger = {(r["date"], r["rows"]) for r in read_ledger(spark, cfg.lake, "insights").collect()}
    assert ledger == {(DATE, 2), (after, 0), (DATE - dt.timedelta(days=1), 0)}


def test_tables_are_created_from_a_file_uri_or_a_relative_path(spark, tmp_path):
    """Lakes as file:/// URIs (the cluster test's) or relative paths (make demo's) get their tables.

    Release tables without column statistics, curated ones also without change data feed,
    both with the retention section's lifecycle properties."""
    from delta.tables import DeltaTable

    from mobility.config import load_config
    from mobility.lifecycle import prepare_table
    from mobility.publish import table_properties_for

    cfg = load_config(write_conf(tmp_path))  # conf/local.yaml's retention: 24 hours of superseded files
    uri = (tmp_path / "footfall").as_uri()
    assert uri.startswith("file:///")
    relative = os.path.relpath(tmp_path / "presence")  # conf/local.yaml's lake is relative
    for table in ("footfall", "pseudonymized_events"):
        wanted = table_properties_for(cfg, table)
        assert wanted["delta.dataSkippingNumIndexedCols"] == "0"
        assert wanted["delta.deletedFileRetentionDuration"] == "interval 24 hours"
        for path in (f"{uri}-{table}", f"{relative}-{table}"):
            prepare_table(spark, path, _footfall(spark, 20).schema, wanted)
            props = DeltaTable.forPath(spark, path).detail().first()["properties"]
            assert {k: props.get(k) for k in wanted} == wanted, path
            # The next run finds the table and sets what changed (a second `make demo` did, on a relative path).
            changed = {**wanted, "delta.deletedFileRetentionDuration": "interval 48 hours"}
            prepare_table(spark, path, _footfall(spark, 20).schema, changed)
            props = DeltaTable.forPath(spark, path).detail().first()["properties"]
            assert {k: props.get(k) for k in changed} == changed, path
