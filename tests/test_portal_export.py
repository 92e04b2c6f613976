"""jobs.export_preferences: the portal's changes reach <lake.raw>/privacy_preferences exactly once."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs import export_preferences as job
from mobility.config import load_config
from portal import export
from portal.msisdn import normalize_msisdn
from portal.store import append_change, make_engine
from tests.portal_support import portal_conf

D = dt.date(2026, 10, 5)


def at(hhmm: str, day: dt.date = D) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


@pytest.fixture()
def setup(tmp_path):
    cfg = load_config(portal_conf(tmp_path))
    return cfg, make_engine(cfg.portal.database_url), Path(cfg.lake.raw) / "privacy_preferences"


def exported(folder: Path) -> list[tuple]:
    """Every row of the raw preferences table, as the pipeline would read it (data files only)."""
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    return sorted((r["msisdn"], r["analytics_opt_out"], r["location_offers_opt_in"],
                   r["updated_at"].replace(tzinfo=None)) for r in rows)


def test_normalize_msisdn():
    assert normalize_msisdn("+49 170 1234567") == "491701234567"
    assert normalize_msisdn("0049 170 1234567") == "491701234567"
    assert normalize_msisdn(" 49170\t1234567 ") == "491701234567"
    for bad in ("0170 1234567", "+49-170-1234567", "1234567", "+1234567890123456", "49abc1234567", "", "+0049170"):
        assert normalize_msisdn(bad) is None, bad


def test_export_twice_writes_each_change_once(setup):
    cfg, engine, folder = setup
    append_change(engine, "491700000001", analytics_opt_out=True, location_offers_opt_in=False, now=at("09:00"))
    append_change(engine, "491700000002", analytics_opt_out=False, location_offers_opt_in=True, now=at("10:00"))
    append_change(engine, "491700000003", analytics_opt_out=True, location_offers_opt_in=False,
                  now=at("01:00", D + dt.timedelta(days=1)))  # after D: not in D's export
    now = at("12:00", D + dt.timedelta(days=3))
    first = export.export_preferences(engine, cfg.lake.raw, date=D, now=now)
    assert (first.cutoff, first.rows, first.first_change_id, first.last_change_id) == (at("00:00", D + dt.timedelta(1)),
                                                                                       2, 1, 2)
    assert first.file == "portal-000000000001-000000000002.parquet"
    again = export.export_preferences(engine, cfg.lake.raw, date=D, now=now)
    assert again.rows == 0 and again.file is None
    expected_d = [("491700000001", True, False, at("09:00")), ("491700000002", False, True, at("10:00"))]
    assert exported(folder) == expected_d
    nxt = export.export_preferences(engine, cfg.lake.raw, date=D + dt.timedelta(days=1), now=now)
    assert (nxt.rows, nxt.file) == (1, "portal-000000000003-000000000003.parquet")
    assert exported(folder) == sorted([*expected_d, ("491700000003", True, False, at("01:00", D + dt.timedelta(1)))])
    # The schema is the contract's: a UTC timestamp, which Spark reads as TimestampType.
    schema = pq.read_schema(folder / nxt.file)
    assert [(f.name, str(f.type)) for f in schema] == [
        ("msisdn", "string"), ("analytics_opt_out", "bool"), ("location_offers_opt_in", "bool"),
        ("updated_at", "timestamp[us, tz=UTC]")]


def test_cutoff_is_now_when_the_day_is_not_over(setup):
    cfg, engine, folder = setup
    append_change(engine, "491700000001", analytics_opt_out=True, location_offers_opt_in=False, now=at("09:00"))
    append_change(engine, "491700000002", analytics_opt_out=True, location_offers_opt_in=False, now=at("11:00"))
    result = export.export_preferences(engine, cfg.lake.raw, date=D, now=at("10:00"))
    assert result.cutoff == at("10:00") and result.rows == 1
    assert [r[0] for r in exported(folder)] == ["491700000001"]


def test_crash_between_file_and_mark_neither_duplicates_nor_loses(setup, monkeypatch):
    cfg, engine, folder = setup
    append_change(engine, "491700000001", analytics_opt_out=True, location_offers_opt_in=False, now=at("09:00"))
    append_change(engine, "491700000002", analytics_opt_out=True, location_offers_opt_in=True, now=at("09:30"))

    def crash(*args, **kwargs):
        raise OSError("killed after the file was written")

    with monkeypatch.context() as m:
        m.setattr(export, "_record", crash)
        with pytest.raises(OSError):
            export.export_preferences(engine, cfg.lake.raw, date=D, now=at("10:00"))
    # The file is there (a reader may already see it), the mark is not.
    assert [p.name for p in folder.glob("portal-*")] == ["portal-000000000001-000000000002.parquet"]
    # More changes arrive before the re-run, so the batch is larger than the orphan's.
    append_change(engine, "491700000001", analytics_opt_out=False, location_offers_opt_in=False, now=at("10:30"))
    rerun = export.export_preferences(engine, cfg.lake.raw, date=D, now=at("11:00"))
    assert (rerun.rows, rerun.orphans_removed, rerun.file) == (3, 1, "portal-000000000001-000000000003.parquet")
    assert exported(folder) == [
        ("491700000001", False, False, at("10:30")),
        ("491700000001", True, False, at("09:00")),
        ("491700000002", True, True, at("09:30")),
    ]
    assert export.export_preferences(engine, cfg.lake.raw, date=D, now=at("12:00")).rows == 0
    assert len(exported(folder)) == 3
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_two_quick_changes_never_tie_on_updated_at(setup):
    _, engine, _ = setup
    t1 = append_change(engine, "491700000001", analytics_opt_out=True, location_offers_opt_in=False, now=at("09:00"))
    t2 = append_change(engine, "491700000001", analytics_opt_out=False, location_offers_opt_in=False, now=at("09:00"))
    assert t2 == t1 + dt.timedelta(microseconds=1)


def test_cli_exports_and_summarizes_without_numbers(tmp_path, capsys):
    conf = portal_conf(tmp_path)
    cfg = load_config(conf)
    engine = make_engine(cfg.portal.database_url)
    append_change(engine, "491700000001", analytics_opt_out=True, location_offers_opt_in=False, now=at("09:00"))
    append_change(engine, "491700000002", analytics_opt_out=False, location_offers_opt_in=True, now=at("09:05"))
    assert job.main(["--conf", str(conf), "--date", D.isoformat()]) == 0
    out = capsys.readouterr().out
    summary = json.loads((Path(cfg.lake.reports) / "runs" / D.isoformat() / "export_preferences.json").read_text())
    assert summary["summary"]["rows"] == 2 and summary["summary"]["analytics_opt_outs"] == 1
    assert summary["summary"]["location_offer_opt_ins"] == 1
    for text in (out, json.dumps(summary)):
        assert "491700000001" not in text and "491700000002" not in text
    assert job.main(["--conf", str(conf), "--date", D.isoformat()]) == 0
    assert len(exported(Path(cfg.lake.raw) / "privacy_preferences")) == 2


def test_cli_without_portal_section_is_a_config_error(tmp_path, capsys):
    import yaml

    conf = portal_conf(tmp_path)
    data = yaml.safe_load(conf.read_text())
    del data["portal"]
    conf.write_text(yaml.safe_dump(data))
    assert job.main(["--conf", str(conf), "--date", D.isoformat()]) == 2
    assert capsys.readouterr().err.strip() == "error: missing config section 'portal'"


def test_portal_config_is_validated(tmp_path):
    from mobility.config import ConfigError

    with pytest.raises(ConfigError, match=r"portal\.database_url"):
        load_config(portal_conf(tmp_path, database_url="postgresql+psycopg://u:secret@db/x"))
    with pytest.raises(ConfigError, match=r"portal\.code_ttl_seconds"):
        load_config(portal_conf(tmp_path, code_ttl_seconds=0))
    with pytest.raises(ConfigError, match=r"unknown config key 'portal\.colour'"):
        load_config(portal_conf(tmp_path, colour="blue"))
