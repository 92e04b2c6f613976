"""Daily mobility insights: pseudonymize >> anonymize >> aggregate >> retention, one event date per run.

``offers`` (location offers for opted-in subscribers, ``jobs/offers.py``) reads only the
raw zone, so it runs beside the three stages; ``retention`` waits for both.

``retention`` runs after the release: it deletes (physically) what is older than the
config's ``retention`` section allows relative to the run's date, and VACUUMs every
table so superseded versions stop being readable (``jobs/retention.py``).

Each run processes the date of its data interval (``{{ ds }}``) and every stage
replaces exactly that date's partition, so catch-up, backfills, retries and manual
re-runs of a date are safe and give the same tables.

Nothing secret or site-specific is in this file:

* **Connection** ``mobility_spark`` (type Spark): master (``spark://host:7077``,
  ``yarn``, ``k8s://https://...``), deploy mode, queue, namespace, spark-submit binary.
* **Variables** (all optional, defaults in brackets):
  ``mi_app_root`` [/opt/mobility-insights] — where ``jobs/``, ``dist/`` (``make package``)
  and ``.venv`` live on the Airflow worker (or a URI the cluster can read);
  ``mi_conf`` [<app_root>/conf/cluster.yaml] — the job config passed as ``--conf``;
  ``mi_driver_python`` [<app_root>/.venv/bin/python] — the driver's interpreter in client
  mode; set it to ``./env/bin/python`` for cluster deploy mode;
  ``mi_spark_properties`` [none] — a spark-defaults style file for cluster specifics
  (image, secret mounts, resources);
  ``mi_network_key_file`` / ``mi_daily_key_file`` [none] — *paths* of secret files as seen
  by the driver (``MI_NETWORK_KEY_FILE`` / ``MI_DAILY_KEY_FILE``).
* **Secrets** reach the Spark driver only: in client mode from the Airflow worker's own
  environment (``MI_NETWORK_KEY`` / ``MI_DAILY_KEY``, inherited by spark-submit) or from
  the secret files above; in cluster mode from files or Kubernetes secret references
  set in ``mi_spark_properties``. Executors never need them: the key travels inside the
  job as a broadcast one-row frame (``transforms/hashing.py``). See ``docs/deploy.md``.
"""

from __future__ import annotations

import datetime as dt
import os

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, CronDataIntervalTimetable

DAG_ID = "mobility_insights"
CONN_ID = "mobility_spark"
STAGES = ("pseudonymize", "anonymize", "aggregate", "offers", "retention")
DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"  # mobility/spark.py pins the same jar

# Jinja expressions, resolved on the worker when a task runs (no Variable lookups while
# the DAG file is parsed).
_ROOT = "var.value.get('mi_app_root', '/opt/mobility-insights')"
APP_ROOT = "{{ " + _ROOT + " }}"
CONF_FILE = "{{ var.value.get('mi_conf', " + _ROOT + " ~ '/conf/cluster.yaml') }}"
DRIVER_PYTHON = "{{ var.value.get('mi_driver_python', " + _ROOT + " ~ '/.venv/bin/python') }}"


default_args = {
    "owner": "mobility-insights",
    "depends_on_past": False,  # dates are independent; a failed day must not block the next
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=10),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(hours=1),
    "execution_timeout": dt.timedelta(hours=6),
}


def stage_task(stage: str) -> SparkSubmitOperator:
    """One spark-submit of ``jobs/<stage>.py`` for the run's date."""
    return SparkSubmitOperator(
        task_id=stage,
        conn_id=CONN_ID,
        application=f"{APP_ROOT}/jobs/{stage}.py",
        py_files=f"{APP_ROOT}/dist/mobility_insights.zip",
        packages=DELTA_PACKAGE,
        properties_file="{{ var.value.get('mi_spark_properties', '') }}",
        conf={
            # The dependencies as a venv-pack archive, unpacked as ./env next to each executor.
            "spark.archives": f"{APP_ROOT}/dist/env.tar.gz#env",
            "spark.pyspark.python": "./env/bin/python",
            # Needed: spark-submit prefers spark.pyspark.python over PYSPARK_DRIVER_PYTHON for
            # the driver too, and in client mode ./env does not exist where the driver runs.
            "spark.pyspark.driver.python": DRIVER_PYTHON,
        },
        env_vars={
            # Paths, never values: mobility/secrets.py reads the file a *_FILE variable names
            # when the plain variable is unset. Without the Variable, the worker's own
            # *_FILE setting passes through (env_vars would otherwise replace it).
            "MI_NETWORK_KEY_FILE": "{{ var.value.get('mi_network_key_file', worker_env('MI_NETWORK_KEY_FILE', '')) }}",
            "MI_DAILY_KEY_FILE": "{{ var.value.get('mi_daily_key_file', worker_env('MI_DAILY_KEY_FILE', '')) }}",
        },
        name=f"mobility-insights-{stage}-{{{{ ds }}}}",
        application_args=["--conf", CONF_FILE, "--date", "{{ ds }}"],
        # A retry submits the stage again: safe, since it replaces exactly its date. (The
        # provider's durable re-attach needs the YARN RM API in cluster mode; not assumed.)
        durable=False,
    )


with DAG(
    dag_id=DAG_ID,
    description="Raw network events -> k-anonymous mobility insights, one event date per run",
    # A data-interval timetable, not the bare "@daily" string: Airflow 3 turns a cron
    # string into a CronTriggerTimetable whose {{ ds }} is the day that has just *begun*
    # (no data yet). Here the run for interval [D, D+1) starts after D+1 00:00 UTC with
    # {{ ds }} = D, the complete day.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=True,
    # One date at a time: each run is sized for the cluster, and catch-up then walks the
    # dates in order instead of flooding the queue.
    max_active_runs=1,
    default_args=default_args,
    tags=["mobility-insights", "spark"],
    # Reads the worker's environment at render time; used only for secret-file *paths*.
    user_defined_macros={"worker_env": os.environ.get},
    doc_md=__doc__,
) as dag:
    pseudonymize, anonymize, aggregate, offers, retention = (stage_task(s) for s in STAGES)
    pseudonymize >> anonymize >> aggregate >> retention
    offers >> retention  # reads the raw zone only: runs beside the pipeline
