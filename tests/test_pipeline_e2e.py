"""End to end on a small hand-built lake whose footfall is worked out by hand (k_min = 10).

The lake (date D, plus a second date D2); ids are the people's numbers (``msisdn(n)``):

======  ===========================================  ===============================  ===========
who     what                                         where / when                     expected
======  ===========================================  ===============================  ===========
A       10 consumers F 25-34 (102 opted out and      C1 10:15 and 15:15              released, 10
        back in before D)                                                             (twice)
O1      110: opted out before D, F 25-34             C1 10:30                         excluded
B       9 consumers M 35-44                          C3 10:20                         suppressed
O2      209: opted out *after* D, M 35-44            C3 10:40                         excluded
MIN     10 minors (16), F                            C1 10:05                         excluded
BIZ     10 business lines F 25-34                    C3 11:00                         excluded
R       10 consumers F 45-54                         C2 (re-planned on D) 12:10       released at
                                                                                      the new site
X       10 consumers M 55-64, cell C1 + own fix      fix at FIX 13:30                 released at FIX
U       10 MSISDNs not in the CRM                    C3 14:00                         released,
                                                                                      unknown/unknown
bad     one row per bad-row class                                                     quarantine
======  ===========================================  ===============================  ===========
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h3
import pytest
from pyspark.sql import functions as F

from contract.schemas import CELLS, NETWORK_EVENTS, PRIVACY_PREFERENCES, SUBSCRIBERS
from jobs import pipeline
from mobility.config import load_config
from mobility.io import table_path
from mobility.spark import GENERATED_CODE
from tests.conftest import ROOT, write_conf
from transforms.hashing import hmac_pads

pytestmark = pytest.mark.e2e

D, D2 = dt.date(2026, 10, 5), dt.date(2026, 10, 6)
K = 10
SITES = {"C1": (49.4521, 11.0767), "C2_old": (49.40, 11.00), "C2": (49.4600, 11.1200), "C3": (49.5000, 11.2000)}
FIX = (49.4300, 11.0300)
RES = 8


def h3of(site: tuple[float, float]) -> str:
    return h3.geo_to_h3(site[0], site[1], RES)


def msisdn(n: int) -> str:
    return f"491700000{n:04d}"


def at(day: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


A, B, MINORS, BIZ, R_, X_, U_ = (range(100, 110), range(200, 209), range(300, 310), range(400, 410),
                                  range(500, 510), range(600, 610), range(9001, 9011))
O1, O2, BACK_IN = 110, 209, 102


def _born(year: int, i: int) -> dt.date:
    return dt.date(year, 1 + i % 12, 1 + i % 28)


# people: number -> (birth_date, gender, customer_type); 90xx are missing from the CRM
PEOPLE = {
    **{n: (_born(1995, n), "F", "consumer") for n in (*A, O1)},
    **{n: (_born(1985, n), "M", "consumer") for n in (*B, O2)},
    **{n: (_born(2010, n), "F", "consumer") for n in MINORS},
    **{n: (_born(1995, n), "F", "business") for n in BIZ},
    **{n: (_born(1975, n), "F", "consumer") for n in R_},
    **{n: (_born(1965, n), "M", "consumer") for n in X_},
}


def ev(n: int, day: dt.date, hhmm: str, cell: str, *, etype: str = "data", fix=None, number: str | None = None):
    num = msisdn(n) if number is None else number
    lat, lng = fix if fix else (None, None)
    return (num, f"26203{n:010d}", f"35{n:013d}", at(day, hhmm), etype, cell, lat, lng)


def events_for(day: dt.date) -> list[tuple]:
    rows = [ev(n, day, "10:15", "C1") for n in A] + [ev(n, day, "15:15", "C1") for n in A]
    if day == D2:
        return rows
    rows += [ev(O1, day, "10:30", "C1")]
    rows += [ev(n, day, "10:20", "C3") for n in B] + [ev(O2, day, "10:40", "C3")]
    rows += [ev(n, day, "10:05", "C1") for n in MINORS]
    rows += [ev(n, day, "11:00", "C3", etype="voice") for n in BIZ]
    rows += [ev(n, day, "12:10", "C2", etype="sms") for n in R_]
    rows += [ev(n, day, "13:30", "C1", fix=FIX) for n in X_]
    rows += [ev(n, day, "14:00", "C3", etype="handover") for n in U_]
    rows += [
        ev(60, day, "09:00", "C1", number=""),                       # missing_msisdn ("" counts as missing)
        ev(61, day, "09:00", "C1", number="+49-170-0000061"),        # malformed_msisdn (hyphens: not normalizable)
        ev(62, day, "09:00", "ZZ-UNKNOWN"),                          # unknown_cell
        ev(63, day - dt.timedelta(days=1), "23:30", "C1"),           # event_ts_outside_date
        ev(64, day, "09:00", "C1", etype="mms"),                     # unknown_event_type
    ]
    return rows


RAW_IDS = {r[i] for day in (D, D2) for r in events_for(day) for i in (0, 1, 2) if r[i]}


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    conf = write_conf(
        tmp,
        privacy={"k_min": K},
        quality={"max_quarantine_share": 0.5, "min_known_cell_share": 0.5, "min_wellformed_msisdn_share": 0.5},
    )
    cfg = load_config(conf)
    raw = cfg.lake.raw
    for day in (D, D2):
        spark.createDataFrame(events_for(day), NETWORK_EVENTS).coalesce(1).write.parquet(
            f"{raw}/network_events/event_date={day}")
    spark.createDataFrame(
        [(msisdn(n), b, g, c) for n, (b, g, c) in PEOPLE.items()], SUBSCRIBERS).write.parquet(f"{raw}/subscribers")
    spark.createDataFrame([
        (msisdn(BACK_IN), True, False, at(dt.date(2026, 1, 1), "08:00")),
        (msisdn(BACK_IN), False, False, at(dt.date(2026, 3, 1), "08:00")),
        (msisdn(O1), True, False, at(dt.date(2026, 1, 1), "08:00")),
        (msisdn(O2), False, True, at(dt.date(2026, 1, 1), "08:00")),
        (msisdn(O2), True, False, at(D + dt.timedelta(days=10), "08:00")),  # after D, before the run
    ], PRIVACY_PREFERENCES).write.parquet(f"{raw}/privacy_preferences")
    old = dt.date(2020, 1, 1)
    spark.createDataFrame([
        ("C1", *SITES["C1"], "4G", old, None),
        ("C2", *SITES["C2_old"], "3G", old, D),
        ("C2", *SITES["C2"], "5G", D, None),
        ("C3", *SITES["C3"], "4G", old, None),
    ], CELLS).write.parquet(f"{raw}/cells")
    return conf, cfg


def run(conf: Path, day: dt.date, capsys) -> tuple[int, str]:
    code = pipeline.main(["--conf", str(conf), "--date", day.isoformat()])
    out = capsys.readouterr()
    return code, out.out + out.err


def read(spark, cfg, table: str, day: dt.date | None = None):
    df = spark.read.format("delta").load(table_path(cfg.lake, table))
    return df if day is None else df.filter(F.col("date") == F.lit(day))


def footfall_rows(spark, cfg, day):
    return sorted(
        (r.window_start.strftime("%H:%M"), r.h3_cell, r.age_band, r.gender, r.visitors, r.h3_resolution)
        for r in read(spark, cfg, "footfall", day).collect()
    )


EXPECTED_D = sorted([
    ("10:00", h3of(SITES["C1"]), "25-34", "female", 10, RES),
    ("15:00", h3of(SITES["C1"]), "25-34", "female", 10, RES),
    ("12:00", h3of(SITES["C2"]), "45-54", "female", 10, RES),
    ("13:00", h3of(FIX), "55-64", "male", 10, RES),
    ("14:00", h3of(SITES["C3"]), "unknown", "unknown", 10, RES),
])
EXPECTED_D2 = sorted([
    ("10:00", h3of(SITES["C1"]), "25-34", "female", 10, RES),
    ("15:00", h3of(SITES["C1"]), "25-34", "female", 10, RES),
])


@pytest.fixture(scope="module")
def runs(spark, lake, keys_module):
    """D2 first, then D twice (the re-run must change nothing)."""
    conf, cfg = lake
    results = {}
    for label, day in (("d2", D2), ("d", D), ("d_again", D)):
        code = pipeline.main(["--conf", str(conf), "--date", day.isoformat()])
        results[label] = code
        if label == "d":
            results["d_footfall"] = footfall_rows(spark, cfg, D)
            results["d_anon"] = read(spark, cfg, "anonymized_events", D).count()
            results["d2_rows"] = read(spark, cfg, "footfall", D2).count()
    return results


@pytest.fixture(scope="module")
def keys_module():
    import secrets as pysecrets

    old = {k: os.environ.get(k) for k in ("MI_NETWORK_KEY", "MI_DAILY_KEY")}
    keys = {"network": pysecrets.token_hex(32), "daily": pysecrets.token_hex(32)}
    os.environ["MI_NETWORK_KEY"], os.environ["MI_DAILY_KEY"] = keys["network"], keys["daily"]
    yield keys
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_footfall_is_what_we_worked_out_by_hand(spark, lake, runs):
    _, cfg = lake
    assert runs["d2"] == runs["d"] == runs["d_again"] == 0
    assert footfall_rows(spark, cfg, D) == EXPECTED_D
    assert footfall_rows(spark, cfg, D2) == EXPECTED_D2


def test_every_released_row_has_at_least_k(spark, lake, runs):
    _, cfg = lake
    assert read(spark, cfg, "footfall").filter(F.col("visitors") < K).count() == 0


def test_rerun_replaces_exactly_its_date(spark, lake, runs):
    _, cfg = lake
    assert footfall_rows(spark, cfg, D) == runs["d_footfall"]  # same table after the re-run, no duplicates
    assert read(spark, cfg, "anonymized_events", D).count() == runs["d_anon"]
    assert read(spark, cfg, "footfall", D2).count() == runs["d2_rows"] == len(EXPECTED_D2)  # untouched
    for table in ("pseudonymized_events", "anonymized_events", "quarantine", "footfall"):
        dates = {r[0] for r in read(spark, cfg, table).select("date").distinct().collect()}
        assert dates <= {D, D2}, table


def test_each_bad_row_class_lands_in_quarantine(spark, lake, runs):
    _, cfg = lake
    q = read(spark, cfg, "quarantine", D)
    assert sorted(r.reason for r in q.collect()) == sorted(
        ["missing_msisdn", "malformed_msisdn", "unknown_cell", "event_ts_outside_date", "unknown_event_type"])
    assert {r.source for r in q.collect()} == {"network_events"}
    record = json.loads(q.filter(F.col("reason") == "unknown_cell").first().record)
    assert record["cell_id"] == "ZZ-UNKNOWN" and len(record["msisdn_hmac"]) == 64 and len(record["imsi_hmac"]) == 64


def test_summary_counts_reconcile(lake, runs):
    _, cfg = lake
    summary = json.loads(Path(f"{cfg.lake.reports}/runs/{D}/pipeline.json").read_text())["summary"]
    s1 = summary["pseudonymize"]
    assert s1["rows_in"] == len(events_for(D))
    assert (s1["excluded_opted_out"], s1["quarantined_total"], s1["excluded_minor"], s1["excluded_business"]) == (
        2, 5, len(MINORS), len(BIZ))
    assert s1["rows_in"] == (s1["excluded_opted_out"] + s1["quarantined_total"] + s1["excluded_minor"]
                             + s1["excluded_business"] + s1["rows_out"])
    assert sum(s1["quarantined"].values()) == s1["quarantined_total"]
    assert summary["anonymize"]["rows_in"] == s1["rows_out"]
    assert summary["aggregate"]["footfall_released"] == len(EXPECTED_D)
    assert summary["aggregate"]["footfall_suppressed_below_k"] == 1  # group B, the only group of its cell-window
    assert summary["aggregate"]["footfall_suppressed_secondary"] == 0


def test_opted_out_subscribers_change_nothing(spark, lake, runs, tmp_path):
    """Removing the opted-out people from the raw lake gives the identical release."""
    conf, cfg = lake
    pseudo = read(spark, cfg, "pseudonymized_events", D)
    n1 = hmac.new(bytes.fromhex(os.environ["MI_NETWORK_KEY"]), msisdn(O1).encode(), hashlib.sha256).hexdigest()
    n2 = hmac.new(bytes.fromhex(os.environ["MI_NETWORK_KEY"]), msisdn(O2).encode(), hashlib.sha256).hexdigest()
    assert pseudo.filter(F.col("pseudo_id").isin(n1, n2)).count() == 0
    n3 = hmac.new(bytes.fromhex(os.environ["MI_NETWORK_KEY"]), msisdn(BACK_IN).encode(), hashlib.sha256).hexdigest()
    assert pseudo.filter(F.col("pseudo_id") == n3).count() == 2  # opted back in: counted
    # The same lake without them -> the same footfall.
    import shutil

    raw2 = tmp_path / "raw"
    shutil.copytree(cfg.lake.raw, raw2)
    events = spark.read.parquet(f"{cfg.lake.raw}/network_events/event_date={D}")
    events.filter(~F.col("msisdn").isin(msisdn(O1), msisdn(O2))).coalesce(1).write.mode("overwrite").parquet(
        str(raw2 / "network_events" / f"event_date={D}"))
    code = pipeline.main(["--conf", str(conf), "--date", D.isoformat(),
                          "--set", f"lake.raw={raw2}", "--set", f"lake.curated={tmp_path / 'cur'}",
                          "--set", f"lake.insights={tmp_path / 'ins'}", "--set", f"lake.reports={tmp_path / 'rep'}"])
    assert code == 0
    other = sorted((r.window_start, r.h3_cell, r.age_band, r.gender, r.visitors)
                   for r in spark.read.format("delta").load(str(tmp_path / "ins" / "footfall")).collect())
    mine = sorted((r.window_start, r.h3_cell, r.age_band, r.gender, r.visitors)
                  for r in read(spark, cfg, "footfall", D).collect())
    assert other == mine


def test_daily_ids_differ_across_days_and_are_stable_within_one(spark, lake, runs):
    _, cfg = lake
    network, master = bytes.fromhex(os.environ["MI_NETWORK_KEY"]), bytes.fromhex(os.environ["MI_DAILY_KEY"])
    pseudo = hmac.new(network, msisdn(A[0]).encode(), hashlib.sha256).hexdigest()

    def daily(day):
        k = hmac.new(master, f"daily/{day}".encode(), hashlib.sha256).digest()
        return hmac.new(k, pseudo.encode(), hashlib.sha256).hexdigest()

    anon = read(spark, cfg, "anonymized_events")
    on_d = anon.filter((F.col("date") == F.lit(D)) & (F.col("daily_id") == daily(D)))
    on_d2 = anon.filter((F.col("date") == F.lit(D2)) & (F.col("daily_id") == daily(D2)))
    assert on_d.count() == 2 and on_d2.count() == 2  # 10:00 and 15:00 windows, one id within the day
    assert daily(D) != daily(D2)
    assert anon.filter(F.col("daily_id") == pseudo).count() == 0  # stage-1 pseudonyms never reach stage 2


def test_no_raw_identifier_in_any_string_column(spark, lake, runs):
    _, cfg = lake
    tables = [p for zone in (cfg.lake.curated, cfg.lake.insights) for p in Path(zone).iterdir()
              if (p / "_delta_log").is_dir()]
    assert {p.name for p in tables} >= {"pseudonymized_events", "anonymized_events", "quarantine", "footfall"}
    any_id = "|".join(re.escape(i) for i in sorted(RAW_IDS))  # one regex per column keeps the plan shallow
    raw_events = spark.read.parquet(f"{cfg.lake.raw}/network_events")
    assert raw_events.filter(F.col("imei").rlike(any_id)).count() == raw_events.count()  # the probe finds ids
    for path in tables:
        df = spark.read.format("delta").load(str(path))
        strings = [f.name for f in df.schema.fields if f.dataType.simpleString() == "string"]
        assert not {"msisdn", "imsi", "imei", "birth_date", "latitude_raw"} & set(df.columns), path.name
        hit = F.lit(False)
        for c in strings:
            hit = hit | F.coalesce(F.col(c).rlike(any_id), F.lit(False))
        assert df.filter(hit).count() == 0, path.name


def test_anonymized_events_drop_exact_time_and_place(spark, lake, runs):
    _, cfg = lake
    anon = read(spark, cfg, "anonymized_events", D)
    assert set(anon.columns) >= {"date", "daily_id", "window_start", "h3_cell", "age_band", "gender"}
    assert not {"event_ts", "latitude", "longitude", "cell_id", "pseudo_id"} & set(anon.columns)
    assert anon.filter(F.minute("window_start") != 0).count() == 0


def test_missing_secret_fails_before_anything_is_written(lake, tmp_path, monkeypatch, capsys):
    conf, _ = lake
    monkeypatch.delenv("MI_DAILY_KEY", raising=False)
    code = pipeline.main(["--conf", str(conf), "--date", D.isoformat(),
                          "--set", f"lake.curated={tmp_path / 'cur'}", "--set", f"lake.insights={tmp_path / 'ins'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: missing secret") and "MI_DAILY_KEY" in err[-1]
    assert not (tmp_path / "cur").exists() and not (tmp_path / "ins").exists()


def test_missing_partition_is_a_clear_error(lake, keys_module, capsys):
    conf, _ = lake
    code = pipeline.main(["--conf", str(conf), "--date", "2026-01-01"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "event_date=2026-01-01" in err[-1] and "not found" in err[-1]


def test_cli_run_leaks_no_key_into_logs_plans_or_event_logs(lake, tmp_path, keys_module):
    """A real `python -m jobs.pipeline` with Spark event logging on; then grep everything it left.

    The same run shows the operator's console: short, one progress line per stage start
    and end, Spark's own log in a file (one CLI run serves both checks: it costs minutes).
    """
    conf, _ = lake
    events_dir = tmp_path / "eventlog"
    events_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYSPARK_PYTHON": sys.executable, "MI_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "jobs.pipeline", "--conf", str(conf), "--date", D.isoformat(),
           "--set", f"lake.curated={tmp_path / 'cur'}", "--set", f"lake.insights={tmp_path / 'ins'}",
           "--set", f"lake.reports={tmp_path / 'rep'}",
           "--set", "spark.conf.spark.eventLog.enabled=true",
           "--set", f"spark.conf.spark.eventLog.dir=file://{events_dir}",
           "--set", "spark.conf.spark.eventLog.compress=false",  # Spark 4 compresses by default: keep it greppable
           # generated code, as in production: no key may reach it either
           *(arg for key, value in GENERATED_CODE.items() for arg in ("--set", f"spark.conf.{key}={value}"))]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pseudonymize.rows_in" in proc.stdout and "aggregate.footfall_released" in proc.stdout
    # The console: short, progress per stage, Spark's warnings in the run's log file only.
    lines = proc.stdout.splitlines() + proc.stderr.splitlines()
    print(f"console: {len(lines)} lines", *lines, sep="\n")
    assert len(lines) < 60
    assert proc.stdout.startswith(f"== pipeline {D.isoformat()} ==\n")
    stages = [ln for ln in proc.stderr.splitlines() if ln.startswith("stage ")]
    assert [s.split(":")[0].rstrip(" …") for s in stages] == [
        f"stage {i}/3 {n}" for i, n in ((1, "pseudonymize"), (1, "pseudonymize"), (2, "anonymize"), (2, "anonymize"),
                                        (3, "aggregate"), (3, "aggregate"))]
    rows_out = len(events_for(D)) - 2 - 5 - len(MINORS) - len(BIZ)  # opted out, quarantined, minors, business
    assert f"stage 1/3 pseudonymize: {rows_out} rows out in" in proc.stderr
    assert not any(s in proc.stderr for s in ("resolution report", ":: ", "WARN ", "Traceback"))
    log = tmp_path / "rep" / "runs" / D.isoformat() / "pipeline.log"
    assert proc.stderr.strip().splitlines()[-1] == f"log: {log}"
    assert " WARN " in log.read_text()  # Spark's warnings went to the file
    texts = [proc.stdout, proc.stderr]
    texts += [p.read_text(errors="replace") for p in events_dir.rglob("*") if p.is_file()]
    texts += [p.read_text(errors="replace") for p in (tmp_path / "rep").rglob("*.json")]
    assert any("SparkListenerSQLExecutionStart" in t for t in texts)  # the event log holds the plans
    blob = "\n".join(texts).lower()
    network, master = bytes.fromhex(keys_module["network"]), bytes.fromhex(keys_module["daily"])
    daily = hmac.new(master, f"daily/{D}".encode(), hashlib.sha256).digest()
    needles = {keys_module["network"], keys_module["daily"], daily.hex()}
    for key in (network, daily):
        ipad, opad = hmac_pads(key)
        needles |= {ipad.hex()[:32], opad.hex()[:32]}
    for needle in needles:
        assert needle.lower() not in blob
    for raw_id in RAW_IDS:
        assert raw_id.lower() not in blob, raw_id
