"""Location offers: which opted-in subscribers to notify per campaign on a date, and the merchants' report.

    python -m jobs.offers --conf conf/local.yaml --date 2026-10-05

read (events of the date, CRM, preference log, cells, campaigns) -> check the campaigns
-> events in fences -> consent at each event (as-of) -> policy, cap -> audit and publish
``offer_audience`` in the network zone (``lake.network``, default ``<lake.raw>/_network``:
the MSISDNs to deliver to; never the curated or release zone) and
``insights/offer_report`` (released: people notified per campaign, window, age band
and gender, every count >= ``privacy.k_min``). Nothing is hashed, so no key is needed.
"""

from __future__ import annotations

import sys

from pyspark import StorageLevel
from pyspark.sql import functions as F

from contract.vocabulary import GENDER_CODES, age_band_labels
from mobility.io import read_raw
from mobility.publish import Publisher
from mobility.runner import Context, heal, publish, run_job
from transforms.kernels import BUILTIN, Kernels
from transforms.offers import (
    active_campaigns,
    check_campaigns,
    check_offers_summary,
    collect_counts,
    count_report_groups,
    fence_hits,
    offers_summary,
    placed_events,
    targeted_hits,
    to_candidates,
    to_notifications,
    to_offer_audience,
    to_offer_report,
    with_canonical_msisdn,
    with_offer_consent,
)
from transforms.stage1 import cells_valid_on, opted_out_msisdns

OUTPUTS = ("offer_audience", "offer_report")


def stage(ctx: Context) -> None:
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    g, p = cfg.generalization, cfg.privacy
    heal(ctx, OUTPUTS)
    campaigns = read_raw(spark, cfg.lake.raw, "campaigns")
    # Input gate: a bad campaign row stops the run before anything is read further, naming the campaign.
    check_campaigns(campaigns, age_bands=age_band_labels(g.age_band_edges), genders=tuple(GENDER_CODES.values()),
                    max_radius_m=cfg.offers.max_radius_m)
    active = active_campaigns(campaigns, date=date).persist()
    cached = [active]
    try:
        # The campaigns table is a small reference table: its ids and H3 resolutions may be collected.
        fences = active.select("campaign_id", "_kind", "fence_h3_resolution").collect()
        ids = [r["campaign_id"] for r in fences]
        resolutions = sorted({r["fence_h3_resolution"] for r in fences if r["_kind"] == "h3"})
        events = with_canonical_msisdn(read_raw(spark, cfg.lake.raw, "network_events", date.isoformat()))
        subscribers = with_canonical_msisdn(read_raw(spark, cfg.lake.raw, "subscribers"))
        # Only what was recorded by the time of the run counts (a future-dated record is not consent yet).
        prefs = with_canonical_msisdn(read_raw(spark, cfg.lake.raw, "privacy_preferences")).filter(
            F.col("updated_at") <= F.lit(ctx.run_ts))
        valid_cells = cells_valid_on(read_raw(spark, cfg.lake.raw, "cells"), date=date)

        hits = fence_hits(placed_events(events, date=date, valid_cells=valid_cells), active,
                          valid_cells=valid_cells, h3_resolutions=resolutions)
        scored = (targeted_hits(hits, subscribers=subscribers, date=date, age_band_edges=g.age_band_edges)
                  .transform(with_offer_consent, prefs=prefs)
                  .persist(StorageLevel.MEMORY_AND_DISK))  # small: events in fences only
        candidates = to_candidates(scored, min_age=p.min_age, exclude_business=p.exclude_business).persist()
        notifications = to_notifications(scored, candidates, window_minutes=g.window_minutes).persist()
        analytics_out = opted_out_msisdns(prefs, as_of=ctx.run_ts)
        groups = count_report_groups(notifications, candidates, analytics_opted_out=analytics_out).persist()
        cached += [scored, candidates, notifications, groups]

        summary = ctx.summary["offers"] = offers_summary(
            **collect_counts(candidates, notifications, groups, analytics_opted_out=analytics_out, k_min=p.k_min),
            campaigns=ids)
        check_offers_summary(summary)

        audience = to_offer_audience(notifications, date=date)
        report = to_offer_report(groups, date=date, k_min=p.k_min)
        outputs = [("offer_audience", audience, summary["notifications"]),
                   ("offer_report", report, summary["report_groups_released"])]
        consent = prefs.select("msisdn", "location_offers_opt_in", "updated_at")
        # One publication per zone (each has its own ledger): the audience (network zone)
        # first, then the merchants' report (release zone, checked against earlier releases
        # of the date like every release). A run that dies between them leaves the audience
        # published and no report; the next run publishes both again.
        publish(ctx, [o for o in outputs if o[0] == "offer_audience"], persist=False,
                refs={"offer_audience": {"consent": consent}})
        publish(ctx, [o for o in outputs if o[0] == "offer_report"], persist=False)
    finally:
        for df in cached:
            df.unpersist()


def main(argv: list[str] | None = None, *, kernels: Kernels = BUILTIN, publisher: Publisher | None = None) -> int:
    return run_job("offers", argv, stage, needs=(), kernels=kernels, publisher=publisher)


if __name__ == "__main__":
    sys.exit(main())
