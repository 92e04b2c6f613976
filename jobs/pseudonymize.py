"""Stage 1: raw events -> ``curated/pseudonymized_events``, ``curated/quarantine`` and ``curated/opt_outs``.

``curated/opt_outs`` is the opted-out set this run honoured (their pseudonyms and
when the set was taken), for audits; later stages still read the preferences in
force when *they* run (``jobs/_consent.py``).

    python -m jobs.pseudonymize --conf conf/local.yaml --date 2026-10-05
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from contract.columns import count_if
from contract.vocabulary import DISPOSITIONS, REASONS
from expectations import network_events as events_suite
from mobility.io import read_raw
from mobility.publish import Publisher
from mobility.quality import validate_inputs
from mobility.runner import Context, publish, run_job
from mobility.spark import persist_on_disk
from mobility.summaries import check_stage1, stage1_summary
from transforms.consent import pseudonyms_of, to_opt_outs
from transforms.hashing import KeyedHash
from transforms.kernels import BUILTIN, Kernels
from transforms.stage1 import (
    cells_valid_on,
    opted_out_msisdns,
    tag_events,
    to_pseudonymized_events,
    to_quarantine,
    with_pseudonyms,
)

# Tagging columns no output needs: left out of the cache.
SCRATCH = ("_opted_out", "_age", "_business", "_cell_known")


@dataclass
class OnePass:
    """Stage 1's one pass over the raw events: tag, count, hash, cache.

    The input gate starts it (:meth:`gate_profile`) once the other raw tables have
    passed their suites, so the gate's network_events profile costs no scan of its own.
    """

    ctx: Context
    inputs: dict[str, DataFrame]
    valid_cells: DataFrame
    hasher: KeyedHash
    tagged: DataFrame | None = None
    opted_out: DataFrame | None = None
    counts: Counter[tuple[str, str | None]] = field(default_factory=Counter)  # rows per (disposition, reason)
    raw: Observation = field(default_factory=lambda: Observation("network_events"))  # rows as read, before any join
    tally: Observation = field(default_factory=lambda: Observation("stage1_tally"))  # every tagged row, by outcome

    def gate_profile(self) -> pd.DataFrame:
        """Tag every event, count the tagged rows by disposition and by the suite's checks while the pass
        runs (one observation), and cache only the rows an output holds (kept and quarantined); return
        the network_events profile those counts give."""
        cfg, date = self.ctx.cfg, self.ctx.date
        p = cfg.privacy
        self.opted_out = opted_out_msisdns(self.inputs["privacy_preferences"], as_of=self.ctx.run_ts)
        checks = events_suite.row_checks(date, canonical=F.col("msisdn"), cell_known=F.col("_cell_known"))
        events = self.inputs["network_events"].observe(self.raw, F.count(F.lit(1)).alias("rows"))
        tagged = tag_events(events, date=date, opted_out=self.opted_out, valid_cells=self.valid_cells,
                            subscribers=self.inputs["subscribers"], age_band_edges=cfg.generalization.age_band_edges,
                            min_age=p.min_age, exclude_business=p.exclude_business)
        # The counts are aggregates of the pass that builds the cache, not a query over it: the cache
        # then holds neither the check columns nor the rows no output keeps (opted out, minors,
        # business lines: about a sixth of the bench's events), and those are never hashed.
        # The cache holds no raw identifier (already hashed). On disk, uncompressed (persist_on_disk): a
        # cached block is one input split (a 72 MB Parquet row group, ~5 M events), and at 20 M events on
        # a 4 GB heap the in-memory build ran out of memory, and so did re-reading a spilled block.
        self.tagged = persist_on_disk(
            tagged.observe(self.tally, *tally_metrics(checks))
            .filter(F.col("disposition").isin(*OUTPUT_DISPOSITIONS))
            .transform(with_pseudonyms, hasher=self.hasher)
            .drop(*SCRATCH)
        )
        cached = self.tagged.count()  # builds the cache; the observation is complete once it returns
        tally = self.tally.get
        by_disposition = {d: tally[f"disposition_{i}"] for i, d in enumerate(DISPOSITIONS)}
        by_reason = {r: tally[f"quarantine_{j}"] for j, r in enumerate(REASONS)}
        if sum(by_disposition.values()) != tally["rows"] or sum(by_reason.values()) != by_disposition["quarantine"]:
            raise ValueError(f"stage 1 tagged {tally['rows']} rows, but not each with a known disposition and, if "
                             f"quarantined, a known reason: {by_disposition}, {by_reason}")
        if cached != sum(by_disposition[d] for d in OUTPUT_DISPOSITIONS):
            raise ValueError(f"stage 1 cached {cached} rows, but counted {by_disposition} by disposition")
        self.counts.update({(d, None): n for d, n in by_disposition.items() if n and d != "quarantine"})
        self.counts.update({("quarantine", r): n for r, n in by_reason.items() if n})
        return events_suite.profile_of_counts(
            [({name: bool(k >> i & 1) for i, name in enumerate(events_suite.CHECKS)}, tally[f"outcome_{k}"])
             for k in range(2 ** len(events_suite.CHECKS)) if tally[f"outcome_{k}"]])


# The dispositions whose rows an output holds: kept (pseudonymized_events) and quarantine.
OUTPUT_DISPOSITIONS = ("kept", "quarantine")


def tally_metrics(checks: dict[str, Column]) -> list[Column]:
    """Aggregates of the tagged events (:func:`transforms.stage1.tag_events`, with the network_events
    suite's ``checks``): all rows, rows per disposition, quarantined rows per reason, and rows per
    outcome of the checks (bit ``i`` set when the ``i``-th check passed)."""
    disposition, reason = F.col("disposition"), F.col("reason")
    outcome = sum((F.when(checks[name], F.lit(1 << i)).otherwise(F.lit(0))
                   for i, name in enumerate(events_suite.CHECKS)), F.lit(0))
    return [
        F.count(F.lit(1)).alias("rows"),
        *[count_if(disposition == F.lit(d)).alias(f"disposition_{i}") for i, d in enumerate(DISPOSITIONS)],
        *[count_if((disposition == F.lit("quarantine")) & (reason == F.lit(r))).alias(f"quarantine_{j}")
          for j, r in enumerate(REASONS)],
        *[count_if(outcome == F.lit(k)).alias(f"outcome_{k}") for k in range(2 ** len(events_suite.CHECKS))],
    ]


def stage(ctx: Context) -> None:
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    inputs = {table: read_raw(spark, cfg.lake.raw, table, date.isoformat() if table == "network_events" else None)
              for table in ("network_events", "subscribers", "privacy_preferences", "cells")}
    valid_cells = cells_valid_on(inputs["cells"], date=date)
    kernels: Kernels = ctx.kernels or BUILTIN
    one = OnePass(ctx, inputs, valid_cells, hasher=kernels.keyed_hash(spark, ctx.keys.network))
    try:
        # Input gate: a raw partition that fails its suite stops the run before any write.
        checked = validate_inputs(spark, cfg, date, inputs, known_cells=valid_cells, as_of=ctx.run_ts,
                                  profiles={"network_events": one.gate_profile})
        ctx.summary["validation"] = {r.table: "passed" for r in checked}
        summary = ctx.summary["pseudonymize"] = stage1_summary(one.counts)
        check_stage1(summary, date=date, raw_rows=one.raw.get["rows"],
                     max_quarantine_share=cfg.quality.max_quarantine_share)
        outputs = [("pseudonymized_events", to_pseudonymized_events(one.tagged, date=date), summary["rows_out"]),
                   ("quarantine", to_quarantine(one.tagged, date=date), summary["quarantined_total"]),
                   ("opt_outs", to_opt_outs(pseudonyms_of(one.opted_out, hasher=one.hasher), date=date,
                                            taken_at=ctx.run_ts), None)]
        # Events and quarantine are cheap projections of the cached frame (audited and written
        # from it, not re-cached); opt_outs is the small preferences table, hashed.
        publish(ctx, outputs, persist=False)
    finally:
        if one.tagged is not None:
            one.tagged.unpersist()


def main(argv: list[str] | None = None, *, kernels: Kernels = BUILTIN, publisher: Publisher | None = None) -> int:
    return run_job("pseudonymize", argv, stage, needs=("network",), kernels=kernels, publisher=publisher)


if __name__ == "__main__":
    sys.exit(main())
