"""One session-scoped SparkSession per test process (local[2], Delta, UTC, UI off; `make test` runs two)."""

from __future__ import annotations

import os
import secrets as pysecrets
import sys
from pathlib import Path

import pytest

from mobility.spark import INTERPRETED

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

# pytest-xdist's workers run under `python -c`, whose __main__ has neither a __spec__ nor a
# __file__: PySpark's Spark Connect import check (pyspark/sql/connect/utils.py) takes that for a
# doctest run and calls sys.exit(0) when grpc is missing, and Great Expectations imports Spark
# Connect's DataFrame. A file name on __main__ keeps the check to what it is meant to check.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"

TEST_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "2g",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.adaptive.coalescePartitions.initialPartitionNum": "2",
    # Spark's interpreted evaluation instead of generated code (mobility.spark.INTERPRETED):
    # `benchmarks.fixed_cost` measured 58.5 s with code generation and 41.0 s without. Both
    # are Spark's own evaluators and must agree; the tests that run production's settings
    # keep generated code: the cluster test's spark-submit run (compared row for row with a
    # local run under these settings) and the CLI leak test.
    **INTERPRETED,
}


@pytest.fixture(scope="session")
def spark():
    from mobility.config import SparkConfig
    from mobility.spark import build_session

    session = build_session("mobility-insights-tests", SparkConfig(master="local[2]", conf=TEST_SPARK_CONF))
    yield session
    session.stop()


@pytest.fixture()
def keys(monkeypatch):
    """Fresh random secrets in the environment, returned as hex strings."""
    network, daily = pysecrets.token_hex(32), pysecrets.token_hex(32)
    monkeypatch.setenv("MI_NETWORK_KEY", network)
    monkeypatch.setenv("MI_DAILY_KEY", daily)
    return {"network": network, "daily": daily}


def write_conf(tmp_path: Path, **overrides: dict) -> Path:
    """A config file for a lake under ``tmp_path``; ``overrides`` replace whole sections."""
    import yaml

    data = yaml.safe_load((ROOT / "conf" / "local.yaml").read_text())
    lake = tmp_path / "lake"
    data["lake"] = {z: str(lake / z) for z in ("raw", "curated", "insights", "reports")}
    data["spark"] = {"master": "local[2]", "conf": dict(TEST_SPARK_CONF)}
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values}
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def record_published(spark, lake, table: str, date) -> None:
    """Record in the ledger a table a test wrote by hand, so that the next stage reads it."""
    from mobility import ledger
    from mobility.io import table_path

    ledger.append(spark, lake, ledger.zone_of(table), [{
        "run_id": ledger.new_run_id(), "job": "test", "event": "published", "date": date, "table_name": table,
        "version": ledger.table_version(spark, table_path(lake, table))}])
