"""Running the Great Expectations suites: the input gate before stage 1, and the audit of every output.

Suites live in ``expectations/<table>.py``. This module runs them with Great
Expectations on a Spark data source and turns a failed suite into
:class:`contract.errors.ValidationError` naming the failed expectations; the report
(JSON + HTML under ``<lake.reports>/quality/<date>/``) is ``mobility.quality_report``,
publishing (audit, write, reconcile, undo) is ``mobility.publish``.

Cost: GE runs separate Spark jobs per metric, so it never sees a big table. Schema
expectations run on ``df.limit(0)`` (answered from the schema, no job); everything else
runs on the table's *profile*, a few rows computed by one Spark aggregation and handed
to GE as a pandas frame, so that GE itself starts no Spark job.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from contract.columns import digest_hex
from contract.errors import ValidationError
from expectations import INPUT_TABLES, suite_module
from expectations.common import DIGEST, SuiteParams, ge_context, make_suite
from mobility import progress
from mobility.config import Config
from mobility.quality_report import write_report


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
    # A release table's content digest from its profile (expectations.common.DIGEST), for the
    # release ledger; None for other tables. Not part of the quality report.
    digest: str | None = None

    def observed(self, column: str) -> Any:
        """The observed value of the first profile expectation on ``column`` (e.g. ``rows``)."""
        return next(e["observed"] for e in self.expectations if e["kwargs"].get("column") == column)

    @property
    def failed(self) -> list[str]:
        """One line per failed expectation: what was checked and what was observed."""
        return [f"{e['check']} (observed {e['observed']})" for e in self.expectations if not e["success"]]


# ------------------------------------------------------------------------- running a suite


def _batch_definition(kind: str):
    """The process's one whole-frame batch definition of a ``spark`` or ``pandas`` data source."""
    context = ge_context()
    if kind in context.data_sources.all():
        return context.data_sources.get(kind).get_asset("frames").get_batch_definition("whole")
    source = context.data_sources.add_spark(kind) if kind == "spark" else context.data_sources.add_pandas(kind)
    return source.add_dataframe_asset("frames").add_batch_definition_whole_dataframe("whole")


