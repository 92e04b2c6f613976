"""Data-quality gates: the input suites before stage 1, write-audit-publish for every output.

Suites live in ``expectations/<table>.py``. This module runs them with Great
Expectations on a Spark data source, keeps every result as JSON and an HTML page under
``<lake.reports>/quality/<date>/``, and turns a failed suite into
:class:`mobility.runner.ValidationError` naming the failed expectations.

Cost: GE runs separate Spark jobs per metric, so it never sees a big table. Schema
expectations run on ``df.limit(0)`` (answered from the schema, no job); everything else
runs on the table's *profile*, a frame of a few rows computed by one aggregation and
cached only while GE looks at it (GE persists what it validates and never unpersists it).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from expectations import INPUT_TABLES, suite_module
from expectations.common import SuiteParams, ge_context, make_suite
from mobility.config import Config, LakeConfig
from mobility.io import list_files, read_text, table_path, write_date, write_text
from mobility.runner import ValidationError


@dataclass
class TableResult:
    """The outcome of one table's suite on one date (what the JSON report holds)."""

    table: str
    date: str
    stage: str  # "input" or "output"
    success: bool
    expectations: list[dict[str, Any]]
    seconds: float
    validated_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    timings: dict[str, float] = field(default_factory=dict)

    def observed(self, column: str) -> Any:
        """The observed value of the first profile expectation on ``column`` (e.g. ``rows``)."""
        return next(e["observed"] for e in self.expectations if e["kwargs"].get("column") == column)

    @property
    def failed(self) -> list[str]:
        """One line per failed expectation: what was checked and what was observed."""
        return [f"{e['check']} (observed {e['observed']})" for e in self.expectations if not e["success"]]


def report_dir(lake: LakeConfig, date: dt.date) -> str:
    return f"{lake.reports.rstrip('/')}/quality/{date.isoformat()}"


def report_index(lake: LakeConfig, date: dt.date) -> str:
    """Where the date's HTML report is (what ``make demo`` prints)."""
    return f"{report_dir(lake, date)}/index.html"


# ------------------------------------------------------------------------- running a suite


def _batch_definition():
    """The one Spark data source / dataframe asset / whole-frame batch definition of the process."""
    context = ge_context()
    try:
        return context.data_sources.get("spark").get_asset("frames").get_batch_definition("whole")
    except Exception:  # not created yet in this process
        source = context.data_sources.add_spark("spark")
        return source.add_dataframe_asset("frames").add_batch_definition_whole_dataframe("whole")


def _validate(name: str, expectations: list, frame: DataFrame) -> list[dict[str, Any]]:
    """Run ``expectations`` as one suite on ``frame``; flatten the results."""
    if not expectations:
        return []
    suite = make_suite(name, [e.copy(update={"id": None}) for e in expectations])
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="SUMMARY")
    rows = []
    for r in result.results:
        cfg = r.expectation_config
        kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
        if (cfg.meta or {}).get("value_set"):
            kwargs["value_set"] = cfg.meta["value_set"]
        observed = r.result.get("observed_value") if r.result else None
        if r.exception_info and r.exception_info.get("raised_exception"):
            observed = f"error: {str(r.exception_info.get('exception_message'))[:200]}"
        rows.append({
            "expectation": cfg.type,
            "kwargs": kwargs,
            "check": (cfg.meta or {}).get("check", cfg.type),
            "on": (cfg.meta or {}).get("on", "profile"),
            "success": bool(r.success),
            "observed": observed,
        })
    return rows


def run_suite(table: str, df: DataFrame, p: SuiteParams, *, stage: str, **refs: DataFrame) -> TableResult:
    """Validate ``df`` with the table's suite: schema on ``df.limit(0)``, the rest on its profile."""
    t0 = time.perf_counter()
    mod = suite_module(table)
    suite = mod.build_suite(p)
    schema = [e for e in suite.expectations if (e.meta or {}).get("on") == "schema"]
    content = [e for e in suite.expectations if (e.meta or {}).get("on") != "schema"]
    empty = df.limit(0)
    try:
        results = _validate(f"{table}.schema", schema, empty)
    finally:
        empty.unpersist()  # GE persists what it validates (empty here, but a cache entry all the same)
    if all(r["success"] for r in results):
        prof = mod.profile(df, p, **refs).persist()
        try:
            results += _validate(table, content, prof)
        finally:
            prof.unpersist()
    else:  # the profile needs the contracted columns; say what was not checked
        results += [{"expectation": e.expectation_type, "kwargs": {"column": getattr(e, "column", None)},
                     "check": e.meta.get("check", ""), "on": "profile", "success": False,
                     "observed": "not run: the schema check failed"} for e in content]
    return TableResult(table=table, date=p.date.isoformat(), stage=stage, success=all(r["success"] for r in results),
                       expectations=results, seconds=round(time.perf_counter() - t0, 3))


