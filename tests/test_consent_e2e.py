"""Consent and data lifecycle end to end on a small hand-built lake (k_min = 10).

The lake (dates D and D2; events written plainly unless said otherwise):

======  ==========================================  =============================================
who     what                                        expected
======  ==========================================  =============================================
G       12 consumers F 25-34 at C1 10:15, D and D2  footfall 12 on D. G1 opts out after D's release
        (G0's events written '+49...')              and D2's stage 2: stage 3 alone releases D2 with
                                                    11, and a stage-3 re-run of D is refused (D stays
                                                    12). G2 opts out next: a stage-2-only re-run of
                                                    D2 drops G1 and G2
Q       = G5, plus one event at an unknown cell     quarantined, under an id that joins nowhere
OUT     opted out as '0049...'                      excluded
OUTB    opted out as '+49 170 ...' (blanks), events excluded, its bad event not quarantined
        with a trailing blank, one at an unknown cell
MIN     a minor, CRM row '+49 170 ...'; one good,   excluded, its bad event not quarantined
        one bad event
BIZ     a business line, CRM row '0049...'          excluded
X       one consumer at C3, on D only               suppressed (below k); expires with retention
bad     one MSISDN that cannot be normalized        quarantined (malformed_msisdn)
======  ==========================================  =============================================

Then: erasure of Q across both dates (bytes of every remaining file scanned), and
retention expiring D of ``pseudonymized_events`` (bytes scanned, time travel fails).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import secrets as pysecrets
from pathlib import Path

import h3
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from contract.schemas import CELLS, NETWORK_EVENTS, PRIVACY_PREFERENCES, SUBSCRIBERS
from contract.vocabulary import ERASED_TABLES
from jobs import aggregate, anonymize, erase, pipeline, pseudonymize, retention
from mobility import ledger
from mobility.config import load_config
from mobility.io import table_path
from tests.conftest import write_conf

pytestmark = pytest.mark.e2e

D, D2 = dt.date(2026, 10, 5), dt.date(2026, 10, 6)
K = 10
C1, C3 = (49.4521, 11.0767), (49.5000, 11.2000)
G = [f"4917100000{n:03d}" for n in range(12)]
OUT, OUTB, MIN, BIZ, X = "4917200000001", "4917200000002", "4917200000003", "4917200000004", "4917200000005"
Q = G[5]
CURATED = ("pseudonymized_events", "anonymized_events", "anonymized_trips", "quarantine", "opt_outs")


def at(day: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


def ev(number: str, day: dt.date, hhmm: str, cell: str) -> tuple:
    return (number, "262019999999999", "35999999999999", at(day, hhmm), "data", cell, None, None)


def events_for(day: dt.date) -> list[tuple]:
    rows = [ev("+" + G[0], day, "10:15", "C1")] + [ev(m, day, "10:15", "C1") for m in G[1:]]
    if day == D2:
        return rows
    return [
        *rows,
        ev(Q, day, "11:00", "ZZ"),
        ev(OUT, day, "10:15", "C1"),
        ev(OUTB + " ", day, "10:15", "C1"), ev(OUTB, day, "11:00", "ZZ"),
        ev(MIN, day, "10:15", "C1"), ev(MIN, day, "11:00", "ZZ"),
        ev(BIZ, day, "10:15", "C1"),
        ev(X, day, "10:15", "C3"),
        ev("49-171-0000099", day, "10:15", "C1"),
    ]


def spaced(m: str) -> str:
    return f"+{m[:2]} {m[2:5]} {m[5:9]} {m[9:]}"


@pytest.fixture(scope="module")
def keys_env():
    old = {k: os.environ.get(k) for k in ("MI_NETWORK_KEY", "MI_DAILY_KEY")}
    keys = {"network": pysecrets.token_hex(32), "daily": pysecrets.token_hex(32)}
    os.environ["MI_NETWORK_KEY"], os.environ["MI_DAILY_KEY"] = keys["network"], keys["daily"]
    yield {k: bytes.fromhex(v) for k, v in keys.items()}
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def pseudo(keys, m: str) -> str:
    return hmac.new(keys["network"], m.encode(), hashlib.sha256).hexdigest()


def daily(keys, m: str, day: dt.date) -> str:
    k = hmac.new(keys["daily"], f"daily/{day}".encode(), hashlib.sha256).digest()
    return hmac.new(k, pseudo(keys, m).encode(), hashlib.sha256).hexdigest()


def qid(keys, m: str) -> str:
    return hmac.new(keys["network"], f"quarantine/msisdn/{m}".encode(), hashlib.sha256).hexdigest()


def add_preference(spark, cfg, written: str, *, opt_out: bool, when: dt.datetime) -> None:
    spark.createDataFrame([(written, opt_out, False, when)], PRIVACY_PREFERENCES).write.mode("append").parquet(
        f"{cfg.lake.raw}/privacy_preferences")


def read(spark, cfg, table: str, day: dt.date | None = None):
    df = spark.read.format("delta").load(table_path(cfg.lake, table))
    return df if day is None else df.filter(F.col("date") == F.lit(day))


def footfall(spark, cfg, day: dt.date) -> list[tuple]:
    return sorted((r.window_start.strftime("%H:%M"), r.h3_cell, r.age_band, r.gender, r.visitors)
                  for r in read(spark, cfg, "footfall", day).collect())


def expected_footfall(people: list[str]) -> list[tuple]:
    """Worked out independently: the G people still counted, one group at C1 10:00."""
    return [("10:00", h3.geo_to_h3(*C1, 8), "25-34", "female", len(people))]


def file_contents(path: Path) -> bytes:
    """A file's raw bytes, and for Parquet (data files, checkpoints) its decoded values too.

    Parquet pages are Snappy-compressed: a back-reference can split a 64-character hex id in the raw
    bytes (it did, for one random key in CI), so raw bytes alone can neither prove an id present nor gone.
    """
    data = path.read_bytes()
    if path.suffix == ".parquet" and data[:4] == b"PAR1":
        data += repr(pq.read_table(path).to_pylist()).encode()
    return data


def files_holding(root: Path, needles: set[str]) -> dict[str, set[str]]:
    """Which needles occur in which file under ``root`` (data files, logs, checkpoints), raw or decoded."""
    hits: dict[str, set[str]] = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = file_contents(path)
            found = {n for n in needles if n.encode() in data}
            if found:
                hits[str(path.relative_to(root))] = found
    return hits


def summary(cfg, day: dt.date, job: str) -> dict:
    return json.loads(Path(f"{cfg.lake.reports}/runs/{day}/{job}.json").read_text())["summary"]


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory, keys_env):
    tmp = tmp_path_factory.mktemp("consent")
    conf = write_conf(
        tmp, privacy={"k_min": K},
        quality={"max_quarantine_share": 0.5, "min_known_cell_share": 0.5, "min_wellformed_msisdn_share": 0.5},
        retention={"pseudonymized_events_days": 1, "superseded_versions_hours": 0},
    )
    cfg = load_config(conf)
    raw = cfg.lake.raw
    for day in (D, D2):
        spark.createDataFrame(events_for(day), NETWORK_EVENTS).coalesce(1).write.parquet(
            f"{raw}/network_events/event_date={day}")
    crm = [(m, dt.date(1995, 1, 1), "F", "consumer") for m in [*G, OUT, OUTB]]
    crm += [(spaced(MIN), dt.date(2012, 1, 1), "F", "consumer"), ("00" + BIZ, dt.date(1990, 1, 1), "F", "business"),
            (X, dt.date(1980, 1, 1), "M", "consumer")]
    spark.createDataFrame(crm, SUBSCRIBERS).write.parquet(f"{raw}/subscribers")
    spark.createDataFrame([
        ("00" + OUT, True, False, at(dt.date(2026, 1, 1), "08:00")),
        (spaced(OUTB), True, False, at(dt.date(2026, 1, 1), "08:00")),
        (G[3], False, False, at(dt.date(2026, 1, 1), "08:00")),
    ], PRIVACY_PREFERENCES).write.parquet(f"{raw}/privacy_preferences")
    old = dt.date(2020, 1, 1)
    spark.createDataFrame([("C1", *C1, "4G", old, None), ("C3", *C3, "4G", old, None)], CELLS).write.parquet(
        f"{raw}/cells")
    return conf, cfg


def run_capturing(main, argv: list[str]) -> tuple[int, str]:
    """Run a job's ``main``; its exit code and its ``error:`` line ("" if none)."""
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        code = main(argv)
    errors = [line for line in buf.getvalue().splitlines() if line.startswith("error:")]
    return code, errors[-1] if errors else ""


