"""What an operator sees: one `error:` line naming the real cause, the right exit code, nothing written,
a quiet console with progress, Spark's log in a file per run.

The failure tests run the jobs in-process (``main([...])``) on tiny lakes built with
``tests.test_quality._write_raw_lake``; one test runs ``python -m jobs.pipeline`` as a
subprocess so that the JVM starts with the real log4j2 configuration.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.conftest import record_published, write_conf
from tests.test_quality import DATE, _write_raw_lake

ARGV_DATE = ["--date", DATE.isoformat()]


def last_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    assert err[-1].startswith("error: "), err[-1]
    return err[-1]


def nothing_written(cfg) -> bool:
    return not Path(cfg.lake.curated).exists() and not Path(cfg.lake.insights).exists()


@pytest.fixture()
def lake(spark, tmp_path):
    """A tiny raw lake that passes the input gate (2 of 80 events unknown-cell)."""
    from mobility.config import load_config

    conf = write_conf(tmp_path, privacy={"k_min": 10})
    cfg = load_config(conf)
    _write_raw_lake(spark, cfg, bad_rows=2)
    return conf, cfg


def partition(cfg) -> Path:
    return Path(cfg.lake.raw) / "network_events" / f"event_date={DATE.isoformat()}"


# ----------------------------------------------------------------------------- errors naming the cause


def test_corrupt_parquet_file_is_named_not_hidden_behind_observed_none(lake, keys, capsys):
    from jobs import pseudonymize

    conf, cfg = lake
    (partition(cfg) / "part-99999.parquet").write_bytes(b"garbage!")
    assert pseudonymize.main(["--conf", str(conf), *ARGV_DATE]) == 1
    line = last_error_line(capsys)
    assert "part-99999.parquet" in line and "is not a Parquet file" in line, line
    assert "observed None" not in line
    assert nothing_written(cfg)


def test_missing_partition_is_named(lake, keys, capsys):
    from jobs import pseudonymize

    conf, cfg = lake
    assert pseudonymize.main(["--conf", str(conf), "--date", "2026-01-01"]) == 1
    line = last_error_line(capsys)
    assert "event_date=2026-01-01" in line and "not found" in line, line
    assert nothing_written(cfg)


def test_schema_drift_names_column_and_types(spark, tmp_path, keys, capsys):
    from pyspark.sql import functions as F

    from jobs import pseudonymize
    from mobility.config import load_config

    conf = write_conf(tmp_path, privacy={"k_min": 10})
    cfg = load_config(conf)
    _write_raw_lake(spark, cfg, bad_rows=2)
    events = spark.read.parquet(str(partition(cfg)))
    drifted = tmp_path / "drifted"
    events.withColumn("latitude", F.lit("49.45")).write.parquet(str(drifted))  # latitude became a string
    import shutil

    shutil.rmtree(partition(cfg))
    shutil.move(str(drifted), str(partition(cfg)))
    assert pseudonymize.main(["--conf", str(conf), *ARGV_DATE]) == 1
    line = last_error_line(capsys)
    assert line == "error: network_events: column 'latitude' is string, expected double", line
    assert nothing_written(cfg)


def test_damaged_delta_log_names_the_table(spark, tmp_path, keys, capsys):
    from jobs import anonymize
    from mobility.config import load_config
    from mobility.io import table_path

    conf = write_conf(tmp_path, privacy={"k_min": 10})
    cfg = load_config(conf)
    source = Path(table_path(cfg.lake, "pseudonymized_events"))
    # A published table (recorded in the ledger) whose log was damaged afterwards.
    spark.createDataFrame([(DATE, "x")], "date date, pseudo_id string").write.format("delta").partitionBy(
        "date").save(str(source))
    record_published(spark, cfg.lake, "pseudonymized_events", DATE)
    (source / "_delta_log" / "00000000000000000000.json").write_text("{this is not json\n")
    # As a new job process would find it: not the snapshot this session cached while writing.
    spark.sparkContext._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    assert anonymize.main(["--conf", str(conf), *ARGV_DATE]) == 1
    line = last_error_line(capsys)
    assert f"Delta table {source}" in line or f"Delta table file:{source}" in line, line
    assert not Path(table_path(cfg.lake, "anonymized_events")).exists()
    assert not Path(cfg.lake.insights).exists()


def test_no_space_left_on_device_is_named(lake, keys, capsys):
    """The publisher's write fails deep in Spark with ENOSPC: that, not the wrapper, is the last line."""
    from jobs import pseudonymize

    conf, cfg = lake

    def full_disk(spark_, cfg_, outputs, **kw):
        spark_.sql("SELECT raise_error('java.io.IOException: No space left on device')").collect()

    assert pseudonymize.main(["--conf", str(conf), *ARGV_DATE], publisher=full_disk) == 1
    line = last_error_line(capsys)
    assert line.startswith("error: no space left on device"), line
    assert nothing_written(cfg)


