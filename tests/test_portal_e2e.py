"""The whole loop: a customer opts out in the portal -> export -> pipeline -> no longer counted.

A hand-built lake (k_min = 10): eleven consumers (F, born 1990) in one cell-hour on D.
In the portal, in a real browser: X opts out; Y opts out and then back in; Z opts in to
location offers only. The raw preferences table already holds a file written by Spark
(someone else's old opt-out), so the export's file must sit beside Spark's. Worked out
by hand: the preferences in force remove X only, so footfall has one row with
10 visitors (= k_min: still released) and stage 1 excludes exactly one person's event.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import h3
import pytest

from contract.schemas import CELLS, NETWORK_EVENTS, PRIVACY_PREFERENCES, SUBSCRIBERS
from jobs import export_preferences, pipeline
from mobility.config import load_config
from mobility.io import table_path
from tests.portal_support import CHROMIUM, PortalServer, portal_conf, shot, sign_in

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.e2e

D = dt.date(2026, 10, 5)
SITE = (49.4521, 11.0767)
PEOPLE = [f"4917000{n:06d}" for n in range(1, 12)]  # eleven consumers
X, Y, Z = PEOPLE[0], PEOPLE[1], PEOPLE[2]
OLD_OPT_OUT = "4917000999999"  # not in the events


def save(page, **radios: str) -> None:
    for name, value in radios.items():
        page.check(f"#{name}-{value}")
    page.click("form[action='/choices'] button[type=submit]")
    page.wait_for_url("**/choices?saved=saved")


def test_opt_out_in_the_portal_removes_the_person_from_the_next_release(spark, keys, tmp_path):
    conf = portal_conf(tmp_path, customer_check="subscribers")
    cfg = load_config(conf)
    raw = cfg.lake.raw
    events = [(p, None, None, dt.datetime.combine(D, dt.time(10, 15 + i)), "data", "C1", None, None)
              for i, p in enumerate(PEOPLE)]
    spark.createDataFrame(events, NETWORK_EVENTS).coalesce(1).write.parquet(f"{raw}/network_events/event_date={D}")
    spark.createDataFrame([(p, dt.date(1990, 1, 1), "F", "consumer") for p in PEOPLE], SUBSCRIBERS) \
        .coalesce(1).write.parquet(f"{raw}/subscribers")
    spark.createDataFrame([(OLD_OPT_OUT, True, False, dt.datetime(2026, 1, 1, 8))], PRIVACY_PREFERENCES) \
        .coalesce(1).write.parquet(f"{raw}/privacy_preferences")
    spark.createDataFrame([("C1", *SITE, "4G", dt.date(2020, 1, 1), None)], CELLS).write.parquet(f"{raw}/cells")

    # 1. The portal, in a real browser.
    clicks: list[tuple[str, bool]] = []  # (who, analytics_opt_out) in the order they were saved
    with PortalServer(conf) as server, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for who, steps in ((X, [{"analytics": "no"}]),
                           (Y, [{"analytics": "no"}, {"analytics": "yes"}]),
                           (Z, [{"offers": "yes"}])):
            context = browser.new_context(locale="en-GB")
            page = context.new_page()
            sign_in(page, server, "+" + who, who)
            for step in steps:
                save(page, **step)
                clicks.append((who, step.get("analytics") == "no"))
            if who == X:
                shot(page, "11-e2e-opted-out")
            context.close()
        browser.close()

    # 2. The export (today's cut-off: the changes were made just now).
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert export_preferences.main(["--conf", str(conf), "--date", today]) == 0
    summary = json.loads((Path(cfg.lake.reports) / "runs" / today / "export_preferences.json").read_text())["summary"]
    assert (summary["rows"], summary["analytics_opt_outs"], summary["location_offer_opt_ins"]) == (4, 2, 1)

    # 3. The pipeline's first run for D, after the opt-out.
    assert pipeline.main(["--conf", str(conf), "--date", D.isoformat()]) == 0

    # Worked out independently: the last analytics choice per person decides.
    last = {}
    for who, opted_out in clicks:
        last[who] = opted_out
    counted = [p for p in PEOPLE if not last.get(p, False)]
    assert len(counted) == 10 and X not in counted and Y in counted

    footfall = spark.read.format("delta").load(table_path(cfg.lake, "footfall")).collect()
    assert [(r.date, r.window_start.strftime("%H:%M"), r.h3_cell, r.age_band, r.gender, r.visitors)
            for r in footfall] == [(D, "10:00", h3.geo_to_h3(*SITE, 8), "35-44", "female", len(counted))]
    run = json.loads((Path(cfg.lake.reports) / "runs" / D.isoformat() / "pipeline.json").read_text())["summary"]
    assert run["pseudonymize"]["excluded_opted_out"] == len(PEOPLE) - len(counted) == 1
