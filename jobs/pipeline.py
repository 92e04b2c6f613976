"""All stages for one date: pseudonymize -> anonymize -> aggregate.

    python -m jobs.pipeline --conf conf/local.yaml --date 2026-10-05

Both secrets are checked before the first stage starts, so a missing one fails
the run with nothing written.
"""

from __future__ import annotations

import sys

from jobs import aggregate, anonymize, pseudonymize
from mobility.publish import Publisher
from mobility.runner import Context, run_job
from transforms.kernels import BUILTIN, Kernels


def stage(ctx: Context) -> None:
    pseudonymize.stage(ctx)
    anonymize.stage(ctx)
    aggregate.stage(ctx)


def main(argv: list[str] | None = None, *, kernels: Kernels = BUILTIN, publisher: Publisher | None = None) -> int:
    return run_job("pipeline", argv, stage, needs=("network", "daily"), kernels=kernels, publisher=publisher)


if __name__ == "__main__":
    sys.exit(main())