def test_concurrent_delta_commit_is_named(lake, keys, capsys):
    """Delta's optimistic concurrency rejected the commit: say so, and that re-running is safe."""
    from pyspark.errors.exceptions.captured import convert_exception

    from mobility.runner import run_job

    conf, cfg = lake

    def body(ctx):
        jvm = ctx.spark.sparkContext._jvm
        raise convert_exception(jvm.org.apache.spark.sql.delta.ConcurrentAppendException(
            "Files were added to partition [date=2026-10-05] by a concurrent update."))

    assert run_job("aggregate", ["--conf", str(conf), *ARGV_DATE], body) == 1
    line = last_error_line(capsys)
    assert "changed by another writer" in line and "ConcurrentAppendException" in line, line
    assert "partition [date=2026-10-05]" in line and "re-run the date" in line
    assert nothing_written(cfg)


def test_missing_secret_is_exit_2(lake, monkeypatch, capsys):
    from jobs import pseudonymize

    conf, cfg = lake
    monkeypatch.delenv("MI_NETWORK_KEY", raising=False)
    monkeypatch.delenv("MI_NETWORK_KEY_FILE", raising=False)
    assert pseudonymize.main(["--conf", str(conf), *ARGV_DATE]) == 2
    line = last_error_line(capsys)
    assert "MI_NETWORK_KEY" in line
    assert nothing_written(cfg)


def test_unknown_failure_is_one_line_with_the_traceback_in_the_log(lake, keys, capsys):
    from mobility.runner import run_job

    conf, cfg = lake

    def body(ctx):
        return {}["no such key"]

    assert run_job("aggregate", ["--conf", str(conf), *ARGV_DATE], body) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    log = Path(cfg.lake.reports) / "runs" / DATE.isoformat() / "aggregate.log"
    assert line == f"error: unexpected KeyError: 'no such key' (details in {log})", line
    assert "Traceback" in log.read_text() and "no such key" in log.read_text()


# ----------------------------------------------------------------------------- pieces


def test_diagnose_walks_the_cause_chain():
    from contract.errors import ValidationError
    from mobility.diagnose import explain

    try:
        try:
            raise OSError("write failed: No space left on device")
        except OSError as inner:
            raise ValidationError("publishing footfall failed") from inner
    except ValidationError as exc:
        code, msg = explain(exc)
    assert (code, msg) == (1, "no space left on device: OSError: write failed: No space left on device")
    assert explain(ValidationError("suite x failed"), log="/l.log") == (1, "suite x failed")


def test_progress_lines_number_the_stages_and_count_rows():
    from mobility.progress import Progress, rows_out

    out = io.StringIO()
    p = Progress(True, stream=out, interval=3600)
    with p.stage("pseudonymize", 1, 3, rows=lambda: 826_810):
        p.step("input gate: checking 4 raw tables")
    with pytest.raises(ZeroDivisionError), p.stage("anonymize", 2, 3):
        _ = 1 / 0
    lines = out.getvalue().splitlines()
    assert lines == ["stage 1/3 pseudonymize …", "  input gate: checking 4 raw tables …",
                     "stage 1/3 pseudonymize: 826,810 rows out in 0 s", "stage 2/3 anonymize …",
                     "stage 2/3 anonymize: failed after 0 s"]
    silent = io.StringIO()
    with Progress(False, stream=silent).stage("x", 1, 1):
        pass
    assert silent.getvalue() == ""
    assert rows_out({"footfall_released": 3, "presence_released": 4, "od_flows_released": 5, "x": 9}) == 12
    assert rows_out({"rows_in": 9, "rows_out_person_window_cell": 7}) == 7


