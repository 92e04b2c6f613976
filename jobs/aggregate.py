"""Stage 3: anonymized events and trips -> ``insights/footfall``, ``insights/presence``, ``insights/od_flows``.

    python -m jobs.aggregate --conf conf/local.yaml --date 2026-10-05

read -> count -> suppress (primary, then whole breakdowns where the remainder would
be small or pinned) -> privacy audit -> publish (checked against earlier releases). The
aggregates are small; they are cached so that counting, the audit and the writes do
not recount the events. Nothing is published unless the privacy audit finds nothing.

Opt-outs: the rows of everyone whose opt-out is in force *now* are dropped from both
inputs (their daily ids derived from the current raw preferences with the network and
daily keys, ``jobs/_consent.py``), so a stage-3 run after a new opt-out does not count
that person. A re-run of a date released *before* the opt-out is then normally
refused by the republish check (exit 1): the new release minus the old one would be
that one person. The earlier release, made while they had consented, stays.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contract.errors import InputError, ValidationError
from contract.vocabulary import GENDERS, RELEASE_KEYS, age_bands
from jobs._consent import drop_opted_out_daily
from mobility.io import check_schema, path_exists, read_raw
from mobility.ledger import read_pinned
from mobility.publish import Publisher
from mobility.runner import Context, publish, run_job
from mobility.summaries import aggregate_summary
from transforms.disclosure import audit_release, describe_findings, mark_suppression, release_counts
from transforms.dp import (
    DpPlan,
    add_noise,
    bound_contributions,
    count_bounded,
    over_public_keys,
    public_keys,
    select_noisy,
)
from transforms.flows import count_od_trips, count_presence, invalid_region_factors, to_od_flows, to_presence
from transforms.kernels import BUILTIN, Kernels
from transforms.stage1 import cells_valid_on
from transforms.stage2 import cells_at_resolutions
from transforms.stage3 import count_visitors, to_footfall

REGION_FACTORS = T.StructType(
    [T.StructField("h3_cell", T.StringType()), T.StructField("expansion_factor", T.DoubleType())]
)


def read_region_factors(ctx: Context) -> DataFrame | None:
    """The optional per-region expansion factors, checked before use (a small reference table)."""
    path = ctx.cfg.insights.region_factors
    if path is None:
        return None
    if not path_exists(ctx.spark, path):
        raise FileNotFoundError(f"insights.region_factors: no Parquet table at {path}")
    try:
        factors = ctx.spark.read.parquet(path)
    except AnalysisException as exc:
        raise InputError(f"insights.region_factors at {path} cannot be read: {str(exc).splitlines()[0]}") from exc
    check_schema(factors, REGION_FACTORS, "region_factors")
    bad = invalid_region_factors(factors, h3_resolution=ctx.cfg.generalization.h3_resolution).limit(3).collect()
    if bad:
        shown = ", ".join(f"{r['h3_cell']}={r['expansion_factor']} ({r['reason']})" for r in bad)
        raise ValidationError(f"insights.region_factors: unusable rows, e.g. {shown}")
    return factors.select("h3_cell", "expansion_factor")


def stage(ctx: Context, *, suppress: Callable[..., DataFrame] = mark_suppression) -> None:
    """``suppress`` marks footfall groups (:func:`transforms.disclosure.mark_suppression`)."""
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    kernels: Kernels = ctx.kernels or BUILTIN
    k, g = cfg.privacy.k_min, cfg.generalization
    anonymized = read_pinned(spark, cfg.lake, "anonymized_events", date, what="curated/anonymized_events")
    trips = read_pinned(spark, cfg.lake, "anonymized_trips", date, what="curated/anonymized_trips")
    # Opt-outs in force now, whenever stage 2 ran: a re-run of this stage alone honours them.
    kept, excluded, opted_out = drop_opted_out_daily(ctx, {"anonymized_events": anonymized,
                                                           "anonymized_trips": trips})
    anonymized, trips = kept["anonymized_events"], kept["anonymized_trips"]
    ctx.summary["aggregate"] = {"excluded_opted_out_rows": excluded}
    factors = read_region_factors(ctx)
    if cfg.privacy.mode == "differential_privacy":
        try:
            release_dp(ctx, anonymized, trips, factors)
        finally:
            opted_out.unpersist()
        return

    # One row per person, window and cell: footfall and presence count rows; trips count distinct ids.
    presence_counts = count_presence(anonymized, distinct=kernels.count_people).persist()
    labels = len(age_bands(g.age_band_edges)) * len(GENDERS)  # public: every (age band, gender) pair
    marked = suppress(count_visitors(anonymized, distinct=kernels.count_people), k_min=k, labels=labels).persist()
    od_groups = count_od_trips(trips, distinct=kernels.distinct_people).persist()
    cached = [opted_out, presence_counts, marked, od_groups]
    try:
        footfall = to_footfall(marked.filter("suppression IS NULL"), k_min=k, h3_resolution=g.h3_resolution)
        presence = to_presence(presence_counts, k_min=k, h3_resolution=g.h3_resolution,
                               market_share=cfg.insights.market_share, region_factors=factors).persist()
        cached.append(presence)
        od_flows = to_od_flows(od_groups, k_min=k, h3_resolution=g.od_h3_resolution)
        counts = release_counts(marked, presence_counts, od_groups, k_min=k).first().asDict()
        summary = ctx.summary["aggregate"] = {**ctx.summary["aggregate"], **aggregate_summary(
            counts, expansion="region_factors" if factors is not None else "market_share")}

        # Audit exactly what is about to be published; a finding stops the run before any write.
        findings = audit_release(footfall, presence, od_flows, k, labels=labels)
        summary["audit_findings"] = n_findings = findings.count()
        if n_findings:
            raise ValidationError(f"privacy audit: {n_findings} finding(s), nothing published: "
                                  f"{describe_findings(findings)}")
        # Then the three tables as one release: suites, the republish check against earlier
        # releases of the date, writes reconciled with the audit, one ledger commit.
        outputs = [("footfall", footfall, summary["footfall_released"]),
                   ("presence", presence, summary["presence_released"]),
                   ("od_flows", od_flows, summary["od_flows_released"])]
        publish(ctx, outputs, persist=False)  # all cached above
    finally:
        for df in cached:
            df.unpersist()


def release_dp(ctx: Context, anonymized: DataFrame, trips: DataFrame, factors: DataFrame | None) -> None:
    """The differential-privacy release (``transforms/dp.py``): bound, count, add OpenDP noise, publish.

    Footfall and presence are noised over the public key set (the cell plan's H3 cells of
    the date x the day's windows x the labels); od_flows go through DP partition
    selection. Noisy counts below ``k_min`` are not released (post-processing). The
    release ledger records ε, δ, the bounds and the mechanism; the publisher refuses a
    release that would exceed the date's budget (``dp.budget_epsilon``, ``dp.budget_delta``).
    """
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    k, g = cfg.privacy.k_min, cfg.generalization
    plan = DpPlan.of(cfg.dp, k_min=k)
    summary = ctx.summary["aggregate"] = {**ctx.summary["aggregate"], "mode": "differential_privacy",
                                          **plan.summary()}
    cells_h3 = cells_at_resolutions(cells_valid_on(read_raw(spark, cfg.lake.raw, "cells"), date=date),
                                    {"h3_cell": g.h3_resolution}).select(F.col("cell_h3_cell").alias("h3_cell"))
    labels = tuple((a, s) for a in age_bands(g.age_band_edges) for s in GENDERS)
    footfall_keys = tuple(RELEASE_KEYS["footfall"])
    presence_keys = tuple(RELEASE_KEYS["presence"])
    od_keys = tuple(RELEASE_KEYS["od_flows"])

    def counted(df: DataFrame, keys: tuple[str, ...], bound: int, count_col: str) -> DataFrame:
        bounded = bound_contributions(df, id_col="daily_id", group_cols=keys, max_groups=bound)
        return count_bounded(bounded, group_cols=keys, count_col=count_col)

    exact_footfall = counted(anonymized, footfall_keys, plan.footfall.max_groups, "visitors")
    exact_presence = counted(anonymized, presence_keys, plan.presence.max_groups, "visitors")
    exact_od = counted(trips, od_keys, plan.od_flows.max_groups, "trips")
    public_footfall = public_keys(cells_h3, date=date, window_minutes=g.window_minutes, labels=labels)
    public_presence = public_keys(cells_h3, date=date, window_minutes=g.window_minutes)
    # Noise is random on every evaluation: materialise each noisy table once, so that the
    # audit, the suites and the write all see the same values (a lost block fails the run).
    noisy_footfall = add_noise(over_public_keys(exact_footfall, public_footfall, count_col="visitors"),
                               plan.footfall, count_col="visitors").localCheckpoint(eager=True)
    noisy_presence = add_noise(over_public_keys(exact_presence, public_presence, count_col="visitors"),
                               plan.presence, count_col="visitors").localCheckpoint(eager=True)
    noisy_od = select_noisy(exact_od, plan.od_flows, key_cols=od_keys, count_col="trips").localCheckpoint(eager=True)
    # Post-processing: only noisy counts at or above each table's release threshold (>= k_min).
    footfall = to_footfall(noisy_footfall, k_min=plan.footfall.threshold, h3_resolution=g.h3_resolution)
    presence = to_presence(noisy_presence, k_min=plan.presence.threshold, h3_resolution=g.h3_resolution,
                           market_share=cfg.insights.market_share, region_factors=factors)
    od_flows = to_od_flows(noisy_od, k_min=plan.od_flows.threshold, h3_resolution=g.od_h3_resolution)
    summary["public_keys"] = {"footfall": noisy_footfall.count(), "presence": noisy_presence.count()}  # materialised
    summary["audit"] = "differential privacy: the k-anonymity remainder rules do not apply; suites and budget do"
    publication = publish(ctx, [("footfall", footfall, None), ("presence", presence, None),
                                ("od_flows", od_flows, None)])
    summary.update({f"{t}_released": n for t, n in publication.rows.items()})


def main(argv: list[str] | None = None, *, kernels: Kernels = BUILTIN, publisher: Publisher | None = None) -> int:
    return run_job("aggregate", argv, stage, needs=("network", "daily"), kernels=kernels, publisher=publisher)


if __name__ == "__main__":
    sys.exit(main())
