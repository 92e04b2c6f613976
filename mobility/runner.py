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

from mobility.config import Config, ConfigError, load_config
from mobility.schemas import InputError
from mobility.secrets import Secret, SecretError, read_secret


class ValidationError(RuntimeError):
    """Data failed a quality gate; nothing unsafe was published."""


@dataclass
class Context:
    """What a job body gets: session, config, the date and the secrets it asked for."""

    spark: SparkSession
    cfg: Config
    date: dt.date
    run_ts: dt.datetime
    secrets: dict[str, Secret]
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


def run_job(job: str, argv: list[str] | None, body: Callable[[Context], None], *,
            secrets: tuple[str, ...],
            extra_args: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Run ``body`` as a command-line job.

    ``secrets`` names the config fields (``network_key_env``, ``daily_key_env``) whose
    secrets the job needs; they are read before the Spark session starts, so a
    missing secret fails the run with nothing written. ``extra_args`` may add a job's
    own arguments to the parser; the body finds them in ``ctx.args``.
    """
    args = parse_args(f"python -m jobs.{job}", argv, extra_args)
    try:
        date = dt.date.fromisoformat(args.date)
    except ValueError:
        print(f"error: --date '{args.date}' is not a date of the form YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.conf, args.set)
        keys = {name: read_secret(getattr(cfg.secrets, name)) for name in secrets}
    except (ConfigError, SecretError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from mobility.spark import build_session

    spark = build_session(f"mobility-insights-{job}", cfg.spark)
    ctx = Context(spark=spark, cfg=cfg, date=date, run_ts=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                  secrets=keys, args=args)
    try:
        body(ctx)
    except (InputError, ValidationError, FileNotFoundError) as exc:
        print(format_summary(job, date, ctx.summary))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(job, date, ctx.summary))
    write_summary(ctx, job)
    return 0


def write_summary(ctx: Context, job: str) -> None:
    """Keep the run summary as JSON beside the data-quality reports (for auditors)."""
    from mobility.io import write_text

    uri = f"{ctx.cfg.lake.reports.rstrip('/')}/runs/{ctx.date.isoformat()}/{job}.json"
    payload = {"job": job, "date": ctx.date.isoformat(), "run_ts": ctx.run_ts.isoformat() + "Z",
               "summary": ctx.summary}
    write_text(ctx.spark, uri, json.dumps(payload, indent=2, default=str))
