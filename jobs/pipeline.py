"""All stages for one date: pseudonymize -> anonymize -> aggregate.

    python -m jobs.pipeline --conf conf/local.yaml --date 2026-10-05

Both secrets are checked before the first stage starts, so a missing one fails
the run with nothing written.
"""

from __future__ import annotations

import sys

from jobs import aggregate, anonymize, pseudonymize
from mobility.runner import Context, run_job


def stage(ctx: Context) -> None:
    pseudonymize.stage(ctx)
    anonymize.stage(ctx)
    aggregate.stage(ctx)


def main(argv: list[str] | None = None) -> int:
    return run_job("pipeline", argv, stage, secrets=("network_key_env", "daily_key_env"))


if __name__ == "__main__":
    sys.exit(main())
