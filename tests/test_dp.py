"""Differential privacy as a release mode (``privacy.mode: differential_privacy``, ``transforms/dp.py``).

Unit checks of the bound, the noise and the calibration; then stage 3 alone, run twice in
DP mode on a hand-written stage-2 output: what it releases, what the ledger records, and
the budget refusal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import secrets as pysecrets
from pathlib import Path

import h3
import pandas as pd
import pytest
from pyspark.sql import functions as F

from contract.errors import ConfigError
from contract.schemas import CELLS, PRIVACY_PREFERENCES
from mobility.config import DpConfig, load_config
from mobility.io import table_path
from tests.conftest import record_published, write_conf
from transforms.dp import (
    DpPlan,
    bound_contributions,
    count_bounded,
    laplace_batches,
    laplace_scale,
    threshold_calibration,
)

D = dt.date(2026, 10, 5)
K = 10
CELLS_AT = {"C1": (49.4521, 11.0767), "C2": (49.4600, 11.0800)}
H3 = {c: h3.geo_to_h3(*p, 8) for c, p in CELLS_AT.items()}


# ------------------------------------------------------------------------- unit: bound, noise, calibration


def test_contribution_bound_holds_for_a_person_in_many_cells_and_windows(spark):
    """Person A: 30 windows x 2 cells (plus duplicates); B: 3 groups. L = 5 keeps 5 of A's and all of B's."""
    rows = [("A", dt.datetime(2026, 10, 5, h, m), cell) for h in range(15) for m in (0, 30) for cell in ("x", "y")]
    rows += rows[:10]  # the same group twice counts once
    rows += [("B", dt.datetime(2026, 10, 5, 9), c) for c in ("x", "y", "z")]
    df = spark.createDataFrame(rows, "daily_id string, window_start timestamp, h3_cell string")
    bounded = bound_contributions(df, id_col="daily_id", group_cols=("window_start", "h3_cell"), max_groups=5)
    per_person = {r["daily_id"]: r["n"] for r in bounded.groupBy("daily_id").agg(F.count("*").alias("n")).collect()}
    assert per_person == {"A": 5, "B": 3}
    assert bounded.dropDuplicates().count() == bounded.count()  # at most once per group
    counts = count_bounded(bounded, group_cols=("window_start", "h3_cell"), count_col="visitors")
    assert counts.agg(F.max("visitors")).first()[0] <= 2 and counts.agg(F.sum("visitors")).first()[0] == 8
    # The choice is the keyed order (sha2 of the daily id and the group), not the input order.
    again = bound_contributions(df.orderBy(F.rand(7)), id_col="daily_id", group_cols=("window_start", "h3_cell"),
                                max_groups=5)
    assert sorted(map(tuple, again.collect())) == sorted(map(tuple, bounded.collect()))


def discrete_laplace_moments(scale: float) -> tuple[float, float]:
    """Variance and fourth moment of the discrete Laplace, P(k) ∝ exp(-|k| / scale), by summing its pmf."""
    t = math.exp(-1.0 / scale)
    norm = (1 - t) / (1 + t)
    ks = range(-int(80 * scale) - 50, int(80 * scale) + 51)
    var = sum(norm * t ** abs(k) * k * k for k in ks)
    m4 = sum(norm * t ** abs(k) * k ** 4 for k in ks)
    return var, m4


@pytest.mark.parametrize("scale", [2.0, 30.0])
def test_noise_has_the_mean_and_variance_the_mechanism_promises(scale):
    """20 000 draws through the very function the job runs in mapInPandas.

    OpenDP takes no seed (it samples from the OS), so the tolerances are 6 standard
    errors, derived from the distribution's own moments: a false failure has odds of
    about 1 in 10^8 per check.
    """
    n = 20_000
    batches = [pd.DataFrame({"c": [100] * (n // 4)}) for _ in range(4)]
    noise = pd.concat(list(laplace_batches(scale, "c")(iter(batches))))["c"] - 100
    assert noise.dtype == "int64" and len(noise) == n
    var, m4 = discrete_laplace_moments(scale)
    assert abs(noise.mean()) < 6 * math.sqrt(var / n)
    assert abs(noise.var() - var) < 6 * math.sqrt((m4 - var * var) / n)
    assert (noise != 0).mean() > 0.5  # not exact counts


def test_calibration_is_checked_by_opendp():
    assert laplace_scale(0.4, 12) == pytest.approx(30.0)
    scale, threshold = threshold_calibration(0.2, 1e-6, 4)
    assert scale == pytest.approx(20.0) and threshold > 4 * 20  # tail mass 1e-6 needs many scales
    plan = DpPlan.of(DpConfig.defaults(), k_min=15)
    assert plan.footfall.threshold >= 15 and plan.od_flows.threshold >= 15
    assert plan.footfall.epsilon + plan.presence.epsilon + plan.od_flows.epsilon == pytest.approx(plan.epsilon)
    assert json.loads(plan.bounds()) == {"footfall": 12, "od_flows": 4, "presence": 12}


def test_dp_config_is_validated_naming_the_key(tmp_path):
    conf = write_conf(tmp_path)
    assert load_config(conf).privacy.mode == "k_anonymity"
    assert load_config(conf, ["privacy.mode=differential_privacy"]).privacy.mode == "differential_privacy"
    for override, key in (("privacy.mode=dp", "privacy.mode"), ("dp.epsilon=0", "dp.epsilon"),
                          ("dp.footfall_share=0.5", "dp.footfall_share"),
                          ("dp.od_flows_max_groups=0", "dp.od_flows_max_groups"),
                          ("dp.budget_epsilon=0.5", "dp.budget_epsilon")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(conf, [override])


# ------------------------------------------------------------------------- stage 3 in DP mode


def daily(n: int) -> str:
    return hashlib.sha256(f"person-{n}".encode()).hexdigest()


def stage2_rows() -> tuple[list[tuple], list[tuple]]:
    """400 people F 25-34 at C1 10:00, 300 at C2 11:00; 600 people make the same C1 -> far trip.

    Person 0 is everywhere: 20 windows at C1 and C2 (the bound keeps 12 per table).
    """
    w = lambda h: dt.datetime(2026, 10, 5, h)  # noqa: E731
    events = [(D, daily(n), w(10), H3["C1"], "25-34", "female") for n in range(400)]
    events += [(D, daily(n), w(11), H3["C2"], "25-34", "female") for n in range(1000, 1300)]
    events += [(D, daily(0), w(h), H3[c], "25-34", "female") for h in range(12, 22) for c in ("C1", "C2")]
    od1, od2 = h3.h3_to_parent(H3["C1"], 7), h3.h3_to_parent(h3.geo_to_h3(49.60, 11.20, 8), 7)
    trips = [(D, daily(n), w(10), od1, od2, "25-34", "female") for n in range(600)]
    return events, trips


@pytest.fixture(scope="module")
def dp_lake(spark, tmp_path_factory):
    old = {k: os.environ.get(k) for k in ("MI_NETWORK_KEY", "MI_DAILY_KEY")}
    os.environ["MI_NETWORK_KEY"], os.environ["MI_DAILY_KEY"] = pysecrets.token_hex(32), pysecrets.token_hex(32)
    tmp = tmp_path_factory.mktemp("dp")
    conf = write_conf(tmp, privacy={"k_min": K, "mode": "differential_privacy"},
                      dp={"epsilon": 1.0, "budget_epsilon": 1.5})
    cfg = load_config(conf)
    old_day = dt.date(2020, 1, 1)
    spark.createDataFrame([(c, *p, "4G", old_day, None) for c, p in CELLS_AT.items()], CELLS).write.parquet(
        f"{cfg.lake.raw}/cells")
    spark.createDataFrame([("4917100099999", True, False, dt.datetime(2026, 1, 1))], PRIVACY_PREFERENCES).write.parquet(
        f"{cfg.lake.raw}/privacy_preferences")
    events, trips = stage2_rows()
    for table, rows, schema in (
        ("anonymized_events", events,
         "date date, daily_id string, window_start timestamp, h3_cell string, age_band string, gender string"),
        ("anonymized_trips", trips, "date date, daily_id string, window_start timestamp, origin_h3 string, "
                                    "destination_h3 string, age_band string, gender string"),
    ):
        spark.createDataFrame(rows, schema).write.format("delta").partitionBy("date").save(
            table_path(cfg.lake, table))
        record_published(spark, cfg.lake, table, D)
    yield conf, cfg, events, trips
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def dp_runs(spark, dp_lake):
    from jobs import aggregate
    from mobility.ledger import read_ledger
    from tests.test_consent_e2e import run_capturing

    conf, cfg, _, _ = dp_lake
    argv = ["--conf", str(conf), "--date", D.isoformat()]
    first = aggregate.main(argv)
    released = {t: spark.read.format("delta").load(table_path(cfg.lake, t)).collect()
                for t in ("footfall", "presence", "od_flows")}
    summary = json.loads(Path(f"{cfg.lake.reports}/runs/{D}/aggregate.json").read_text())
    second, error = run_capturing(aggregate.main, argv)  # 1.0 + 1.0 > budget 1.5
    ledger = [r.asDict() for r in read_ledger(spark, cfg.lake, "insights").collect()]
    after = {t: spark.read.format("delta").load(table_path(cfg.lake, t)).collect()
             for t in ("footfall", "presence", "od_flows")}
    return {"first": first, "released": released, "summary": summary["summary"]["aggregate"], "second": second,
            "error": error, "ledger": ledger, "after": after}


def test_dp_release_is_noisy_bounded_and_at_least_k(dp_runs):
    assert dp_runs["first"] == 0
    footfall, presence = dp_runs["released"]["footfall"], dp_runs["released"]["presence"]
    big = [r for r in footfall if r["h3_cell"] == H3["C1"] and r["window_start"].hour == 10
           and r["age_band"] == "25-34" and r["gender"] == "female"]
    assert len(big) == 1 and abs(big[0]["visitors"] - 400) < 30 * 12  # scale 30: 12 scales, odds < 10^-5
    s = dp_runs["summary"]
    assert all(r["visitors"] >= s["footfall"]["threshold"] >= K for r in footfall)
    assert all(r["visitors"] >= s["presence"]["threshold"] >= K for r in presence)
    exact = {(H3["C1"], 10): 400, (H3["C2"], 11): 300}
    noisy = [r for r in presence if (r["h3_cell"], r["window_start"].hour) in exact]
    # The released values are not the exact counts (each equals it with probability < 2 %).
    assert sum(r["visitors"] != exact[(r["h3_cell"], r["window_start"].hour)] for r in noisy) >= len(noisy) - 1
    # Both exact groups are far above the thresholds; an empty key shows up with at most 1 %
    # probability, so of the 2 x 24 presence keys only a handful of spurious ones may appear.
    assert len(noisy) == 2 and len(presence) <= 2 + 6
    # od_flows: OpenDP's partition selection releases the 600-person flow (noised; 20 scales above).
    assert len(dp_runs["released"]["od_flows"]) == 1 and abs(dp_runs["released"]["od_flows"][0]["trips"] - 600) < 300


def test_summary_and_ledger_record_epsilon_delta_and_bounds(dp_runs):
    s = dp_runs["summary"]
    assert s["mode"] == "differential_privacy" and s["epsilon"] == 1.0 and s["delta"] == 1e-6
    assert s["footfall"]["max_groups"] == 12 and s["od_flows"]["threshold"] > 0
    assert s["footfall_released"] == len(dp_runs["released"]["footfall"])
    published = [r for r in dp_runs["ledger"] if r["event"] == "published"]
    assert {r["table_name"] for r in published} == {"footfall", "presence", "od_flows"}
    for r in published:
        assert (r["mode"], r["epsilon"], r["delta"]) == ("differential_privacy", 1.0, 1e-6)
        assert json.loads(r["dp_bounds"]) == {"footfall": 12, "od_flows": 4, "presence": 12}
        assert "opendp" in r["mechanism"]


def test_a_release_beyond_the_dates_budget_is_refused(dp_runs):
    assert dp_runs["second"] == 1
    assert "privacy budget would be exceeded" in dp_runs["error"] and "epsilon=1" in dp_runs["error"]
    assert "budget is epsilon=1.5" in dp_runs["error"]
    assert dp_runs["after"] == dp_runs["released"]  # nothing new was published