def cli(conf: Path, day: dt.date, *extra: str) -> list[str]:
    return ["--conf", str(conf), "--date", day.isoformat(), *extra]


@pytest.fixture(scope="module")
def base(spark, lake):
    """D: the whole pipeline. D2: stages 1 and 2 only (its release comes after an opt-out)."""
    conf, cfg = lake
    codes = [pipeline.main(cli(conf, D)), pseudonymize.main(cli(conf, D2)), anonymize.main(cli(conf, D2))]
    return {"codes": codes, "footfall_d": footfall(spark, cfg, D)}


@pytest.fixture(scope="module")
def stage3_rerun(spark, lake, base):
    """G1 opts out (written with blanks); then stage 3 alone: D2's first release, and a re-run of released D."""
    conf, cfg = lake
    add_preference(spark, cfg, spaced(G[1]), opt_out=True, when=dt.datetime.now(dt.UTC).replace(tzinfo=None))
    code_d2 = aggregate.main(cli(conf, D2))
    summary_d2 = summary(cfg, D2, "aggregate")
    code_d, err = run_capturing(aggregate.main, cli(conf, D))
    return {"code_d2": code_d2, "footfall_d2": footfall(spark, cfg, D2), "summary_d2": summary_d2,
            "code_d": code_d, "error_d": err, "footfall_d": footfall(spark, cfg, D),
            "summary_d": summary(cfg, D, "aggregate")}


