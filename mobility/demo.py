"""Show what the demo lake holds and what the pipeline released (``make demo``, step 3)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from pyspark.sql import functions as F

from contract.schemas import RAW_TABLES
from mobility.config import load_config
from mobility.io import read_date, read_raw, table_path
from mobility.ledger import ledger_path, published
from mobility.quality_report import report_index
from mobility.release import read_release
from mobility.spark import build_session


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mobility.demo")
    p.add_argument("--conf", required=True)
    p.add_argument("--date", required=True, type=dt.date.fromisoformat)
    args = p.parse_args(argv)
    cfg = load_config(args.conf)
    spark = build_session("mobility-insights-demo", cfg.spark)
    raw = cfg.lake.raw

    print(f"raw lake at {raw}:")
    for table in RAW_TABLES:
        df = read_raw(spark, raw, table, args.date.isoformat() if table == "network_events" else None)
        print(f"  {table:<22} {df.count():>12,} rows")
    quarantine = read_date(spark, table_path(cfg.lake, "quarantine"), date=args.date, what="curated/quarantine")
    print("  bad rows per class (what stage 1 put in curated/quarantine):")
    for row in quarantine.groupBy("reason").count().orderBy("reason").collect():  # one row per reason
        print(f"    {row['reason']:<24} {row['count']:>10,}")
    print(f"\nreleased insights for {args.date} (k_min={cfg.privacy.k_min}; the mode is in the ledger below):")
    release = read_release(spark, cfg.lake, args.date)
    for table, df in release.items():
        print(f"  {table:<22} {df.count():>12,} rows   ({table_path(cfg.lake, table)})")
    footfall = release["footfall"]
    print("\nbusiest H3 cells (sum of released visitor groups over the day):")
    busiest = (footfall.groupBy("h3_cell").agg(F.sum("visitors").alias("visitor_hours"),
                                              F.max("visitors").alias("largest_group"))
               .orderBy(F.desc("visitor_hours")).limit(10))
    busiest.show(truncate=False)
    print("peak hours in the busiest cell:")
    top = busiest.first()
    if top is not None:
        (footfall.filter(F.col("h3_cell") == top["h3_cell"]).groupBy("window_start")
         .agg(F.sum("visitors").alias("visitors")).orderBy(F.desc("visitors")).limit(5).show(truncate=False))
    print("largest released origin-destination flows (people per departure window):")
    (release["od_flows"].groupBy("origin_h3", "destination_h3")
     .agg(F.sum("trips").alias("trips"), F.count("*").alias("rows"))
     .orderBy(F.desc("trips")).limit(5).show(truncate=False))
    print(f"release ledger ({ledger_path(cfg.lake, 'insights')}), releases of {args.date}:")
    releases = published(spark, cfg.lake, "insights", args.date)
    (releases.select("recorded_at", F.substring("run_id", 1, 8).alias("run"), "table_name", "version", "rows", "mode",
                     "k_min", "h3_resolution", "window_minutes")
     .show(truncate=False))
    if "epsilon" in releases.columns and releases.filter(F.col("mode") == "differential_privacy").limit(1).count():
        print("differential privacy: what each release of the date spent (the date's budget is "
              f"epsilon={cfg.dp.budget_epsilon:g}, delta={cfg.dp.budget_delta:g}):")
        (releases.filter(F.col("mode") == "differential_privacy")
         .groupBy(F.substring("run_id", 1, 8).alias("run"))
         .agg(F.first("epsilon").alias("epsilon"), F.first("delta").alias("delta"),
              F.first("dp_bounds").alias("max_groups_per_person"), F.sum("rows").alias("rows_released"))
         .show(truncate=False))
    print(f"data-quality report (open in a browser): {report_index(cfg.lake, args.date)}")
    print(f"run summaries (JSON): {cfg.lake.reports}/runs/{args.date}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
