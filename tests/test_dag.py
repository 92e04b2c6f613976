"""The Airflow DAG, loaded by a real Airflow 3 ``DagBag`` in its own virtualenv.

Airflow's pins clash with the project's, so it lives in ``.airflow-venv``; this test
builds it with ``make airflow-venv`` when missing (about 670 MB, once) and runs a probe
script there that reports what it found as JSON. The assertions run here.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow
ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_PYTHON = ROOT / ".airflow-venv" / "bin" / "python"
DATE = "2026-10-05"

# Runs inside .airflow-venv. Variables and connections come from AIRFLOW_VAR_* and
# AIRFLOW_CONN_* variables (Airflow's environment secrets backend): no database needed.
PROBE = r"""
import json, sys
from airflow.models import DagBag
from airflow.sdk.execution_time.context import VariableAccessor
from airflow.serialization.encoders import coerce_to_core_timetable
from airflow.timetables.base import TimeRestriction
import pendulum

bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dag_ids": sorted(bag.dags)}
dag = bag.dags.get("mobility_insights")
if dag is not None:
    timetable = coerce_to_core_timetable(dag.timetable)
    first = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=True),
    )
    out.update(
        timetable=type(timetable).__name__,
        cron=timetable.summary,
        first_interval=[first.data_interval.start.isoformat(), first.data_interval.end.isoformat()],
        first_run_after=first.run_after.isoformat(),
        catchup=dag.catchup,
        max_active_runs=dag.max_active_runs,
        tasks={},
    )
    for task in dag.tasks:
        context = {"ds": sys.argv[2], "task": task, "dag": dag,
                   "var": {"value": VariableAccessor(False), "json": VariableAccessor(True)},
                   **(dag.user_defined_macros or {})}
        task.render_template_fields(context)
        hook = task._get_hook()
        command = hook._build_spark_submit_command(task.application)
        out["tasks"][task.task_id] = {
            "type": type(task).__name__,
            "upstream": sorted(task.upstream_task_ids),
            "downstream": sorted(task.downstream_task_ids),
            "retries": task.retries,
            "depends_on_past": task.depends_on_past,
            "command": command,
            "popen_env": hook._env or {},
            "rendered": {f: repr(getattr(task, f)) for f in task.template_fields},
        }
print("PROBE-JSON " + json.dumps(out))
"""


def ensure_airflow_venv() -> None:
    """Build (or verify) the Airflow virtualenv; up to date is a no-op of a second."""
    proc = subprocess.run(["make", "-s", "airflow-venv"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0 or not AIRFLOW_PYTHON.is_file():
        pytest.fail(f"make airflow-venv failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def probe(tmp_path: Path, conn_uri: str, extra_env: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH", "MI_"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="True",
        AIRFLOW_CONN_MOBILITY_SPARK=conn_uri,
        AIRFLOW_VAR_MI_APP_ROOT="/srv/mobility-insights",
        **extra_env,
    )
    proc = subprocess.run([str(AIRFLOW_PYTHON), "-c", PROBE, str(ROOT / "dags"), DATE], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE-JSON ")]
    assert proc.returncode == 0 and lines, f"probe failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("PROBE-JSON "))


@pytest.fixture(scope="module")
def airflow_venv() -> Path:
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("Airflow does not run on Windows")
    ensure_airflow_venv()
    return AIRFLOW_PYTHON


@pytest.fixture(scope="module")
def standalone(airflow_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The DAG rendered against a standalone master, with secrets in the worker's environment."""
    tmp = tmp_path_factory.mktemp("airflow-standalone")
    network, daily = pysecrets.token_hex(32), pysecrets.token_hex(32)
    report = probe(tmp, "spark://spark-master:7077", {"MI_NETWORK_KEY": network, "MI_DAILY_KEY": daily})
    report["secret_values"] = [network, daily]
    return report


def test_dag_loads_without_import_errors(standalone: dict) -> None:
    assert standalone["import_errors"] == {}
    assert standalone["dag_ids"] == ["mobility_insights"]


def test_schedule_is_daily_with_complete_days_and_catchup(standalone: dict) -> None:
    assert standalone["timetable"] == "CronDataIntervalTimetable"
    assert standalone["cron"] == "0 0 * * *"
    # The first run covers the whole first day and starts only once it is over.
    start, end = standalone["first_interval"]
    assert (start, end) == ("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00")
    assert standalone["first_run_after"] == end
    assert standalone["catchup"] is True
    assert standalone["max_active_runs"] == 1


