"""Stage 3: anonymized events and trips -> ``insights/footfall``, ``insights/presence``, ``insights/od_flows``.

    python -m jobs.aggregate --conf conf/local.yaml --date 2026-10-05

read -> count -> suppress (primary, then secondary) -> audit -> publish. The
aggregates are small; they are cached so that counting, the audit and the writes do
not recount the events. Nothing is published unless the privacy audit finds nothing.
"""

from __future__ import annotations

import sys

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mobility.io import publish_together, read_date, table_path
from mobility.runner import Context, ValidationError, run_job
from mobility.schemas import check_schema
from transforms.disclosure import PRIMARY, SECONDARY, audit_release, mark_suppression
from transforms.flows import count_od_trips, count_presence, invalid_region_factors, to_od_flows, to_presence
from transforms.stage3 import count_visitors, to_footfall

REGION_FACTORS = T.StructType(
    [T.StructField("h3_cell", T.StringType()), T.StructField("expansion_factor", T.DoubleType())]
)


def _count_if(cond: F.Column) -> F.Column:
    return F.coalesce(F.sum(F.when(cond, 1)), F.lit(0))


def read_region_factors(ctx: Context) -> DataFrame | None:
    """The optional per-region expansion factors, checked before use (a small reference table)."""
    path = ctx.cfg.insights.region_factors
    if path is None:
        return None
    try:
        factors = ctx.spark.read.parquet(path)
    except Exception as exc:
        raise FileNotFoundError(f"insights.region_factors: no Parquet table at {path}") from exc
    check_schema(factors, REGION_FACTORS, "region_factors")
    bad = invalid_region_factors(factors, h3_resolution=ctx.cfg.generalization.h3_resolution).limit(3).collect()
    if bad:
        shown = ", ".join(f"{r['h3_cell']}={r['expansion_factor']} ({r['reason']})" for r in bad)
        raise ValidationError(f"insights.region_factors: unusable rows, e.g. {shown}")
    return factors.select("h3_cell", "expansion_factor")


def stage(ctx: Context) -> None:
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    k = cfg.privacy.k_min
    g = cfg.generalization
    anonymized = read_date(spark, table_path(cfg.lake, "anonymized_events"), date=date,
                           what="curated/anonymized_events")
    trips = read_date(spark, table_path(cfg.lake, "anonymized_trips"), date=date, what="curated/anonymized_trips")
    factors = read_region_factors(ctx)

    presence_counts = count_presence(anonymized).persist()
    marked = mark_suppression(count_visitors(anonymized), presence_counts, k_min=k).persist()
    od_groups = count_od_trips(trips).persist()
    cached = (presence_counts, marked, od_groups)
    try:
        footfall = to_footfall(marked.filter(F.col("suppression").isNull()), k_min=k, h3_resolution=g.h3_resolution)
        presence = to_presence(presence_counts, k_min=k, h3_resolution=g.h3_resolution,
                               market_share=cfg.insights.market_share, region_factors=factors).persist()
        cached += (presence,)
        od_flows = to_od_flows(od_groups, k_min=k, h3_resolution=g.od_h3_resolution)

        ff = marked.agg(
            F.count(F.lit(1)).alias("groups"),
            _count_if(F.col("suppression") == PRIMARY).alias("primary"),
            _count_if(F.col("suppression") == SECONDARY).alias("secondary"),
            _count_if(F.col("suppression").isNull()).alias("released"),
        ).first()
        pr = presence_counts.agg(F.count(F.lit(1)).alias("groups"),
                                 _count_if(F.col("visitors") < k).alias("primary")).first()
        od = od_groups.agg(F.count(F.lit(1)).alias("groups"), _count_if(F.col("trips") < k).alias("primary")).first()
        summary = ctx.summary["aggregate"] = {
            "footfall_groups": ff["groups"],
            "footfall_released": ff["released"],
            "footfall_suppressed_below_k": ff["primary"],
            "footfall_suppressed_secondary": ff["secondary"],
            "footfall_released_without_secondary": ff["released"] + ff["secondary"],
            "presence_groups": pr["groups"],
            "presence_released": pr["groups"] - pr["primary"],
            "presence_suppressed_below_k": pr["primary"],
            "presence_expansion": "region_factors" if factors is not None else "market_share",
            "od_flows_groups": od["groups"],
            "od_flows_released": od["groups"] - od["primary"],
            "od_flows_suppressed_below_k": od["primary"],
        }

        # Audit exactly what is about to be published; a finding stops the run before any write.
        findings = audit_release(footfall, presence, od_flows, k)
        summary["audit_findings"] = n_findings = findings.count()
        if n_findings:
            first = findings.orderBy("kind", "date", "window_start", "cell").limit(3).collect()
            shown = "; ".join(f"{r['kind']} {r['window_start']} {r['cell']} value={r['value']}" for r in first)
            raise ValidationError(f"privacy audit: {n_findings} finding(s), nothing published: {shown}")

        # Then audit-and-publish per table (data-quality suites, row counts reconciled).
        # All three are checked before any is published: a new footfall beside an
        # old presence of the same date could make a small group derivable by subtraction.
        outputs = [("footfall", footfall, ff["released"]),
                   ("presence", presence, summary["presence_released"]),
                   ("od_flows", od_flows, summary["od_flows_released"])]
        validation = ctx.summary.setdefault("validation", {})
        validation["report"] = publish_together(spark, cfg, outputs, date=date, persist=False)  # all cached above
        validation.update({table: "passed" for table, _, _ in outputs})
    finally:
        for df in cached:
            df.unpersist()


def main(argv: list[str] | None = None) -> int:
    return run_job("aggregate", argv, stage, secrets=())


if __name__ == "__main__":
    sys.exit(main())