def _plain(value: Any) -> Any:
    """A numpy scalar (what GE reports on a pandas frame) as the Python value the report and callers expect."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict, str)) else value


def _validate(name: str, expectations: list, frame: DataFrame | pd.DataFrame) -> list[dict[str, Any]]:
    """Run ``expectations`` as one suite on ``frame`` (a Spark frame, or a profile as pandas); flatten the results."""
    if not expectations:
        return []
    suite = make_suite(name, [e.copy(update={"id": None}) for e in expectations])
    kind = "pandas" if isinstance(frame, pd.DataFrame) else "spark"
    batch = _batch_definition(kind).get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="SUMMARY")
    rows = []
    for r in result.results:
        cfg = r.expectation_config
        kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
        if (cfg.meta or {}).get("value_set"):
            kwargs["value_set"] = cfg.meta["value_set"]
        observed = _plain(r.result.get("observed_value")) if r.result else None
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


def run_suite(table: str, df: DataFrame, p: SuiteParams, *, stage: str,
              profile: Callable[[], pd.DataFrame] | None = None, **refs: DataFrame) -> TableResult:
    """Validate ``df`` with the table's suite: schema on ``df.limit(0)``, the rest on its profile.

    ``profile``, if given, computes the profile instead of the table module's ``profile``
    (e.g. from a pass the job makes anyway); it is called only if the schema passed.
    """
    t0 = time.perf_counter()
    mod = suite_module(table)
    suite = mod.build_suite(p)
    schema = [e for e in suite.expectations if (e.meta or {}).get("on") == "schema"]
    content = [e for e in suite.expectations if (e.meta or {}).get("on") != "schema"]
    empty = df.limit(0)
    digest = None
    try:
        results = _validate(f"{table}.schema", schema, empty)
    finally:
        empty.unpersist()  # GE persists what it validates (empty here, but a cache entry all the same)
    if all(r["success"] for r in results):
        # The profile is computed here, by one Spark job, outside GE: GE turns a failed Spark job
        # into "observed None" results, hiding the real cause (e.g. a corrupt input file); here it
        # surfaces as raised. GE then validates those few rows as pandas, with no Spark job of its
        # own (on a Spark frame it ran several per suite).
        rows = profile() if profile is not None else mod.profile(df, p, **refs).toPandas()
        if DIGEST in rows.columns and len(rows) == 1:
            digest = digest_hex(rows[DIGEST].iloc[0])
            rows = rows.drop(columns=[DIGEST])
        results += _validate(table, content, rows)
    else:  # the profile needs the contracted columns; say what was not checked
        results += [{"expectation": e.expectation_type, "kwargs": {"column": getattr(e, "column", None)},
                     "check": e.meta.get("check", ""), "on": "profile", "success": False,
                     "observed": "not run: the schema check failed"} for e in content]
    return TableResult(table=table, date=p.date.isoformat(), stage=stage, success=all(r["success"] for r in results),
                       expectations=results, seconds=round(time.perf_counter() - t0, 3), digest=digest)


def raise_failed(results: list[TableResult], what: str) -> None:
    """Raise ValidationError naming every failed expectation of ``results``, if any failed."""
    failed = [r for r in results if not r.success]
    if failed:
        detail = "; ".join(f"{r.table}: " + ", ".join(r.failed) for r in failed)
        raise ValidationError(f"{what} failed data-quality suites: {detail}")


# ------------------------------------------------------------------------- the two gates


def validate_inputs(spark: SparkSession, cfg: Config, date: dt.date, frames: dict[str, DataFrame], *,
                    known_cells: DataFrame, as_of: dt.datetime | None = None,
                    profiles: dict[str, Callable[[], pd.DataFrame]] | None = None) -> list[TableResult]:
    """Check the raw inputs of stage 1; raise ValidationError before anything is written.

    ``frames`` maps the input table names to their frames (``network_events`` being the
    date's partition); ``known_cells`` holds the ``cell_id`` of every cell valid on the
    date. ``profiles`` may compute a table's profile instead of its suite module (see
    :func:`run_suite`), once every other table has passed. The reports are written either way.
    """
    p = SuiteParams(date=date, cfg=cfg, as_of=as_of)
    profiles = profiles or {}
    progress.step(f"input gate: checking {sum(t in frames for t in INPUT_TABLES)} raw tables")
    by_table: dict[str, TableResult] = {}
    # Tables with a profile of the caller's last: its computation may read the other tables,
    # so it runs only once they passed (else the suite module's own profile is used).
    for table in sorted((t for t in INPUT_TABLES if t in frames), key=lambda t: t in profiles):
        refs = {"known_cells": known_cells.select("cell_id")} if table == "network_events" else {}
        profile = profiles.get(table) if all(r.success for r in by_table.values()) else None
        by_table[table] = run_suite(table, frames[table], p, stage="input", profile=profile, **refs)
    results = [by_table[t] for t in INPUT_TABLES if t in by_table]
    write_report(spark, cfg.lake, date, results)
    raise_failed(results, f"raw inputs of {date.isoformat()} (nothing was written)")
    return results


def audit(cfg: Config, table: str, df: DataFrame, *, date: dt.date, expected_rows: int | None,
          **refs: DataFrame) -> TableResult:
    """Validate the rows that are about to be written (``df``, cached by the caller if costly).

    ``refs`` are reference frames the table's profile needs (passed on to it).
    """
    p = SuiteParams(date=date, cfg=cfg, expected_rows=expected_rows)
    result = run_suite(table, df, p, stage="output", **refs)
    result.timings = {"audit_s": result.seconds}
    return result
