"""All stages for one date: pseudonymize -> anonymize -> aggregate.

    python -m jobs.pipeline --conf conf/local.yaml --date 2026-10-05

Both secrets are checked before the first stage starts, so a missing one fails
the run with nothing written.
"""

from __future__ import annotations

import sys

from jobs import aggregate, anonymize, pseudonymize
from mobility import progress
from mobility.publish import Publisher
from mobility.runner import Context, run_job
from transforms.kernels import BUILTIN, Kernels

STAGES = (("pseudonymize", pseudonymize.stage), ("anonymize", anonymize.stage), ("aggregate", aggregate.stage))


def stage(ctx: Context) -> None:
    for number, (name, body) in enumerate(STAGES, 1):
        with progress.current().stage(name, number, len(STAGES),
                                      rows=lambda name=name: progress.rows_out(ctx.summary.get(name))):
            body(ctx)


def main(argv: list[str] | None = None, *, kernels: Kernels = BUILTIN, publisher: Publisher | None = None) -> int:
    return run_job("pipeline", argv, stage, needs=("network", "daily"), kernels=kernels, publisher=publisher,
                   staged=True)


if __name__ == "__main__":
    sys.exit(main())