# ------------------------------------------------------------------------- reports


def write_report(spark: SparkSession, lake: LakeConfig, date: dt.date, results: list[TableResult]) -> str:
    """Write each table's JSON result, then re-render the date's HTML index from all JSON results."""
    base = report_dir(lake, date)
    for r in results:
        write_text(spark, f"{base}/{r.table}.json", json.dumps(asdict(r), indent=2, default=str))
    all_results = [json.loads(read_text(spark, f"{base}/{name}"))
                   for name in list_files(spark, base, suffix=".json")]
    index = report_index(lake, date)
    write_text(spark, index, render_html(date, all_results))
    return index


def render_html(date: dt.date, results: list[dict[str, Any]]) -> str:
    """A plain, self-contained page: one section per suite, one row per expectation."""
    order = {t: i for i, t in enumerate(INPUT_TABLES)}
    results = sorted(results, key=lambda r: (r["stage"] != "input", order.get(r["table"], 99), r["table"]))
    esc = html.escape
    ok = sum(r["success"] for r in results)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Data quality {esc(date.isoformat())}</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:75em}table{border-collapse:collapse;width:100%}",
        "td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top;font-size:.9em}",
        ".pass{color:#176317;font-weight:bold}.fail{color:#b00020;font-weight:bold}code{font-size:.85em}",
        "</style></head><body>",
        f"<h1>Data quality, {esc(date.isoformat())}</h1>",
        f"<p>{ok} of {len(results)} suites passed. Suites are defined in <code>expectations/&lt;table&gt;.py</code>;",
        " the JSON result of each table sits next to this page.</p><ul>",
    ]
    for r in results:
        cls = "pass" if r["success"] else "fail"
        parts.append(f"<li><a href='#{esc(r['table'])}'>{esc(r['table'])}</a> ({esc(r['stage'])}) "
                     f"<span class='{cls}'>{'passed' if r['success'] else 'FAILED'}</span></li>")
    parts.append("</ul>")
    for r in results:
        cls = "pass" if r["success"] else "fail"
        parts.append(f"<h2 id='{esc(r['table'])}'>{esc(r['table'])} <span class='{cls}'>"
                     f"{'passed' if r['success'] else 'FAILED'}</span></h2>")
        parts.append(f"<p>suite <code>{esc(r['table'])}</code>, {esc(r['stage'])}, validated {esc(r['validated_at'])}"
                     f" in {r['seconds']:.1f} s</p>")
        parts.append("<table><tr><th>expectation</th><th>check</th><th>on</th><th>parameters</th>"
                     "<th>success</th><th>observed value</th></tr>")
        for e in r["expectations"]:
            ecls = "pass" if e["success"] else "fail"
            params = ", ".join(f"{k}={v}" for k, v in e["kwargs"].items())
            parts.append(
                f"<tr><td><code>{esc(e['expectation'])}</code></td><td>{esc(str(e['check']))}</td>"
                f"<td>{esc(e['on'])}</td><td><code>{esc(params)}</code></td>"
                f"<td class='{ecls}'>{'yes' if e['success'] else 'NO'}</td><td>{esc(str(e['observed']))}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _raise_failed(results: list[TableResult], what: str) -> None:
    failed = [r for r in results if not r.success]
    if failed:
        detail = "; ".join(f"{r.table}: " + ", ".join(r.failed) for r in failed)
        raise ValidationError(f"{what} failed data-quality suites: {detail}")


# ------------------------------------------------------------------------- the two gates


def validate_inputs(spark: SparkSession, cfg: Config, date: dt.date, frames: dict[str, DataFrame], *,
                    as_of: dt.datetime | None = None) -> list[TableResult]:
    """Check the raw inputs of stage 1; raise ValidationError before anything is written.

    ``frames`` maps the input table names to their frames (``network_events`` being the
    date's partition). The reports are written either way.
    """
    from transforms.stage1 import cells_valid_on

    p = SuiteParams.from_config(cfg, date, as_of=as_of)
    results = []
    for table in INPUT_TABLES:
        if table not in frames:
            continue
        refs = {}
        if table == "network_events":
            refs["known_cells"] = cells_valid_on(frames["cells"], date=date).select("cell_id")
        results.append(run_suite(table, frames[table], p, stage="input", **refs))
    write_report(spark, cfg.lake, date, results)
    _raise_failed(results, f"raw inputs of {date.isoformat()} (nothing was written)")
    return results


def _audit(cfg: Config, table: str, df: DataFrame, *, date: dt.date, expected_rows: int | None) -> TableResult:
    """Validate the rows that are about to be written (``df``, cached by the caller if costly)."""
    p = SuiteParams.from_config(cfg, date, expected_rows=expected_rows)
    result = run_suite(table, df, p, stage="output")
    result.timings = {"audit_s": result.seconds}
    return result


def _version(spark: SparkSession, path: str) -> int | None:
    """The table's current Delta version, or None if there is no table yet."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).history(1).first()["version"])


def _publish(spark: SparkSession, cfg: Config, table: str, df: DataFrame, result: TableResult, *,
             date: dt.date) -> None:
    """Write the audited rows as the date's one Delta commit and check that commit against the audit.

    The commit's own metrics (``numOutputRows`` from the Delta log, no scan) must equal
    the audited row count; otherwise ValidationError (the caller undoes the write).
    """
    from delta.tables import DeltaTable

    path = table_path(cfg.lake, table)
    t0 = time.perf_counter()
    write_date(df, path, date=date)
    result.timings["write_s"] = round(time.perf_counter() - t0, 3)
    metrics = DeltaTable.forPath(spark, path).history(1).first()["operationMetrics"] or {}
    audited = int(result.observed("rows"))
    if "numOutputRows" in metrics:
        written = int(metrics["numOutputRows"])
    elif metrics.get("numFiles") == "0":
        written = 0  # Delta records no numOutputRows for a write that added no file (an empty date)
    else:
        raise ValidationError(f"{table} {date.isoformat()}: the Delta commit recorded no numOutputRows, so it cannot "
                              "be reconciled with the audit (keep spark.databricks.delta.history.metricsEnabled on)")
    if written != audited:
        raise ValidationError(f"{table} {date.isoformat()}: the write committed {written} rows but {audited} "
                              "were audited")


def _undo(spark: SparkSession, cfg: Config, table: str, before: int | None, *, date: dt.date) -> None:
    """Put a table back as it was before this run's write (one writer per table and date assumed)."""
    from delta.tables import DeltaTable

    path = table_path(cfg.lake, table)
    if _version(spark, path) == before:
        return  # nothing was committed
    if before is None:  # the table was created by this run: it must hold nothing of it
        DeltaTable.forPath(spark, path).delete(F.col("date") == F.lit(date))
    else:
        DeltaTable.forPath(spark, path).restoreToVersion(before)


def write_audit_publish_all(spark: SparkSession, cfg: Config,
                            outputs: list[tuple[str, DataFrame, int | None]], *, date: dt.date,
                            persist: bool = True) -> str:
    """Audit every table first; write them only if all passed.

    Each frame is audited before it is written, and the audit and the write read the
    same cached rows (``persist=True``; pass ``False`` when the frames are cheap
    projections of data the caller has cached already), so every output is computed
    once and written once. Tables released together (footfall, presence, od_flows) must
    change together: publishing a new footfall beside an old presence of the same date
    could make a small group derivable by subtraction, so one failed suite publishes
    none of them. A failed suite raises ValidationError; the published tables keep their
    Delta versions, and the rejected rows are written nowhere (the report names what failed).
    """
    frames = [(table, df.persist(StorageLevel.MEMORY_AND_DISK) if persist else df, rows)
              for table, df, rows in outputs]
    results: list[TableResult] = []
    index = report_index(cfg.lake, date)
    try:
        results = [_audit(cfg, table, df, date=date, expected_rows=rows) for table, df, rows in frames]
        if all(r.success for r in results):
            befores = {table: _version(spark, table_path(cfg.lake, table)) for table, _, _ in frames}
            written = []
            try:
                for (table, df, _), r in zip(frames, results, strict=True):
                    written.append(table)
                    _publish(spark, cfg, table, df, r, date=date)
            except Exception:
                # All or nothing: undo every table this call has written, then fail.
                for table in reversed(written):
                    _undo(spark, cfg, table, befores[table], date=date)
                raise
        # Rows that failed are not kept anywhere: a failed suite may mean identifiers or
        # groups below k, which must not land in any table. The report says what failed.
    finally:
        if persist:
            for _, df, _ in frames:
                df.unpersist()
        if results:
            index = write_report(spark, cfg.lake, date, results)
    names = ", ".join(t for t, _, _ in outputs)
    _raise_failed(results, f"{names} {date.isoformat()} {'was' if len(outputs) == 1 else 'were'} not published:")
    return index
