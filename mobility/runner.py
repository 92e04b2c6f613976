"""The shared command line of every job: parse, load config, check secrets, run, summarize.

    python -m jobs.<job> --conf conf/<env>.yaml --date YYYY-MM-DD [--set section.key=value ...]

Exit codes: 0 success; 1 the data failed (bad input, failed validation); 2 the run
was mis-configured (config error, missing secret). Failures print one line to stderr.
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

from contract.errors import ConfigError, InputError, SecretError, ValidationError
from mobility.config import Config, load_config
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
            kernels: Any = None, publisher: Publisher | None = None,
            extra_args: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Run ``body`` as a command-line job.

    ``needs`` names the secrets the job uses (``network``, ``daily``); they are read
    before the Spark session starts, so a missing secret fails the run with nothing
    written. ``extra_args`` may add a job's own arguments to the parser; the body
    finds them in ``ctx.args``.
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
    spark = build_session(f"mobility-insights-{job}", cfg.spark)
    ctx = Context(spark=spark, cfg=cfg, date=date, run_ts=dt.datetime.now(dt.UTC).replace(tzinfo=None), keys=keys,
                  job=job, kernels=kernels, publisher=publisher or DeltaPublisher(), args=args)
    try:
        body(ctx)
    except (InputError, ValidationError, FileNotFoundError) as exc:
        print(format_summary(job, date, ctx.summary))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(job, date, ctx.summary))
    write_summary(ctx, job)
    return 0


def heal(ctx: Context, tables: tuple[str, ...]) -> None:
    """Before anything else: roll back what a crashed run left in ``tables``, and say so in the summary."""
    healed = recover(ctx.spark, ctx.cfg.lake, tables, job=ctx.job)
    if healed:
        ctx.summary.setdefault("recovered", []).extend(healed)


def publish(ctx: Context, outputs: list, *, persist: bool = True) -> Publication:
    """Publish ``outputs`` of the context's date with the context's publisher; note it in the summary."""
    publication = ctx.publisher(ctx.spark, ctx.cfg, outputs, date=ctx.date, persist=persist, job=ctx.job)
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


def write_summary(ctx: Context, job: str) -> None:
    """Keep the run summary as JSON beside the data-quality reports (for auditors)."""
    uri = f"{ctx.cfg.lake.reports.rstrip('/')}/runs/{ctx.date.isoformat()}/{job}.json"
    payload = {"job": job, "date": ctx.date.isoformat(), "run_ts": ctx.run_ts.isoformat() + "Z",
               "summary": ctx.summary}
    write_text(ctx.spark, uri, json.dumps(payload, indent=2, default=str))
