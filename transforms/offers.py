"""Location offers (network domain): who may be sent a merchant's geofenced offer, and the merchant's report.

Aggregated insights may rely on an opt-out; contacting a person because of where they
are needs their explicit, *prior* opt-in. So for every event that places a subscriber
in a campaign's geofence during one of its active windows, the preference record in
force **at that event** decides: the latest ``privacy_preferences`` record with
``updated_at <= event_ts`` (an as-of join, done with a window over the union of events
and preference changes per MSISDN — no per-event Python). An event before the opt-in
is never used; a withdrawal takes effect from its ``updated_at``.

Each *candidate* (a person seen in a campaign's fence, in its window and target) gets
exactly one disposition, in this order:

1. ``excluded_minor`` / ``excluded_business`` — policy, as in stage 1;
2. ``notified`` — at least one qualifying event had an opt-in in force;
3. ``excluded_withdrawn`` — they had opted in, but withdrew before every qualifying event;
4. ``excluded_consent_too_late`` — an opt-in exists, but only after the qualifying events;
5. ``excluded_no_consent`` — no opt-in at all.

So ``candidates = notified + the five exclusions`` by construction. A notified
candidate's qualifying *windows* (``window_minutes`` long) are then capped: the first
``max_per_person_per_day`` windows of the day, by their first consented event, are
notified (``notify_at`` = that event's time); the rest are ``excluded_by_cap``, so
``consented_windows = notifications + excluded_by_cap``.

The analytics opt-out is a different consent: it does not stop an offer the person
explicitly asked for, but the merchant report *is* an aggregate, so people whose
analytics opt-out is in force (as of the run) are not counted in it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from contract.columns import canonical_msisdn, h3_index, h3_resolution_of, window_start
from contract.errors import ValidationError
from transforms.stage1 import quarantine_reason, with_demographics
from transforms.stage2 import cells_at_resolutions, locate

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius
OFFER_DISPOSITIONS = ("notified", "excluded_minor", "excluded_business", "excluded_withdrawn",
                      "excluded_consent_too_late", "excluded_no_consent")
CAMPAIGN_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$"  # starts with a letter: never shaped like a number
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def with_canonical_msisdn(df: DataFrame) -> DataFrame:
    """The frame with its ``msisdn`` column canonical (apply to every input before joining).

    The one rule of :func:`contract.columns.canonical_msisdn`; a number that cannot be
    normalized becomes null and so matches no consent record (never notified).
    """
    return df.withColumn("msisdn", canonical_msisdn(F.col("msisdn")))


# ------------------------------------------------------------------------- campaigns


def _seconds_of_day(hhmm: Column) -> Column:
    """``"HH:MM"`` -> seconds after midnight (``"24:00"`` -> 86400)."""
    parts = F.split(hhmm, ":")
    return parts.getItem(0).cast("int") * 3600 + parts.getItem(1).cast("int") * 60


def _valid_h3_at(cell: Column, resolution: Column) -> Column:
    """:func:`contract.columns.is_h3_at` for a per-row resolution (one expression, not one per resolution)."""
    x = h3_index(cell)
    ok = cell.rlike(r"^8[0-9a-f]{14}$") & (h3_resolution_of(cell) == resolution)
    ok = ok & (F.shiftright(x, 45).bitwiseAND(F.lit(127)) < F.lit(122))
    for d in range(1, 16):
        digit = F.shiftright(x, (15 - d) * 3).bitwiseAND(F.lit(7))
        ok = ok & F.when(resolution >= F.lit(d), digit < F.lit(7)).otherwise(digit == F.lit(7))
    return F.coalesce(ok, F.lit(False))


def invalid_campaigns(campaigns: DataFrame, *, age_bands: Iterable[str], genders: Iterable[str],
                      max_radius_m: float) -> DataFrame:
    """Rows of the campaigns table that cannot be used, with the first ``reason`` that applies."""
    ages, gens = list(age_bands), list(genders)
    lat, lng, radius = F.col("fence_lat"), F.col("fence_lng"), F.col("radius_m")
    cells, res = F.col("fence_h3"), F.col("fence_h3_resolution")
    point_given = lat.isNotNull() | lng.isNotNull() | radius.isNotNull()
    h3_given = cells.isNotNull() | res.isNotNull()
    dup = F.count(F.lit(1)).over(Window.partitionBy("campaign_id")) > 1
    frm, to = F.col("daily_from"), F.col("daily_to")
    ages_arr = F.array(*[F.lit(a) for a in ages])
    gens_arr = F.array(*[F.lit(g) for g in gens])

    def unknown_label(col: str, allowed: Column) -> Column:
        return F.col(col).isNotNull() & ((F.size(col) == 0) | (F.size(F.array_except(col, allowed)) > 0)
                                         | F.exists(col, lambda x: x.isNull()))

    reason = (
        F.when(F.col("campaign_id").isNull() | ~F.col("campaign_id").rlike(CAMPAIGN_ID_PATTERN),
               F.lit("malformed_campaign_id"))
        .when(dup, F.lit("duplicate_campaign_id"))
        .when(F.col("merchant").isNull() | (F.trim("merchant") == ""), F.lit("missing_merchant"))
        .when(point_given & h3_given, F.lit("both_fence_forms"))
        .when(~point_given & ~h3_given, F.lit("no_fence"))
        .when(point_given & (lat.isNull() | lng.isNull() | radius.isNull()), F.lit("incomplete_point_fence"))
        .when(point_given & ((F.abs(lat) > 90) | (F.abs(lng) > 180) | F.isnan(lat) | F.isnan(lng)),
              F.lit("invalid_fence_position"))
        .when(point_given & (F.isnan(radius) | (radius <= 0)), F.lit("radius_not_positive"))
        .when(point_given & (radius > F.lit(max_radius_m)), F.lit("radius_too_large"))
        .when(h3_given & (res.isNull() | (res < 0) | (res > 15)), F.lit("invalid_h3_resolution"))
        .when(h3_given & (cells.isNull() | (F.size(cells) == 0)), F.lit("empty_h3_fence"))
        .when(h3_given & F.exists(cells, lambda c: ~_valid_h3_at(F.lower(c), res)), F.lit("invalid_h3_cell"))
        .when(F.col("start_date").isNull(), F.lit("missing_start_date"))
        .when(F.col("end_date") < F.col("start_date"), F.lit("inverted_dates"))
        .when(frm.isNull() | to.isNull() | ~frm.rlike(HHMM) | ~(to.rlike(HHMM) | (to == F.lit("24:00"))),
              F.lit("window_outside_day"))
        .when(_seconds_of_day(frm) >= _seconds_of_day(to), F.lit("inverted_window"))
        .when(F.col("max_per_person_per_day").isNull() | (F.col("max_per_person_per_day") < 1), F.lit("invalid_cap"))
        .when(unknown_label("target_age_bands", ages_arr), F.lit("unknown_target_age_band"))
        .when(unknown_label("target_genders", gens_arr), F.lit("unknown_target_gender"))
    )
    return campaigns.select("campaign_id", reason.alias("reason")).filter(F.col("reason").isNotNull())


def describe_invalid(bad: list[Any], *, total: int) -> str:
    """The ValidationError message for bad campaign rows (``bad``: rows of :func:`invalid_campaigns`)."""
    shown = ", ".join(f"{r['campaign_id']!s} ({r['reason']})" for r in bad)
    more = f" and {total - len(bad)} more" if total > len(bad) else ""
    return f"campaigns: {total} unusable campaign row(s), nothing was computed: {shown}{more}"


def check_campaigns(campaigns: DataFrame, *, age_bands: Iterable[str], genders: Iterable[str],
                    max_radius_m: float, show: int = 20) -> None:
    """Raise ValidationError naming the bad campaigns (the campaigns table is small)."""
    bad = invalid_campaigns(campaigns, age_bands=age_bands, genders=genders, max_radius_m=max_radius_m)
    rows = bad.orderBy("campaign_id").limit(show).collect()
    if rows:
        raise ValidationError(describe_invalid(rows, total=bad.count()))


def active_campaigns(campaigns: DataFrame, *, date: dt.date) -> DataFrame:
    """Campaigns running on ``date``, with ``_from_s``/``_to_s`` (seconds of day) and ``_kind`` (point|h3)."""
    d = F.lit(date)
    return (
        campaigns.filter((F.col("start_date") <= d) & (F.col("end_date").isNull() | (F.col("end_date") >= d)))
        .withColumn("_from_s", _seconds_of_day(F.col("daily_from")))
        .withColumn("_to_s", _seconds_of_day(F.col("daily_to")))
        .withColumn("_kind", F.when(F.col("fence_h3").isNotNull(), F.lit("h3")).otherwise(F.lit("point")))
        .withColumn("fence_h3", F.transform("fence_h3", F.lower))
    )


# ------------------------------------------------------------------------- events in fences


def haversine_m(lat1: Column, lng1: Column, lat2: Column, lng2: Column) -> Column:
    """Great-circle distance in metres (built-in functions only)."""
    p1, p2 = F.radians(lat1), F.radians(lat2)
    a = (F.pow(F.sin((p2 - p1) / 2), 2)
         + F.cos(p1) * F.cos(p2) * F.pow(F.sin(F.radians(lng2 - lng1) / 2), 2))
    return F.lit(2 * EARTH_RADIUS_M) * F.asin(F.sqrt(F.least(F.lit(1.0), a)))


def placed_events(events: DataFrame, *, date: dt.date, valid_cells: DataFrame) -> DataFrame:
    """Processable events (stage 1's quarantine rules) with ``pos_lat``/``pos_lng``: the fix, else the cell.

    ``events`` must have canonical MSISDNs. Unprocessable rows are left out here (stage 1
    quarantines and counts them).
    """
    cells = F.broadcast(valid_cells.select("cell_id", F.col("latitude").alias("_cell_lat"),
                                           F.col("longitude").alias("_cell_lng")))
    known = F.col("_cell_lat").isNotNull()
    has_fix = F.col("latitude").isNotNull() & F.col("longitude").isNotNull()
    return (
        events.join(cells, on="cell_id", how="left")
        .filter(quarantine_reason(date=date, cell_known=known).isNull())
        .withColumn("pos_lat", F.when(has_fix, F.col("latitude")).otherwise(F.col("_cell_lat")))
        .withColumn("pos_lng", F.when(has_fix, F.col("longitude")).otherwise(F.col("_cell_lng")))
        .drop("_cell_lat", "_cell_lng", "imsi", "imei")
    )


HIT_COLUMNS = ("campaign_id", "msisdn", "event_ts", "max_per_person_per_day", "target_age_bands", "target_genders")


def fence_hits(events: DataFrame, campaigns: DataFrame, *, valid_cells: DataFrame,
               h3_resolutions: Iterable[int] = ()) -> DataFrame:
    """One row per (event, campaign) placing the subscriber in the campaign's fence during its daily window.

    ``events`` from :func:`placed_events`; ``campaigns`` from :func:`active_campaigns`
    (few rows: broadcast). Point fences: haversine distance of the event's position
    ``<= radius_m``. H3 fences: the event's H3 cell at the fence's resolution — per radio
    cell on the small cell table, per fix through stage 2's vectorized UDF — is one of
    ``fence_h3``; ``h3_resolutions`` lists the resolutions the active H3 fences use.
    """
    tod = F.hour("event_ts") * 3600 + F.minute("event_ts") * 60 + F.second("event_ts")
    joined = events.crossJoin(F.broadcast(campaigns)).filter((tod >= F.col("_from_s")) & (tod < F.col("_to_s")))
    near = haversine_m(F.col("pos_lat"), F.col("pos_lng"), F.col("fence_lat"), F.col("fence_lng"))
    hits = joined.filter((F.col("_kind") == F.lit("point")) & (near <= F.col("radius_m"))).select(*HIT_COLUMNS)
    resolutions = sorted(set(h3_resolutions))
    if resolutions:
        cells_h3 = cells_at_resolutions(valid_cells, {f"h3_{r}": r for r in resolutions})
        located = joined.filter(F.col("_kind") == F.lit("h3")).transform(
            locate, cells_h3=cells_h3, targets={f"_ev_h3_{r}": (f"cell_h3_{r}", r) for r in resolutions})
        ev_cell = F.when(F.lit(False), F.lit(None).cast("string"))
        for r in resolutions:
            ev_cell = ev_cell.when(F.col("fence_h3_resolution") == F.lit(r), F.col(f"_ev_h3_{r}"))
        inside = F.coalesce(F.array_contains(F.col("fence_h3"), ev_cell), F.lit(False))
        hits = hits.unionByName(located.filter(inside).select(*HIT_COLUMNS))
    return hits


def in_target(*, age_band: Column, gender: Column) -> Column:
    """The campaign targets this person (a null target list = everyone)."""
    age_ok = F.col("target_age_bands").isNull() | F.array_contains(F.col("target_age_bands"), age_band)
    gender_ok = F.col("target_genders").isNull() | F.array_contains(F.col("target_genders"), gender)
    return F.coalesce(age_ok & gender_ok, F.lit(False))


def targeted_hits(hits: DataFrame, *, subscribers: DataFrame, date: dt.date,
                  age_band_edges: tuple[int, ...]) -> DataFrame:
    """Hits of people the campaign targets, with ``age_band``, ``gender``, ``_age``, ``_business`` (stage 1's rules)."""
    return (
        hits.transform(with_demographics, subscribers=subscribers, date=date, age_band_edges=age_band_edges)
        .filter(in_target(age_band=F.col("age_band"), gender=F.col("gender")))
    )


# ------------------------------------------------------------------------- consent (as-of join)


def with_offer_consent(hits: DataFrame, *, prefs: DataFrame) -> DataFrame:
    """Add ``consent`` per hit — ``in_force``, ``withdrawn`` or ``none`` — and ``_has_opt_in``.

    The latest preference record with ``updated_at <= event_ts`` decides (a record at the
    very instant of the event counts; of two records at one instant, the withdrawal
    wins). ``withdrawn``: an earlier opt-in was withdrawn before the event.
    ``_has_opt_in``: the person has an opt-in record at all (among ``prefs``, which the
    caller limits to what was known at the run). Events and preference changes of the
    people seen are unioned and ordered per MSISDN; ``last(ignorenulls)`` carries the
    preference in force forward to each event.
    """
    keys = hits.select("msisdn", "event_ts").distinct()
    p = prefs.join(keys.select("msisdn").distinct(), on="msisdn", how="left_semi").select(
        "msisdn", "updated_at", F.coalesce(F.col("location_offers_opt_in"), F.lit(False)).alias("_opt_in"))
    timeline = keys.select("msisdn", F.col("event_ts").alias("_t"), F.lit(1).alias("_kind"),
                           F.lit(None).cast("boolean").alias("_opt_in")).unionByName(
        p.select("msisdn", F.col("updated_at").alias("_t"), F.lit(0).alias("_kind"), "_opt_in"))
    upto = (Window.partitionBy("msisdn").orderBy(F.col("_t"), F.col("_kind"), F.col("_opt_in").desc_nulls_last())
            .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    in_force = F.last("_opt_in", ignorenulls=True).over(upto)
    ever_in = F.max(F.when(F.col("_opt_in"), F.lit(1))).over(upto)
    status = timeline.select(
        "msisdn", F.col("_t").alias("event_ts"), "_kind",
        F.when(in_force, F.lit("in_force")).when(ever_in == 1, F.lit("withdrawn")).otherwise(F.lit("none"))
        .alias("consent"),
    ).filter(F.col("_kind") == 1).drop("_kind")
    opted_in = p.filter(F.col("_opt_in")).select("msisdn").distinct().withColumn("_has_opt_in", F.lit(True))
    return (
        hits.join(status, on=["msisdn", "event_ts"], how="left")
        .join(opted_in, on="msisdn", how="left")
        .withColumn("_has_opt_in", F.coalesce(F.col("_has_opt_in"), F.lit(False)))
    )


def to_candidates(scored: DataFrame, *, min_age: int, exclude_business: bool) -> DataFrame:
    """One row per (campaign, person) seen: demographics and its one ``disposition``."""
    g = scored.groupBy("campaign_id", "msisdn").agg(
        F.max("_age").alias("_age"),
        F.max("_business").alias("_business"),
        F.max("age_band").alias("age_band"),
        F.max("gender").alias("gender"),
        F.max(F.col("consent") == F.lit("in_force")).alias("_any_in_force"),
        F.max(F.col("consent") == F.lit("withdrawn")).alias("_any_withdrawn"),
        F.max("_has_opt_in").alias("_has_opt_in"),
    )
    disposition = (
        F.when(F.col("_age").isNotNull() & (F.col("_age") < F.lit(min_age)), F.lit("excluded_minor"))
        .when(F.col("_business") & F.lit(exclude_business), F.lit("excluded_business"))
        .when(F.col("_any_in_force"), F.lit("notified"))
        .when(F.col("_any_withdrawn"), F.lit("excluded_withdrawn"))
        .when(F.col("_has_opt_in"), F.lit("excluded_consent_too_late"))
        .otherwise(F.lit("excluded_no_consent"))
    )
    return g.select("campaign_id", "msisdn", "age_band", "gender", disposition.alias("disposition"))


def to_notifications(scored: DataFrame, candidates: DataFrame, *, window_minutes: int) -> DataFrame:
    """Consented windows of notified candidates, ranked by time, with ``capped`` past the campaign's cap.

    One row per (campaign, person, window): ``notify_at`` = the window's first event
    with an opt-in in force.
    """
    notified = candidates.filter(F.col("disposition") == F.lit("notified")).select("campaign_id", "msisdn")
    windows = (
        scored.filter(F.col("consent") == F.lit("in_force"))
        .join(notified, on=["campaign_id", "msisdn"], how="left_semi")
        .groupBy("campaign_id", "msisdn", window_start(F.col("event_ts"), minutes=window_minutes).alias("window_start"))
        .agg(F.min("event_ts").alias("notify_at"), F.max("max_per_person_per_day").alias("_cap"))
    )
    rank = F.row_number().over(Window.partitionBy("campaign_id", "msisdn").orderBy("notify_at"))
    return windows.withColumn("capped", rank > F.col("_cap")).drop("_cap")


def to_offer_audience(notifications: DataFrame, *, date: dt.date) -> DataFrame:
    """The ``curated/offer_audience`` contract: who to notify, for which campaign, when. Nothing else about them."""
    return notifications.filter(~F.col("capped")).select(F.lit(date).alias("date"), "campaign_id", "msisdn",
                                                         "notify_at")


def count_report_groups(notifications: DataFrame, candidates: DataFrame, *, analytics_opted_out: DataFrame
                        ) -> DataFrame:
    """People notified per (campaign, window, age band, gender), analytics opt-outs left out; all groups."""
    people = candidates.select("campaign_id", "msisdn", "age_band", "gender")
    out = analytics_opted_out.select("msisdn").distinct().withColumn("_aoo", F.lit(True))
    return (
        notifications.filter(~F.col("capped"))
        .join(people, on=["campaign_id", "msisdn"], how="inner")
        .join(out, on="msisdn", how="left")
        .filter(F.col("_aoo").isNull())
        .groupBy("campaign_id", "window_start", "age_band", "gender")
        .agg(F.count_distinct("msisdn").alias("notified"))
    )


def to_offer_report(groups: DataFrame, *, date: dt.date, k_min: int) -> DataFrame:
    """The ``insights/offer_report`` contract: groups of at least ``k_min`` people only, no identifier."""
    return groups.filter(F.col("notified") >= F.lit(k_min)).select(
        F.lit(date).alias("date"), "campaign_id", "window_start", "age_band", "gender",
        F.col("notified").cast("long").alias("notified"))


# ------------------------------------------------------------------------- summary


def collect_counts(candidates: DataFrame, notifications: DataFrame, groups: DataFrame, *,
                   analytics_opted_out: DataFrame, k_min: int) -> dict[str, Any]:
    """The summary's counts in one small Spark job (a few rows per campaign), for :func:`offers_summary`."""
    aoo = analytics_opted_out.select("msisdn").distinct().withColumn("_aoo", F.lit(True))
    people = (candidates.join(aoo, on="msisdn", how="left")
              .groupBy("campaign_id", F.col("disposition").alias("key"),
                       F.coalesce(F.col("_aoo"), F.lit(False)).alias("flag"))
              .agg(F.count(F.lit(1)).alias("n")).withColumn("kind", F.lit("people")))
    windows = (notifications.groupBy("campaign_id", F.lit("").alias("key"), F.col("capped").alias("flag"))
               .agg(F.count(F.lit(1)).alias("n")).withColumn("kind", F.lit("windows")))
    released = (groups.groupBy("campaign_id", F.lit("").alias("key"),
                               (F.col("notified") >= F.lit(k_min)).alias("flag"))
                .agg(F.count(F.lit(1)).alias("n")).withColumn("kind", F.lit("groups")))
    rows = people.unionByName(windows).unionByName(released).collect()  # a few rows per campaign
    by_disp: dict[tuple[str, str], int] = {}
    report = {"released": 0, "suppressed": 0, "excluded_analytics_opt_out": 0}
    by_window: dict[tuple[str, bool], int] = {}
    for r in rows:
        if r["kind"] == "people":
            by_disp[(r["campaign_id"], r["key"])] = by_disp.get((r["campaign_id"], r["key"]), 0) + r["n"]
            if r["key"] == "notified" and r["flag"]:
                report["excluded_analytics_opt_out"] += r["n"]
        elif r["kind"] == "windows":
            by_window[(r["campaign_id"], r["flag"])] = r["n"]
        else:
            report["released" if r["flag"] else "suppressed"] += r["n"]
    return {"candidates": by_disp, "windows": by_window, "report": report}


def offers_summary(candidates: Mapping[tuple[str, str], int], windows: Mapping[tuple[str, bool], int], *,
                   campaigns: Iterable[str], report: Mapping[str, int]) -> dict[str, Any]:
    """The run summary from the small counts the job collected.

    ``candidates``: people per (campaign, disposition); ``windows``: consented windows of
    notified people per (campaign, capped); ``report``: ``released``, ``suppressed``,
    ``excluded_analytics_opt_out``.
    """
    per: dict[str, dict[str, int]] = {}
    for cid in sorted(set(campaigns)):
        row = {d: int(candidates.get((cid, d), 0)) for d in OFFER_DISPOSITIONS}
        notifications, capped = int(windows.get((cid, False), 0)), int(windows.get((cid, True), 0))
        per[cid] = {"candidates": sum(row.values()), **row, "consented_windows": notifications + capped,
                    "notifications": notifications, "excluded_by_cap": capped}
    keys = ("candidates", *OFFER_DISPOSITIONS, "consented_windows", "notifications", "excluded_by_cap")
    totals = {k: sum(c[k] for c in per.values()) for k in keys}
    return {"campaigns_active": len(per), **totals,
            "report_groups_released": int(report.get("released", 0)),
            "report_groups_suppressed": int(report.get("suppressed", 0)),
            "report_excluded_analytics_opt_out": int(report.get("excluded_analytics_opt_out", 0)),
            "by_campaign": per}


def check_offers_summary(summary: Mapping[str, Any]) -> None:
    """The bookkeeping must add up (per campaign and in total), or nothing is published."""
    rows = [("total", summary), *summary["by_campaign"].items()]
    for name, s in rows:
        if s["candidates"] != sum(s[d] for d in OFFER_DISPOSITIONS):
            raise ValidationError(f"offers {name}: candidates {s['candidates']} != notified + exclusions")
        if s["consented_windows"] != s["notifications"] + s["excluded_by_cap"]:
            raise ValidationError(f"offers {name}: consented windows != notifications + excluded_by_cap")
        if (s["notified"] == 0) != (s["notifications"] == 0):
            raise ValidationError(f"offers {name}: notified people and notifications disagree")
