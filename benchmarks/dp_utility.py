"""What the differential-privacy mode costs in utility, against the k-anonymous release of the same date.

    python -m benchmarks.dp_utility --conf conf/local.yaml --date 2026-10-05 [--epsilons 0.5,1,2,4]

Reads the date's ``curated/anonymized_events`` (as published, through the ledger) and,
for footfall (the finest table): the k-anonymous release (``remainder-guard-v1``) and
the DP release at each ε, built with the same functions as ``jobs.aggregate`` (bound,
count, public keys, OpenDP noise, release threshold), without publishing anything. It
reports per mode:

* **people-hours released**: the exact visitors of the released groups over all exact
  visitors of all groups (a DP row counts with its *exact* size, so noise does not inflate it);
* **median relative error** of the released values against the exact counts, over the
  released groups somebody was in (0 for k);
* **false groups**: released DP rows whose exact count is 0 (public keys that nobody visited).

Writes ``docs/img/dp_utility.png`` and prints a Markdown table for ``docs/privacy.md``.
The DP numbers are random (OpenDP takes no seed); the spread between runs is small at
these sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path

from pyspark.sql import functions as F

from contract.vocabulary import GENDERS, RELEASE_KEYS, age_bands
from mobility.config import load_config
from mobility.io import read_raw
from mobility.ledger import read_pinned
from mobility.spark import build_session
from transforms.disclosure import mark_suppression
from transforms.dp import DpPlan, add_noise, bound_contributions, count_bounded, over_public_keys, public_keys
from transforms.stage1 import cells_valid_on
from transforms.stage2 import cells_at_resolutions
from transforms.stage3 import count_visitors

KEYS = tuple(RELEASE_KEYS["footfall"])


def measure(released, exact_total: int) -> dict:
    """``released``: frame of ``exact`` and ``value`` per released group."""
    r = released.agg(F.count(F.lit(1)).alias("rows"), F.coalesce(F.sum("exact"), F.lit(0)).alias("people"),
                     F.percentile_approx(F.when(F.col("exact") > 0, F.abs(F.col("value") - F.col("exact"))
                                                / F.col("exact")), 0.5).alias("median_rel_error"),
                     F.sum(F.when(F.col("exact") == 0, 1).otherwise(0)).alias("false_groups")).first()
    return {"rows": int(r["rows"]), "people_hours_share": round(int(r["people"]) / exact_total, 4),
            "median_rel_error": round(float(r["median_rel_error"] or 0.0), 4),
            "false_groups": int(r["false_groups"] or 0)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dp_utility")
    p.add_argument("--conf", required=True)
    p.add_argument("--date", required=True, type=dt.date.fromisoformat)
    p.add_argument("--epsilons", default="0.5,1,2,4", help="total ε per release of the date, comma-separated")
    p.add_argument("--plot", default="docs/img/dp_utility.png")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args(argv)
    cfg = load_config(args.conf, args.set)
    k, g = cfg.privacy.k_min, cfg.generalization
    spark = build_session("dp-utility", cfg.spark)
    events = read_pinned(spark, cfg.lake, "anonymized_events", args.date, what="curated/anonymized_events")
    exact = count_visitors(events).persist()
    exact_total = int(exact.agg(F.sum("visitors")).first()[0])
    labels = len(age_bands(g.age_band_edges)) * len(GENDERS)
    k_rows = (mark_suppression(exact, k_min=k, labels=labels).filter("suppression IS NULL")
              .select(F.col("visitors").alias("exact"), F.col("visitors").alias("value")))
    results = {"k_anonymity": measure(k_rows, exact_total)}
    print(f"{args.date}: {exact.count():,} footfall groups, {exact_total:,} people-hours (person x window x cell)")
    cells_h3 = cells_at_resolutions(cells_valid_on(read_raw(spark, cfg.lake.raw, "cells"), date=args.date),
                                    {"h3_cell": g.h3_resolution}).select(F.col("cell_h3_cell").alias("h3_cell"))
    keys = public_keys(cells_h3, date=args.date, window_minutes=g.window_minutes,
                       labels=tuple((a, s) for a in age_bands(g.age_band_edges) for s in GENDERS)).persist()
    for eps in (float(e) for e in args.epsilons.split(",")):
        plan = DpPlan.of(dataclasses.replace(cfg.dp, epsilon=eps, budget_epsilon=max(eps, cfg.dp.budget_epsilon)),
                         k_min=k)
        counts = count_bounded(bound_contributions(events, id_col="daily_id", group_cols=KEYS,
                                                   max_groups=plan.footfall.max_groups),
                               group_cols=KEYS, count_col="visitors")
        noisy = add_noise(over_public_keys(counts, keys, count_col="visitors"), plan.footfall,
                          count_col="visitors").localCheckpoint(eager=True)
        released = (noisy.filter(F.col("visitors") >= F.lit(plan.footfall.threshold))
                    .join(exact.withColumnRenamed("visitors", "exact"), on=list(KEYS), how="left")
                    .select(F.coalesce("exact", F.lit(0)).alias("exact"), F.col("visitors").alias("value")))
        results[f"dp eps={eps:g}"] = {**measure(released, exact_total), "scale": round(plan.footfall.scale, 2),
                                      "threshold": plan.footfall.threshold}
    print("| release | rows | people-hours released | median relative error | false groups |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        extra = f" (scale {r['scale']}, threshold {r['threshold']})" if "scale" in r else ""
        print(f"| {name}{extra} | {r['rows']:,} | {100 * r['people_hours_share']:.1f} % | "
              f"{100 * r['median_rel_error']:.1f} % | {r['false_groups']:,} |")
    print(json.dumps(results))
    plot(results, Path(args.plot))
    return 0


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dp = {float(n.split("=")[1]): r for n, r in results.items() if n.startswith("dp")}
    eps = sorted(dp)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(eps, [100 * dp[e]["people_hours_share"] for e in eps], "o-", label="DP: people-hours released")
    errors = [100 * dp[e]["median_rel_error"] for e in eps]
    ax.plot(eps, [min(v, 105) for v in errors], "s--", label="DP: median relative error (clipped at 105 %)")
    for e, v in zip(eps, errors, strict=True):
        if v > 105:
            ax.annotate(f"{v:,.0f} %", (e, 105), textcoords="offset points", xytext=(6, -4), fontsize=7)
    ax.axhline(100 * results["k_anonymity"]["people_hours_share"], color="grey", linestyle=":",
               label="k-anonymity: people-hours released (error 0)")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 112)
    ax.set_xlabel("ε per release of a date (footfall gets 40 %)")
    ax.set_ylabel("%")
    ax.set_title("Footfall utility on the demo lake")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