def test_local_jars_only_when_the_folder_is_complete(tmp_path):
    from mobility.spark import MANIFEST, delta_package, local_jars

    assert local_jars(tmp_path) is None  # no manifest
    (tmp_path / "a.jar").write_bytes(b"")
    (tmp_path / MANIFEST).write_text(f"{delta_package()}\na.jar\nb.jar\n")
    assert local_jars(tmp_path) is None  # b.jar missing
    (tmp_path / "b.jar").write_bytes(b"")
    assert local_jars(tmp_path) == [tmp_path / "a.jar", tmp_path / "b.jar"]
    (tmp_path / MANIFEST).write_text("io.delta:delta-spark_9.9_2.13:0.0.1\na.jar\nb.jar\n")
    assert local_jars(tmp_path) is None  # resolved for another Spark


def test_run_log_is_beside_the_summary_or_local_for_remote_reports(tmp_path):
    from mobility.console import run_log

    assert run_log(str(tmp_path / "rep"), DATE, "pipeline") == tmp_path / "rep" / "runs" / "2026-10-05" / "pipeline.log"
    assert run_log(f"file://{tmp_path}/rep", DATE, "aggregate") == tmp_path / "rep/runs/2026-10-05/aggregate.log"
    assert run_log("s3a://lake/reports", DATE, "pipeline") == Path("logs/runs/2026-10-05/pipeline.log").absolute()


# The real console of a command-line run is checked on the CLI run of
# tests/test_pipeline_e2e.py::test_cli_run_leaks_no_key_into_logs_plans_or_event_logs.


def test_jars_spark_ships_are_left_out():
    """A second log4j/SLF4J beside Spark's took the run's logging over; Delta's own jars stay."""
    from mobility.spark import artifact_of, needed, shipped_by_spark

    assert artifact_of("zstd-jni-1.5.7-3.jar") == "zstd-jni"
    assert artifact_of("delta-spark_4.2_2.13-4.4.0.jar") == "delta-spark_4.2_2.13"
    names = ["commons-logging-1.3.0.jar", "delta-spark_4.2_2.13-4.4.0.jar", "delta-storage-4.4.0.jar",
             "log4j-core-2.25.3.jar", "log4j-slf4j2-impl-2.25.3.jar", "slf4j-api-1.7.36.jar",
             "unitycatalog-client-0.6.0.jar"]
    assert needed(names, shipped_by_spark()) == ["delta-spark_4.2_2.13-4.4.0.jar", "delta-storage-4.4.0.jar",
                                                 "unitycatalog-client-0.6.0.jar"]


def test_local_jvm_runs_the_throughput_collector_unless_one_is_chosen(spark):
    """Local mode's driver JVM runs the parallel collector (benchmarks/README.md: G1 about 10 %
    slower on 2 cores); a collector named in the session's own options wins, and options are kept."""
    from mobility.spark import LOCAL_GC, local_driver_options

    assert local_driver_options() == LOCAL_GC
    assert local_driver_options(" -Dx=1 ", "-Dlog=a") == f"{LOCAL_GC} -Dx=1 -Dlog=a"
    for chosen in ("-XX:+UseG1GC", "-Xmx1g -XX:+UseZGC -Dx=1", "-XX:+UseSerialGC"):
        assert local_driver_options(chosen) == chosen
    assert local_driver_options("-XX:-UseG1GC") == f"{LOCAL_GC} -XX:-UseG1GC"  # switching one off chooses none
    # The suite's own session was built by build_session in local mode.
    mf = spark.sparkContext._jvm.java.lang.management.ManagementFactory
    collectors = {str(gc.getName()) for gc in mf.getGarbageCollectorMXBeans()}
    assert collectors == {"PS Scavenge", "PS MarkSweep"}
