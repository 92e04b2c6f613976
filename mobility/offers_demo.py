"""Show what ``jobs.offers`` produced for a date (``make demo``, step 4): the merchant report, audience sizes.

Prints counts only: the audience's MSISDNs stay in the restricted zone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from pyspark.sql import functions as F

from mobility.config import load_config
from mobility.io import read_date, read_text, table_path
from mobility.spark import build_session


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mobility.offers_demo")
    p.add_argument("--conf", required=True)
    p.add_argument("--date", required=True, type=dt.date.fromisoformat)
    args = p.parse_args(argv)
    cfg = load_config(args.conf)
    spark = build_session("mobility-insights-offers-demo", cfg.spark)
    summary = json.loads(read_text(spark, f"{cfg.lake.reports.rstrip('/')}/runs/{args.date}/offers.json"))["summary"]
    print("consent bookkeeping per campaign (people seen in the fence, in the window and target):")
    for cid, c in summary["offers"]["by_campaign"].items():
        print(f"  {cid}: candidates {c['candidates']:,} = notified {c['notified']:,} + minors "
              f"{c['excluded_minor']:,} + business {c['excluded_business']:,} + no consent "
              f"{c['excluded_no_consent']:,} + consent too late {c['excluded_consent_too_late']:,} + withdrawn "
              f"{c['excluded_withdrawn']:,}; notifications {c['notifications']:,} "
              f"(+ {c['excluded_by_cap']:,} windows over the cap)")
    audience = read_date(spark, table_path(cfg.lake, "offer_audience"), date=args.date,
                         what="curated/offer_audience")
    print(f"\naudience (restricted zone, kept {cfg.offers.audience_retention_days} days): "
          f"{table_path(cfg.lake, 'offer_audience')}")
    audience.groupBy("campaign_id").agg(F.count(F.lit(1)).alias("notifications"),
                                        F.count_distinct("msisdn").alias("people")).orderBy("campaign_id").show()
    report = read_date(spark, table_path(cfg.lake, "offer_report"), date=args.date, what="insights/offer_report")
    print(f"merchant report (released, every count >= k_min={cfg.privacy.k_min}): "
          f"{table_path(cfg.lake, 'offer_report')}")
    report.drop("date").orderBy("campaign_id", "window_start", "age_band", "gender").show(50, truncate=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