@pytest.fixture(scope="module")
def stage2_rerun(spark, lake, stage3_rerun):
    """G2 opts out (written '00...'); only stage 2 is re-run, for D2."""
    conf, cfg = lake
    add_preference(spark, cfg, "00" + G[2], opt_out=True, when=dt.datetime.now(dt.UTC).replace(tzinfo=None))
    code = anonymize.main(cli(conf, D2))
    return {"code": code, "daily_ids": sorted(r.daily_id for r in read(spark, cfg, "anonymized_events", D2).collect()),
            "summary": summary(cfg, D2, "anonymize")}


def test_first_run_honours_every_format(spark, lake, base, keys_env):
    _, cfg = lake
    assert base["codes"] == [0, 0, 0]
    assert base["footfall_d"] == expected_footfall(G)
    s1 = summary(cfg, D, "pipeline")["pseudonymize"]
    assert (s1["rows_in"], s1["excluded_opted_out"], s1["excluded_minor"], s1["excluded_business"],
            s1["quarantined_total"], s1["rows_out"]) == (21, 3, 2, 1, 2, 13)
    assert s1["rows_in"] == (s1["excluded_opted_out"] + s1["excluded_minor"] + s1["excluded_business"]
                             + s1["quarantined_total"] + s1["rows_out"])
    kept = {r.pseudo_id for r in read(spark, cfg, "pseudonymized_events", D).collect()}
    assert kept == {pseudo(keys_env, m) for m in [*G, X]}
    taken = read(spark, cfg, "opt_outs", D).collect()
    assert {r.pseudo_id for r in taken} == {pseudo(keys_env, OUT), pseudo(keys_env, OUTB)}


def test_quarantine_holds_only_processable_people_under_ids_that_join_nowhere(spark, lake, base, keys_env):
    _, cfg = lake
    q = read(spark, cfg, "quarantine", D)
    records = {r.reason: json.loads(r.record) for r in q.collect()}
    assert sorted(records) == ["malformed_msisdn", "unknown_cell"]  # OUTB's and MIN's bad events are not here
    assert records["unknown_cell"]["msisdn_hmac"] == qid(keys_env, Q)
    ids = q.select(F.get_json_object("record", "$.msisdn_hmac").alias("pseudo_id"))
    for table in ("pseudonymized_events", "opt_outs"):
        assert ids.join(read(spark, cfg, table), on="pseudo_id", how="inner").count() == 0
    anon = read(spark, cfg, "anonymized_events")
    assert ids.withColumnRenamed("pseudo_id", "daily_id").join(anon, on="daily_id", how="inner").count() == 0


