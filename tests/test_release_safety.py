"""Releases against an informed attacker, and a release that survives a crash (end to end, k_min = 10).

One small lake, one date D: 25 consumers (F 25-34) in cell C1 between 10:00 and 11:00,
and 12 more (M 35-44) there at 15:xx. Each test below changes the lake or the command
line the way an operator (or an attacker's accomplice) would and reads the tables the
way a buyer would.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h3
import pyarrow.parquet as pq
import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from contract.schemas import CELLS, NETWORK_EVENTS, PRIVACY_PREFERENCES, SUBSCRIBERS
from jobs import aggregate, anonymize, pipeline, pseudonymize
from mobility.config import load_config
from mobility.io import table_path
from mobility.ledger import fingerprint, read_ledger, read_pinned
from mobility.release import read_release
from tests.conftest import ROOT, write_conf

pytestmark = pytest.mark.e2e

D, D2, D3 = dt.date(2026, 10, 5), dt.date(2026, 10, 6), dt.date(2026, 10, 7)
K = 10
C1 = (49.4521, 11.0767)
WOMEN, MEN, LATE = range(1, 26), range(100, 112), range(200, 215)
TABLES = ("pseudonymized_events", "quarantine", "anonymized_events", "anonymized_trips", "footfall", "presence",
          "od_flows")


def msisdn(n: int) -> str:
    return f"49171000{n:05d}"


def event(n: int, day: dt.date, hhmm: str) -> tuple:
    ts = dt.datetime.combine(day, dt.time.fromisoformat(hhmm))
    return (msisdn(n), None, None, ts, "data", "C1", None, None)


def day_events(day: dt.date, *, late: bool = False) -> list[tuple]:
    rows = [event(n, day, f"10:{n % 60:02d}") for n in WOMEN] + [event(n, day, f"15:{n % 60:02d}") for n in MEN]
    return rows + ([event(n, day, f"10:{n % 60:02d}") for n in LATE] if late else [])


def write_events(spark, cfg, day: dt.date, rows: list[tuple]) -> None:
    spark.createDataFrame(rows, NETWORK_EVENTS).coalesce(1).write.mode("overwrite").parquet(
        f"{cfg.lake.raw}/network_events/event_date={day}")


def write_preferences(spark, cfg, opted_out: list[int]) -> None:
    at = dt.datetime(2026, 10, 8, 9, 0)  # after the event dates, before the re-run
    rows = [(msisdn(n), True, False, at) for n in opted_out] or [(msisdn(999), False, False, at)]
    spark.createDataFrame(rows, PRIVACY_PREFERENCES).coalesce(1).write.mode("overwrite").parquet(
        f"{cfg.lake.raw}/privacy_preferences")


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release")
    conf = write_conf(tmp, privacy={"k_min": K})
    cfg = load_config(conf)
    people = ([(msisdn(n), dt.date(1995, 1, 1), "F", "consumer") for n in (*WOMEN, *LATE)]
              + [(msisdn(n), dt.date(1985, 1, 1), "M", "consumer") for n in MEN])
    spark.createDataFrame(people, SUBSCRIBERS).write.parquet(f"{cfg.lake.raw}/subscribers")
    spark.createDataFrame([("C1", *C1, "4G", dt.date(2020, 1, 1), None)], CELLS).write.parquet(f"{cfg.lake.raw}/cells")
    write_preferences(spark, cfg, [])
    write_events(spark, cfg, D, day_events(D))
    write_events(spark, cfg, D2, day_events(D2))
    write_events(spark, cfg, D3, [event(n, D3, "10:10") for n in WOMEN])  # everyone here opts out below
    return conf, cfg


def argv(conf: Path, day: dt.date, *extra: str) -> list[str]:
    return ["--conf", str(conf), "--date", day.isoformat(), *extra]


def released(spark, cfg, day: dt.date) -> dict[str, list[tuple]]:
    out = {}
    for table, df in read_release(spark, cfg.lake, day).items():
        value = "trips" if table == "od_flows" else "visitors"
        keys = [c for c in df.columns if c not in (value, "h3_resolution", "population_estimate")]
        out[table] = sorted(tuple(r[c] for c in (*keys, value)) for r in df.collect())
    return out


def version(spark, cfg, table: str) -> int:
    return DeltaTable.forPath(spark, table_path(cfg.lake, table)).history(1).first()["version"]


@pytest.fixture(scope="module")
def first(spark, lake, keys_module):
    conf, cfg = lake
    assert pipeline.main(argv(conf, D)) == 0
    assert pipeline.main(argv(conf, D2)) == 0
    return released(spark, cfg, D)


@pytest.fixture(scope="module")
def keys_module():
    import secrets as pysecrets

    old = {k: os.environ.get(k) for k in ("MI_NETWORK_KEY", "MI_DAILY_KEY")}
    os.environ["MI_NETWORK_KEY"], os.environ["MI_DAILY_KEY"] = pysecrets.token_hex(32), pysecrets.token_hex(32)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_first_release_and_its_ledger(spark, lake, first):
    _, cfg = lake
    cell = h3.geo_to_h3(*C1, 8)
    assert first["footfall"] == [(D, dt.datetime(2026, 10, 5, 10), cell, "25-34", "female", 25),
                                 (D, dt.datetime(2026, 10, 5, 15), cell, "35-44", "male", 12)]
    assert first["presence"] == [(D, dt.datetime(2026, 10, 5, 10), cell, 25),
                                 (D, dt.datetime(2026, 10, 5, 15), cell, 12)]
    ledger = read_ledger(spark, cfg.lake, "insights").filter(F.col("date") == F.lit(D)).collect()
    assert sorted(r["table_name"] for r in ledger) == ["footfall", "od_flows", "presence"]
    assert {r["run_id"] for r in ledger} == {ledger[0]["run_id"]}  # one release, one commit
    assert {(r["k_min"], r["h3_resolution"], r["window_minutes"], r["mode"], r["suppression"]) for r in ledger} == {
        (K, 8, 60, "k_anonymity", "remainder-guard-v1")}
    assert {r["table_name"]: r["rows"] for r in ledger} == {"footfall": 2, "presence": 2, "od_flows": 0}
    for r in ledger:  # the version the ledger names holds exactly the release (D2 was released after it)
        at = spark.read.format("delta").option("versionAsOf", r["version"]).load(table_path(cfg.lake, r["table_name"]))
        assert at.filter(F.col("date") == F.lit(D)).count() == r["rows"]
        # the digest (from the release profile) is the definition's, over the rows as read back
        assert fingerprint(at.filter(F.col("date") == F.lit(D))) == (r["rows"], r["digest"]), r["table_name"]
        assert r["version"] < version(spark, cfg, r["table_name"]) or r["table_name"] == "od_flows"


def test_release_log_holds_no_row_values(spark, lake, first):
    """Delta's per-file statistics would show min = max = the row of a one-row file: release tables keep none."""
    _, cfg = lake
    for table in ("footfall", "presence", "od_flows"):
        for f in (Path(table_path(cfg.lake, table)) / "_delta_log").glob("*.json"):
            for line in f.read_text().splitlines():
                add = json.loads(line).get("add")
                if add and add.get("stats"):
                    stats = json.loads(add["stats"])
                    assert set(stats) <= {"numRecords", "tightBounds"}, (table, stats)