def test_tasks_run_the_three_stages_in_order_with_retries(standalone: dict) -> None:
    tasks = standalone["tasks"]
    assert list(tasks) == ["pseudonymize", "anonymize", "aggregate", "offers", "retention"]
    assert {t["type"] for t in tasks.values()} == {"SparkSubmitOperator"}
    assert tasks["pseudonymize"]["upstream"] == [] and tasks["pseudonymize"]["downstream"] == ["anonymize"]
    assert tasks["anonymize"]["upstream"] == ["pseudonymize"] and tasks["anonymize"]["downstream"] == ["aggregate"]
    assert tasks["aggregate"]["upstream"] == ["anonymize"] and tasks["aggregate"]["downstream"] == ["retention"]
    assert tasks["retention"]["upstream"] == ["aggregate", "offers"] and tasks["retention"]["downstream"] == []
    assert tasks["offers"]["upstream"] == [] and tasks["offers"]["downstream"] == ["retention"]
    for task in tasks.values():
        assert task["retries"] >= 1
        assert task["depends_on_past"] is False


def test_spark_submit_command_for_a_date(standalone: dict) -> None:
    root = "/srv/mobility-insights"
    for stage, task in standalone["tasks"].items():
        cmd = task["command"]
        assert cmd[:3] == ["spark-submit", "--master", "spark://spark-master:7077"]
        # The entry file, then exactly the job's own command line for the run's date.
        i = cmd.index(f"{root}/jobs/{stage}.py")
        assert cmd[i + 1:] == ["--conf", f"{root}/conf/cluster.yaml", "--date", DATE]
        assert cmd[cmd.index("--py-files") + 1] == f"{root}/dist/mobility_insights.zip"
        assert cmd[cmd.index("--packages") + 1] == "io.delta:delta-spark_4.2_2.13:4.4.0"
        confs = [cmd[j + 1] for j, arg in enumerate(cmd) if arg == "--conf" and j < i]
        assert f"spark.archives={root}/dist/env.tar.gz#env" in confs
        assert "spark.pyspark.python=./env/bin/python" in confs
        assert f"spark.pyspark.driver.python={root}/.venv/bin/python" in confs


def test_no_secret_reaches_the_command_or_the_rendered_fields(standalone: dict) -> None:
    dump = json.dumps(standalone["tasks"])
    for value in standalone["secret_values"]:
        assert value not in dump
    for task in standalone["tasks"].values():
        # Only file *paths* may be configured for secrets; here none is set.
        assert not {k for k in task["popen_env"] if k in ("MI_NETWORK_KEY", "MI_DAILY_KEY")}


def test_yarn_cluster_mode_passes_secret_file_paths_only(airflow_venv: Path, tmp_path: Path) -> None:
    network = pysecrets.token_hex(32)
    report = probe(
        tmp_path,
        "spark://yarn?deploy-mode=cluster&queue=mobility",
        {
            "MI_NETWORK_KEY": network,
            "AIRFLOW_VAR_MI_NETWORK_KEY_FILE": "mi_network.key",
            "AIRFLOW_VAR_MI_DAILY_KEY_FILE": "mi_daily.key",
            "AIRFLOW_VAR_MI_DRIVER_PYTHON": "./env/bin/python",
            "AIRFLOW_VAR_MI_CONF": "cluster.yaml",
        },
    )
    assert report["import_errors"] == {}
    cmd = report["tasks"]["anonymize"]["command"]
    assert cmd[:3] == ["spark-submit", "--master", "yarn"]
    assert cmd[cmd.index("--deploy-mode") + 1] == "cluster"
    assert "spark.yarn.appMasterEnv.MI_NETWORK_KEY_FILE=mi_network.key" in cmd
    assert "spark.yarn.appMasterEnv.MI_DAILY_KEY_FILE=mi_daily.key" in cmd
    assert "spark.pyspark.driver.python=./env/bin/python" in cmd
    assert cmd[-4:] == ["--conf", "cluster.yaml", "--date", DATE]
    assert network not in json.dumps(report)