def test_stage3_alone_after_an_opt_out_does_not_count_the_person(spark, lake, stage3_rerun, keys_env):
    _, cfg = lake
    assert stage3_rerun["code_d2"] == 0
    assert stage3_rerun["footfall_d2"] == expected_footfall([m for m in G if m != G[1]])
    assert stage3_rerun["summary_d2"]["aggregate"]["excluded_opted_out_rows"] == {"anonymized_events": 1,
                                                                                    "anonymized_trips": 0}
    # Stage 2 ran before the opt-out: the person is still in its table, so stage 3 dropped them itself.
    assert read(spark, cfg, "anonymized_events", D2).filter(
        F.col("daily_id") == daily(keys_env, G[1], D2)).count() == 1


def test_stage3_rerun_of_a_date_released_before_the_opt_out_is_refused(spark, lake, stage3_rerun):
    """12 released, 11 now: the difference would be the person who opted out. Refused; D's release stays."""
    assert stage3_rerun["code_d"] == 1
    assert "would differ from it in a way that reveals groups below k_min=10" in stage3_rerun["error_d"]
    assert stage3_rerun["footfall_d"] == expected_footfall(G)
    assert stage3_rerun["summary_d"]["aggregate"]["excluded_opted_out_rows"]["anonymized_events"] == 1


def test_stage2_only_rerun_drops_every_opt_out_in_force(spark, lake, stage2_rerun, keys_env):
    assert stage2_rerun["code"] == 0
    still = [m for m in G if m not in (G[1], G[2])]
    assert stage2_rerun["daily_ids"] == sorted(daily(keys_env, m, D2) for m in still)
    assert stage2_rerun["summary"]["anonymize"]["excluded_opted_out"] == 2
    assert stage2_rerun["summary"]["anonymize"]["rows_in"] == len(G)


@pytest.fixture(scope="module")
def erased(spark, lake, stage2_rerun, keys_env, tmp_path_factory):
    conf, cfg = lake
    request = tmp_path_factory.mktemp("erase") / "request.txt"
    request.write_text(f"\n{spaced(Q)}\n")
    curated = Path(cfg.lake.curated)
    needles = {pseudo(keys_env, Q), daily(keys_env, Q, D), daily(keys_env, Q, D2), qid(keys_env, Q)}
    before = files_holding(curated, needles)
    codes = [erase.main(cli(conf, D2, "--msisdn-file", str(request))) for _ in range(2)]
    healed = ledger.recover(spark, cfg.lake, ERASED_TABLES, job="test")  # the ledger knows the deletions
    rerun = anonymize.main(cli(conf, D2))  # reads the pseudonyms as erased, not as first published
    return {"codes": codes, "needles": needles, "before": before, "after": files_holding(curated, needles),
            "log": sorted((r.table_name, r.rows_removed, r.people) for r in read(spark, cfg, "erasure_log").collect()),
            "request": request, "healed": healed, "rerun": rerun,
            "daily_d2": {r.daily_id for r in read(spark, cfg, "anonymized_events", D2).collect()},
            "noted": [r.asDict() for r in ledger.read_ledger(spark, cfg.lake, "insights")
                      .filter(F.col("event") == "erasure").collect()]}


