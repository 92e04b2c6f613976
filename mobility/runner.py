"""The shared command line of every job: parse, load config, check secrets, run, summarize.

    python -m jobs.<job> --conf conf/<env>.yaml --date YYYY-MM-DD [--set section.key=value ...]

Exit codes: 0 success; 1 the data failed (bad input, failed validation); 2 the run
was mis-configured (config error, missing secret). Failures end with one ``error:``
line on stderr naming the real cause (``mobility.diagnose``); the details (Spark's
log, a Python traceback) are in the run's log file, ``<lake.reports>/runs/<date>/<job>.log``
(``logs/runs/...`` when the reports live on a remote file system). ``--verbose``
restores Spark's full console output.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from contract.errors import ConfigError, SecretError
from mobility import console, progress
from mobility.config import Config, load_config
from mobility.diagnose import explain
from mobility.io import write_text
from mobility.ledger import recover
from mobility.publish import DeltaPublisher, Publication, Publisher
from mobility.secrets import Keys
from mobility.spark import build_session


@dataclass
class Context:
    """What a job body gets: session, config, the date, the secrets it asked for, and what varies.

    ``kernels`` is the job's :class:`transforms.kernels.Kernels` (the job supplies its
    default; ``mobility`` does not depend on ``transforms``); ``publisher`` makes outputs
    visible (:class:`mobility.publish.DeltaPublisher` unless a test or tool passes another).
    """

    spark: SparkSession
    cfg: Config
    date: dt.date
    run_ts: dt.datetime
    keys: Keys
    job: str = ""
    kernels: Any = None
    publisher: Publisher = field(default_factory=DeltaPublisher)
    summary: dict[str, Any] = field(default_factory=dict)
    args: argparse.Namespace | None = None  # the parsed command line, for jobs with extra arguments


def parse_args(prog: str, argv: list[str] | None,
               extra_args: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--conf", required=True, help="config file, e.g. conf/local.yaml")
    p.add_argument("--date", required=True, help="event date to process, YYYY-MM-DD")
    p.add_argument("--set", action="append", default=[], metavar="section.key=value",
                   help="override a config key (repeatable)")
    p.add_argument("--verbose", action="store_true",
                   help="show Spark's full log (warnings, stack traces) on the console as well")
    if extra_args is not None:
        extra_args(p)  # a job's own arguments, e.g. jobs.store_report's --stores
    return p.parse_args(argv)


def format_summary(job: str, date: dt.date, summary: dict[str, Any]) -> str:
    """The run summary as short human-readable lines."""
    lines = [f"== {job} {date.isoformat()} =="]

    def emit(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                emit(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
            lines.append(f"  {prefix:<48} {shown}")

    emit("", summary)
    return "\n".join(lines)


def run_job(job: str, argv: list[str] | None, body: Callable[[Context], None], *, needs: tuple[str, ...] = (),
            kernels: Any = None, publisher: Publisher | None = None, staged: bool = False,
            extra_args: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Run ``body`` as a command-line job.

    ``needs`` names the secrets the job uses (``network``, ``daily``); they are read
    before the Spark session starts, so a missing secret fails the run with nothing
    written. ``staged``: the body announces its own numbered stages (``jobs.pipeline``);
    otherwise the body is announced as stage 1/1. ``extra_args`` may add a job's own
    arguments to the parser; the body finds them in ``ctx.args``.
    """
    args = parse_args(f"python -m jobs.{job}", argv, extra_args)
    try:
        date = dt.date.fromisoformat(args.date)
    except ValueError:
        print(f"error: --date '{args.date}' is not a date of the form YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.conf, args.set)
        keys = Keys.read(cfg.secrets, needs)
    except (ConfigError, SecretError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log = console.run_log(cfg.lake.reports, date, job)
    with console.quiet(log, verbose=args.verbose):
        return _run(job, args, date, cfg, keys, body, log=log, kernels=kernels, publisher=publisher, staged=staged,
                    show_progress=progress.Progress.wanted(argv))


def _run(job: str, args: argparse.Namespace, date: dt.date, cfg: Config, keys: Keys, body: Callable[[Context], None],
         *, log: Any, kernels: Any, publisher: Publisher | None, staged: bool, show_progress: bool) -> int:
    """Session, body, summary; any failure becomes one ``error:`` line (``mobility.diagnose``)."""
    ctx: Context | None = None
    try:
        spark = build_session(f"mobility-insights-{job}", cfg.spark, log_file=log, verbose=args.verbose)
        ctx = Context(spark=spark, cfg=cfg, date=date, run_ts=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                      keys=keys, job=job, kernels=kernels, publisher=publisher or DeltaPublisher(), args=args)
        progress.activate(progress.Progress(show_progress, spark=spark))
        if staged:
            body(ctx)
        else:
            with progress.current().stage(job, 1, 1, rows=lambda: progress.rows_out(ctx.summary.get(job))):
                body(ctx)
    except Exception as exc:
        code, message = explain(exc, log=str(log))
        console.log_exception(log, exc)
        if ctx is not None:
            print(format_summary(job, date, ctx.summary))
            try:  # a failed run's counts are kept too (what it excluded before it stopped), with the error
                write_summary(ctx, job, error=message)
            except Exception as write_exc:  # the run's own error is the one to report
                console.log_exception(log, write_exc)
        print(f"log: {log}", file=sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        return code
    finally:
        progress.activate(None)
    print(format_summary(job, date, ctx.summary))
    write_summary(ctx, job)
    print(f"log: {log}", file=sys.stderr)
    return 0


def heal(ctx: Context, tables: tuple[str, ...]) -> None:
    """Before anything else: roll back what a crashed run left in ``tables``, and say so in the summary."""
    healed = recover(ctx.spark, ctx.cfg.lake, tables, job=ctx.job)
    if healed:
        ctx.summary.setdefault("recovered", []).extend(healed)


def publish(ctx: Context, outputs: list, *, persist: bool = True, refs: dict | None = None) -> Publication:
    """Publish ``outputs`` of the context's date with the context's publisher; note it in the summary.

    ``refs``: reference frames a table's suite needs, per table (``mobility.publish.Refs``).
    """
    publication = ctx.publisher(ctx.spark, ctx.cfg, outputs, date=ctx.date, persist=persist, job=ctx.job,
                                **({"refs": refs} if refs else {}))
    validation = ctx.summary.setdefault("validation", {})
    validation.update({table: "passed" for table, _, _ in outputs})
    validation["report"] = publication.report
    if publication.recovered:
        ctx.summary.setdefault("recovered", []).extend(publication.recovered)
    if publication.run_id:  # one line for every table the run published: table@version
        versions = " ".join(f"{table}@{v}" for table, v in publication.versions.items())
        ctx.summary["ledger"] = f"{ctx.summary['ledger']} {versions}" if "ledger" in ctx.summary else versions
        if publication.republished:
            ctx.summary["republished"] = "yes (superseded versions purged)"
    return publication


def write_summary(ctx: Context, job: str, *, error: str | None = None) -> None:
    """Keep the run summary as JSON beside the data-quality reports (for auditors); a failed run's with its error."""
    uri = f"{ctx.cfg.lake.reports.rstrip('/')}/runs/{ctx.date.isoformat()}/{job}.json"
    payload = {"job": job, "date": ctx.date.isoformat(), "run_ts": ctx.run_ts.isoformat() + "Z",
               "outcome": "failed" if error else "succeeded", "summary": ctx.summary}
    if error:
        payload["error"] = error
    write_text(ctx.spark, uri, json.dumps(payload, indent=2, default=str))
