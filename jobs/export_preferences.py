"""Export the privacy portal's consent changes to ``<lake.raw>/privacy_preferences``.

    python -m jobs.export_preferences --conf conf/local.yaml --date YYYY-MM-DD [--set section.key=value ...]

Appends the changes recorded up to the cut-off - the end of ``--date`` (next midnight,
UTC) or now, whichever is earlier - exactly once (see :mod:`portal.export`). Run it
before the pipeline for the same date. No Spark session and no secret are needed: the
job moves rows from the portal's database to one Parquet file. The summary holds
counts and change ids, never a number.

Exit codes as every job: 0 ok; 1 the export failed (database or lake unreachable);
2 mis-configured (including a config without a ``portal`` section).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys

from sqlalchemy.exc import SQLAlchemyError

from contract.errors import ConfigError
from mobility.config import load_config
from mobility.runner import format_summary, parse_args

JOB = "export_preferences"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(f"python -m jobs.{JOB}", argv)
    try:
        date = dt.date.fromisoformat(args.date)
    except ValueError:
        print(f"error: --date '{args.date}' is not a date of the form YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.conf, args.set)
        if cfg.portal is None:
            raise ConfigError("missing config section 'portal'")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from portal.export import export_preferences
    from portal.lake import resolve
    from portal.store import make_engine

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        engine = make_engine(cfg.portal.database_url)
        result = export_preferences(engine, cfg.lake.raw, date=date, now=now)
    except (SQLAlchemyError, OSError) as exc:
        print(f"error: export of privacy preferences failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    summary = {k: (v.isoformat() + "Z" if isinstance(v, dt.datetime) else v)
               for k, v in dataclasses.asdict(result).items()}
    print(format_summary(JOB, date, summary))
    fs, reports = resolve(cfg.lake.reports.rstrip("/"))
    folder = f"{reports}/runs/{date.isoformat()}"
    fs.create_dir(folder, recursive=True)
    payload = {"job": JOB, "date": date.isoformat(), "run_ts": now.isoformat() + "Z", "summary": summary}
    with fs.open_output_stream(f"{folder}/{JOB}.json") as out:
        out.write(json.dumps(payload, indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