def test_erasure_removes_a_subscriber_from_every_file_and_a_second_run_finds_nothing(spark, lake, erased,
                                                                                      keys_env):
    _, cfg = lake
    assert erased["codes"] == [0, 0]
    found_before = set().union(*erased["before"].values())
    assert found_before == erased["needles"]  # the scan can see them: every id was somewhere before
    assert erased["after"] == {}
    first = [("anonymized_events", 2, 1), ("anonymized_trips", 0, 1), ("offer_audience", 0, 1), ("opt_outs", 0, 1),
             ("pseudonymized_events", 2, 1), ("quarantine", 1, 1)]
    second = [(t, 0, 1) for t, _, _ in first]
    assert erased["log"] == sorted(first + second)
    assert footfall(spark, cfg, D) == expected_footfall(G)  # anonymous releases stay
    assert [(n["table_name"], n["note"].split(": ")[1]) for n in erased["noted"]] == [
        ("erasure_log", "1 subscriber(s) removed from the restricted zone; released aggregates are anonymous and "
                        "were kept")] * 2
    assert erased["healed"] == []  # recovery does not bring the erased rows back
    assert erased["rerun"] == 0  # a later stage-2 run reads the erased version of the date
    assert erased["daily_d2"] == {daily(keys_env, m, D2) for m in G if m not in (G[1], G[2], Q)}
    log_bytes = b"".join(file_contents(p) for p in Path(table_path(cfg.lake, "erasure_log")).rglob("*") if p.is_file())
    assert Q.encode() not in log_bytes and spaced(Q).encode() not in log_bytes


def test_erasure_of_an_unreadable_number_erases_nothing(lake, erased, capsys, tmp_path):
    conf, _ = lake
    request = tmp_path / "bad.txt"
    request.write_text(f"{G[0]}\n49-171-abc\n")
    code = erase.main(["--conf", str(conf), "--msisdn-file", str(request)])  # --date is optional here
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and "line(s) 2" in err and "49-171" not in err


@pytest.fixture(scope="module")
def retained(spark, lake, erased, keys_env):
    conf, cfg = lake
    path = table_path(cfg.lake, "pseudonymized_events")
    version = int(spark.sql(f"DESCRIBE HISTORY delta.`{path}`").agg(F.max("version")).first()[0])
    rows_d = read(spark, cfg, "pseudonymized_events", D).count()
    needle = {pseudo(keys_env, X)}
    before = files_holding(Path(path), needle)
    code = retention.main(cli(conf, D2 + dt.timedelta(days=1)))
    after = files_holding(Path(path), needle)
    rerun, rerun_error = run_capturing(anonymize.main, cli(conf, D))  # D's pseudonyms expired
    return {"code": code, "version": version, "rows_d": rows_d, "before": before, "after": after,
            "summary": summary(cfg, D2 + dt.timedelta(days=1), "retention"), "rerun": rerun,
            "rerun_error": rerun_error,
            "footfall_props": spark.sql(f"DESCRIBE DETAIL delta.`{table_path(cfg.lake, 'footfall')}`")
            .first()["properties"]}


def test_retention_removes_old_dates_physically(spark, lake, retained, base):
    _, cfg = lake
    assert retained["code"] == 0
    assert retained["before"] and retained["after"] == {}  # X was only on D
    dates = {r.date for r in read(spark, cfg, "pseudonymized_events").select("date").distinct().collect()}
    assert dates == {D2}
    entry = retained["summary"]["retention"]["pseudonymized_events"]
    assert entry["rows_deleted"] == retained["rows_d"] == len(G) + 1 - 1  # G and X, minus the erased Q
    assert entry["deleted_before"] == D2.isoformat() and entry["files_removed"] >= 1
    assert retained["summary"]["retention"]["anonymized_events"]["rows_deleted"] == 0  # 30 days: kept
    assert {r.date for r in read(spark, cfg, "anonymized_events").select("date").distinct().collect()} == {D, D2}
    with pytest.raises(Exception):  # noqa: B017 - Delta raises its own error for the missing files
        spark.read.format("delta").option("versionAsOf", retained["version"]).load(
            table_path(cfg.lake, "pseudonymized_events")).collect()
    # Release tables get the same lifecycle: superseded versions readable for 0 hours here.
    assert retained["footfall_props"]["delta.deletedFileRetentionDuration"] == "interval 0 hours"
    assert footfall(spark, cfg, D) == expected_footfall(G)  # current release untouched
    # A stage-2 re-run of the expired date is refused with a clear error, not run on nothing.
    assert retained["rerun"] == 1
    assert "pseudonymized_events of 2026-10-05 was deleted by retention" in retained["rerun_error"]