def test_republish_after_one_opt_out_is_refused(spark, lake, first, capsys):
    """The attack: re-run a date after one person opted out and subtract the two versions."""
    conf, cfg = lake
    before = {t: version(spark, cfg, t) for t in ("footfall", "presence", "od_flows")}
    write_preferences(spark, cfg, [WOMEN[0]])
    try:
        code = pipeline.main(argv(conf, D))
    finally:
        write_preferences(spark, cfg, [])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "was released before" in err[-1] and "footfall" in err[-1] and "1 small_difference" in err[-1]
    assert {t: version(spark, cfg, t) for t in before} == before  # the release zone is unchanged
    assert released(spark, cfg, D) == first


def test_republish_under_another_policy_is_refused(spark, lake, first, capsys):
    conf, cfg = lake
    before = {t: version(spark, cfg, t) for t in ("footfall", "presence", "od_flows")}
    code = pipeline.main(argv(conf, D, "--set", "generalization.window_minutes=30"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "under another policy" in err[-1] and "window_minutes: 60 -> 30" in err[-1]
    assert {t: version(spark, cfg, t) for t in before} == before
    assert released(spark, cfg, D) == first


def test_identical_republish_is_allowed_and_purges_the_superseded_version(spark, lake, first):
    conf, cfg = lake
    old = {t: version(spark, cfg, t) for t in ("footfall", "presence")}
    assert pipeline.main(argv(conf, D)) == 0
    assert released(spark, cfg, D) == first
    for table, v in old.items():
        assert version(spark, cfg, table) > v
        stale = spark.read.format("delta").option("versionAsOf", v).load(table_path(cfg.lake, table))
        missing = [f for f in stale.filter(F.col("date") == F.lit(D)).inputFiles()
                   if not Path(f.removeprefix("file:")).exists()]
        assert missing, f"{table}: the superseded version of the date is still readable"


def test_an_empty_date_after_full_ones_publishes_every_table_empty(spark, lake, first):
    conf, cfg = lake
    write_preferences(spark, cfg, list(WOMEN))
    try:
        assert pipeline.main(argv(conf, D3)) == 0
    finally:
        write_preferences(spark, cfg, [])
    for table in TABLES:
        rows = spark.read.format("delta").load(table_path(cfg.lake, table)).filter(F.col("date") == F.lit(D3))
        assert rows.count() == 0, table
    for zone in ("curated", "insights"):
        ledger = {r["table_name"]: r["rows"] for r in
                  read_ledger(spark, cfg.lake, zone).filter(F.col("date") == F.lit(D3)).collect()}
        if zone == "curated":  # the opted-out set stage 1 honoured: everyone of the date
            assert ledger.pop("opt_outs") == len(WOMEN)
        assert set(ledger.values()) == {0}, zone


def test_curated_rows_follow_the_daily_id_not_the_stable_pseudonym(spark, lake, first):
    """Files of two days cannot be lined up by row position: rows are in daily-id order."""
    _, cfg = lake
    for table in ("anonymized_events", "anonymized_trips"):
        for day in (D, D2):
            for f in sorted(Path(table_path(cfg.lake, table), f"date={day}").glob("*.parquet")):
                ids = pq.read_table(f, columns=["daily_id"]).column("daily_id").to_pylist()
                assert ids == sorted(ids), (table, day, f.name)
    day1 = {r["daily_id"] for r in read_pinned(spark, cfg.lake, "anonymized_events", D, what="a").collect()}
    day2 = {r["daily_id"] for r in read_pinned(spark, cfg.lake, "anonymized_events", D2, what="a").collect()}
    assert len(day1) == len(day2) == len(WOMEN) + len(MEN) and not day1 & day2


# --- a crash between two table commits (issue: a release survives a crash) ----------------------

def run_until_paused(conf: Path, job: str, day: dt.date, after: str, tmp_path: Path) -> None:
    """Start ``python -m jobs.<job>``, wait until it has committed ``after``, and SIGKILL it there."""
    marker = tmp_path / f"paused-{job}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYSPARK_PYTHON": sys.executable,
           "MI_TEST_PAUSE_AFTER": after, "MI_TEST_PAUSE_FILE": str(marker)}
    proc = subprocess.Popen([sys.executable, "-m", f"jobs.{job}", *argv(conf, day)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while not marker.exists():
            assert proc.poll() is None, f"{job} ended before the pause point: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, f"{job} never reached the pause point"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM, like the OOM killer would
        proc.wait()


def test_stage3_killed_between_table_commits_heals_on_the_next_run(spark, lake, first, tmp_path, capsys):
    conf, cfg = lake
    write_events(spark, cfg, D, day_events(D, late=True))  # 15 more people: a release that may replace the first
    try:
        assert pseudonymize.main(argv(conf, D)) == 0
        assert anonymize.main(argv(conf, D)) == 0
        capsys.readouterr()
        run_until_paused(conf, "aggregate", D, "footfall", tmp_path)
        # footfall moved on, presence did not: the raw tables are a mix of two runs ...
        latest = spark.read.format("delta").load(table_path(cfg.lake, "footfall")).filter(F.col("date") == F.lit(D))
        assert sorted(r["visitors"] for r in latest.collect()) == [12, 40]
        # ... but the documented reader still returns the previous complete release.
        assert released(spark, cfg, D) == first

        assert aggregate.main(argv(conf, D)) == 0
        out = capsys.readouterr().out
        assert "recovered" in out and "footfall: restored version" in out
        now = released(spark, cfg, D)
        assert [r[-1] for r in now["footfall"]] == [r[-1] for r in now["presence"]] == [40, 12]
        ledger = read_ledger(spark, cfg.lake, "insights")
        assert ledger.filter(F.col("event") == "recovered").select("table_name").collect()[0][0] == "footfall"
    finally:
        write_events(spark, cfg, D, day_events(D))


def test_stage1_killed_between_its_two_commits_heals_on_the_next_run(spark, lake, first, tmp_path, capsys):
    conf, cfg = lake
    before = read_pinned(spark, cfg.lake, "pseudonymized_events", D2, what="p").count()
    write_events(spark, cfg, D2, day_events(D2, late=True))
    try:
        run_until_paused(conf, "pseudonymize", D2, "pseudonymized_events", tmp_path)
        latest = spark.read.format("delta").load(table_path(cfg.lake, "pseudonymized_events"))
        assert latest.filter(F.col("date") == F.lit(D2)).count() == before + len(LATE)
        assert read_pinned(spark, cfg.lake, "pseudonymized_events", D2, what="p").count() == before
        capsys.readouterr()
        assert pseudonymize.main(argv(conf, D2)) == 0
        out = capsys.readouterr().out
        assert "pseudonymized_events: restored version" in out
        assert read_pinned(spark, cfg.lake, "pseudonymized_events", D2, what="p").count() == before + len(LATE)
    finally:
        write_events(spark, cfg, D2, day_events(D2))
