"""Generate a realistic synthetic raw lake (Nuremberg) with Spark.

    python -m jobs.generate_lake --conf conf/local.yaml --date 2026-10-05 \
        [--days N] [--subscribers N] [--events N] [--cells N] [--seed S] [--bad-share F]

Everything is computed with Spark column expressions over ``spark.range`` frames —
no Python loop over rows — so the same code writes 100 M events on a cluster.
Randomness comes from ``xxhash64(seed, salt, key)``, not ``rand()``, so the output is
identical for a seed whatever the partitioning or the number of executors.

What it models:

* a radio-cell plan around Nuremberg, denser in the centre, 2G-5G, with about 2 %
  of the cells re-planned (moved, upgraded) in the middle of the period;
* subscribers with a German-like age pyramid (about 5 % minors), gender mix with
  missing values, 10 % business lines, 2 % without birth date;
* a privacy-preference change log: about 3 % analytics opt-outs (some recorded only
  after the generated dates, some who opted back in later); location-offer opt-ins
  (about 12 % before the dates, 3 % during them at some time of day, and a tenth of
  the early ones withdrawn during them);
* two demo location-offer campaigns (``campaigns``): a point fence on the Hauptmarkt
  and an H3 fence at the Hauptbahnhof;
* events that follow a daily routine: home at night, work or school by day, an
  evening shopping or leisure trip for some, with a mix of event types and about
  15 % of events carrying a position fix;
* ``--bad-share`` of the events in each bad-row class of DESIGN.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from contract.errors import ConfigError
from contract.schemas import CAMPAIGNS, CELLS, NETWORK_EVENTS, PRIVACY_PREFERENCES, SUBSCRIBERS
from mobility.config import Config, load_config
from mobility.io import raw_path
from mobility.spark import build_session

CENTRE_LAT, CENTRE_LNG = 49.4521, 11.0767  # Nuremberg Hauptmarkt
KM_PER_DEG_LAT = 111.32
BAD_CLASSES = ("null_msisdn", "malformed_msisdn", "unknown_cell", "ts_outside_date", "unknown_event_type")


def _u(seed: int, salt: str, *keys: Column | str) -> Column:
    """A uniform [0, 1) number determined by seed, salt and keys (partitioning-proof)."""
    cols = [F.col(k) if isinstance(k, str) else k for k in keys]
    return F.pmod(F.xxhash64(F.lit(seed), F.lit(salt), *cols), F.lit(1_000_003)) / F.lit(1_000_003.0)


def _pick(u: Column, choices: list[tuple[float, str]]) -> Column:
    """Map a uniform number to a label by cumulative weights."""
    total = sum(w for w, _ in choices)
    expr, acc = None, 0.0
    for weight, label in choices[:-1]:
        acc += weight / total
        expr = F.when(u < acc, F.lit(label)) if expr is None else expr.when(u < acc, F.lit(label))
    return expr.otherwise(F.lit(choices[-1][1])) if expr is not None else F.lit(choices[-1][1])


def _offset(lat: Column, dist_km: Column, angle: Column) -> tuple[Column, Column]:
    """Move a point by a distance (km) in a direction (radians)."""
    new_lat = lat + dist_km * F.cos(angle) / F.lit(KM_PER_DEG_LAT)
    new_lng_delta = dist_km * F.sin(angle) / (F.lit(KM_PER_DEG_LAT) * F.cos(F.radians(lat)))
    return new_lat, new_lng_delta


def generate_cells(spark: SparkSession, *, n_cells: int, seed: int, replan_date: dt.date) -> DataFrame:
    """The cell plan; ``idx`` grows with distance from the centre (used to place routines)."""
    # Radius grows with idx like -ln(1 - x): many cells near the centre, few far out.
    base = spark.range(n_cells).withColumnRenamed("id", "idx")
    radius = -F.log(F.lit(1.0) - F.lit(0.97) * F.col("idx") / F.lit(n_cells)) * F.lit(2.2)
    angle = _u(seed, "cell-angle", "idx") * F.lit(2 * math.pi)
    lat, dlng = _offset(F.lit(CENTRE_LAT), radius, angle)
    cells = base.select(
        "idx",
        F.format_string("NUE-%05d", F.col("idx")).alias("cell_id"),
        lat.alias("latitude"),
        (F.lit(CENTRE_LNG) + dlng).alias("longitude"),
        _pick(_u(seed, "radio", "idx"), [(0.08, "2G"), (0.12, "3G"), (0.55, "4G"), (0.25, "5G")]).alias("radio"),
        (_u(seed, "replan", "idx") < F.lit(0.02)).alias("replanned"),
    )
    start = F.lit(dt.date(2020, 1, 1))
    replan = F.lit(replan_date)
    current = cells.select(
        "idx",
        "cell_id",
        "latitude",
        "longitude",
        "radio",
        start.alias("valid_from"),
        F.when(F.col("replanned"), replan).otherwise(F.lit(None).cast("date")).alias("valid_to"),
    )
    # A re-planned cell keeps its id but moves 300-800 m and becomes 5G from replan_date.
    moved_lat, moved_dlng = _offset(
        F.col("latitude"),
        F.lit(0.3) + F.lit(0.5) * _u(seed, "move-dist", "idx"),
        _u(seed, "move-angle", "idx") * F.lit(2 * math.pi),
    )
    replanned = cells.filter(F.col("replanned")).select(
        "idx",
        "cell_id",
        moved_lat.alias("latitude"),
        (F.col("longitude") + moved_dlng).alias("longitude"),
        F.lit("5G").alias("radio"),
        replan.alias("valid_from"),
        F.lit(None).cast("date").alias("valid_to"),
    )
    return current.unionByName(replanned)


def generate_subscribers(spark: SparkSession, *, n_subscribers: int, n_cells: int, seed: int,
                         reference_date: dt.date) -> DataFrame:
    """Subscribers with demographics and (internal) routine anchors."""
    base = spark.range(n_subscribers).withColumnRenamed("id", "sub")
    u_age = _u(seed, "age", "sub")
    # ~5 % minors (10-17), then an adult pyramid up to 90.
    age = (
        F.when(u_age < 0.05, F.lit(10) + F.floor(u_age / 0.05 * 8))
        .when(u_age < 0.20, F.lit(18) + F.floor((u_age - 0.05) / 0.15 * 12))
        .when(u_age < 0.70, F.lit(30) + F.floor((u_age - 0.20) / 0.50 * 30))
        .otherwise(F.lit(60) + F.floor((u_age - 0.70) / 0.30 * 31))
    ).cast("int")
    birth = F.date_sub(
        F.add_months(F.lit(reference_date), -F.col("age") * 12),
        F.floor(_u(seed, "bday", "sub") * 365).cast("int"),
    )
    prefix = F.element_at(F.array(F.lit("4915"), F.lit("4916"), F.lit("4917")), (F.col("sub") % 3 + 1).cast("int"))
    # Homes spread over all cells (denser in the centre because cells are); work and
    # school pull towards the centre; shopping even more so.
    return base.withColumn("age", age).select(
        "sub",
        F.concat(prefix, F.lpad(F.col("sub").cast("string"), 8, "0")).alias("msisdn"),
        F.concat(F.lit("26203"), F.lpad(F.col("sub").cast("string"), 10, "0")).alias("imsi"),
        F.concat(F.lit("35"), F.lpad((F.abs(F.xxhash64(F.lit(seed), F.lit("imei"), "sub")) % 10**13).cast("string"),
                                     13, "0")).alias("imei"),
        "age",
        F.when(_u(seed, "nobday", "sub") < 0.02, F.lit(None).cast("date")).otherwise(birth).alias("birth_date"),
        _pick(_u(seed, "gender", "sub"), [(0.49, "F"), (0.49, "M"), (0.005, "D"), (0.015, "")]).alias("gender"),
        F.when(_u(seed, "business", "sub") < 0.10, F.lit("business")).otherwise(F.lit("consumer")).alias(
            "customer_type"
        ),
        F.floor(_u(seed, "home", "sub") * n_cells).cast("long").alias("home_idx"),
        F.floor(F.pow(_u(seed, "work", "sub"), 2.0) * n_cells).cast("long").alias("work_idx"),
        F.floor(F.pow(_u(seed, "shop", "sub"), 3.0) * n_cells).cast("long").alias("shop_idx"),
        # Activity: some phones chatter, most are quiet (weights for picking events).
        (F.lit(0.2) + F.pow(_u(seed, "activity", "sub"), 2.0) * F.lit(3.0)).alias("activity"),
    ).withColumn("gender", F.when(F.col("gender") == "", F.lit(None)).otherwise(F.col("gender")))


def generate_preferences(subscribers: DataFrame, *, seed: int, first_date: dt.date,
                         last_date: dt.date) -> DataFrame:
    """The preference change log: baseline consents, opt-outs, late opt-outs, opt-backs."""
    s = subscribers.select("sub", "msisdn")
    u = _u(seed, "pref", "sub")
    before = F.to_timestamp(F.lit(first_date - dt.timedelta(days=90)))
    after = F.to_timestamp(F.lit(last_date + dt.timedelta(days=1)))
    hours = lambda salt: F.make_dt_interval(F.lit(0), F.floor(_u(seed, salt, "sub") * 1400).cast("int"))  # noqa: E731

    # Some records are written as people and portals write numbers ('+49...', '0049...',
    # '+49 170 1234567'): stage 1 must normalize them before the opt-out join.
    fmt = _u(seed, "pref-format", "sub")
    m = F.col("msisdn")
    written = (F.when(fmt < 0.03, F.concat(F.lit("+"), m))
               .when(fmt < 0.06, F.concat(F.lit("00"), m))
               .when(fmt < 0.08, F.concat_ws(" ", F.concat(F.lit("+"), F.substring(m, 1, 2)), F.substring(m, 3, 3),
                                             F.substring(m, 6, 20)))
               .otherwise(m))

    def record(df: DataFrame, opt_out: Column, opt_in: Column, ts: Column) -> DataFrame:
        return df.select(
            written.alias("msisdn"),
            opt_out.alias("analytics_opt_out"),
            opt_in.alias("location_offers_opt_in"),
            ts.alias("updated_at"),
        )

    # Location offers: about 12 % of subscribers opted in before the period; about 3 % opt in
    # during it (at some time of day on one of its dates, so their earlier events never count);
    # about a tenth of the early opt-ins withdraw during the period, also mid-day.
    opted_in = _u(seed, "optin", "sub") < 0.25
    baseline = record(s.filter(u >= 0.5), F.lit(False), opted_in, before + hours("b"))
    days = (last_date - first_date).days + 1

    def during(salt: str) -> Column:  # a time between 07:00 and 19:00 UTC on one of the dates
        day = F.floor(_u(seed, f"{salt}-day", "sub") * days).cast("long")
        sec = F.lit(7 * 3600) + F.floor(_u(seed, f"{salt}-tod", "sub") * 12 * 3600).cast("long")
        return F.timestamp_seconds(F.lit(int(dt.datetime.combine(first_date, dt.time()).replace(
            tzinfo=dt.UTC).timestamp())) + day * 86400 + sec)

    mid_opt_in = record(s.filter((u >= 0.030) & (u < 0.5) & (_u(seed, "optin-mid", "sub") < 0.06)),
                        F.lit(False), F.lit(True), during("optin-mid"))
    withdrawal = record(s.filter((u >= 0.5) & opted_in & (_u(seed, "withdraw", "sub") < 0.1)),
                        F.lit(False), F.lit(False), during("withdraw"))
    # 0.000-0.020: opted out before the period; 0.020-0.025 opted out after it (still
    # removed on re-runs); 0.025-0.030 opted out, then back in before the period.
    early = record(s.filter((u < 0.020) | ((u >= 0.025) & (u < 0.030))), F.lit(True), F.lit(False),
                   before + hours("e"))
    late = record(s.filter((u >= 0.020) & (u < 0.025)), F.lit(True), F.lit(False), after + hours("l"))
    back_in = record(s.filter((u >= 0.025) & (u < 0.030)), F.lit(False), F.lit(False),
                     before + F.make_dt_interval(F.lit(40)) + hours("r"))
    # The late opt-outs had consented before the period.
    late_consent = record(s.filter((u >= 0.020) & (u < 0.025)), F.lit(False), F.lit(False), before)
    return (baseline.unionByName(early).unionByName(late_consent).unionByName(late).unionByName(back_in)
            .unionByName(mid_opt_in).unionByName(withdrawal))


DEMO_STORE = (49.4539, 11.0775)  # a store on Nuremberg's Hauptmarkt
DEMO_STATION = (49.4456, 11.0829)  # Nuremberg Hauptbahnhof


def generate_campaigns(spark: SparkSession, *, first_date: dt.date, last_date: dt.date) -> DataFrame:
    """Two demo campaigns: a point fence (300 m around a Hauptmarkt store, 10:00-20:00, once a
    day) and an H3 fence (the station's resolution-9 cell and its neighbours, 07:00-10:00,
    people aged 18-34, up to twice a day)."""
    import h3  # the small reference table only

    station = sorted(h3.k_ring(h3.geo_to_h3(*DEMO_STATION, 9), 1))
    rows = [
        ("NUE-HAUPTMARKT-01", "Demo store Hauptmarkt", *DEMO_STORE, 300.0, None, None, first_date, last_date,
         "10:00", "20:00", 1, None, None),
        ("NUE-HBF-COFFEE-01", "Demo coffee bar Hauptbahnhof", None, None, None, station, 9, first_date, None,
         "07:00", "10:00", 2, ["18-24", "25-34"], None),
    ]
    return spark.createDataFrame(rows, CAMPAIGNS)


def generate_events(spark: SparkSession, *, date: dt.date, subscribers: DataFrame, cells: DataFrame,
                    n_events: int, n_subscribers: int, seed: int, bad_share: float) -> DataFrame:
    """One day of events following each subscriber's routine."""
    d = date.isoformat()
    ev = spark.range(n_events).withColumnRenamed("id", "eid")
    # Pick a subscriber: skewed so that some subscribers produce many more events.
    ev = ev.select(
        "eid",
        F.floor(F.pow(_u(seed, f"who/{d}", "eid"), 1.3) * n_subscribers).cast("long").alias("sub"),
        _u(seed, f"tod/{d}", "eid").alias("u_tod"),
    )
    subs = subscribers.select("sub", "msisdn", "imsi", "imei", "age", "home_idx", "work_idx", "shop_idx")
    ev = ev.join(F.broadcast(subs), on="sub", how="inner")
    # Time of day: fewer events at night, peaks in the day (mixture of uniform + day bump).
    sec = F.when(F.col("u_tod") < 0.25, F.col("u_tod") / 0.25 * 86400).otherwise(
        F.lit(6.5 * 3600) + (F.col("u_tod") - 0.25) / 0.75 * (16.0 * 3600)
    )
    ev = ev.withColumn("sec", F.floor(sec).cast("long"))
    # Routine (per subscriber and day): leave home, leave work, optional evening trip.
    leave_home = F.lit(6.5 * 3600) + _u(seed, f"lh/{d}", "sub") * 2.5 * 3600
    leave_work = F.lit(15.5 * 3600) + _u(seed, f"lw/{d}", "sub") * 3.0 * 3600
    trip_start = leave_work + F.lit(1200)
    trip_len = F.lit(1800) + _u(seed, f"tl/{d}", "sub") * 5400
    has_trip = _u(seed, f"trip/{d}", "sub") < 0.4
    goes_out = (F.col("age") >= 6) & (F.col("age") < 67) & (_u(seed, f"out/{d}", "sub") < 0.85)
    commute = F.lit(1500)
    t = F.col("sec")
    place = (
        F.when(~goes_out & has_trip & (t >= F.lit(10 * 3600)) & (t < F.lit(10 * 3600) + trip_len), F.col("shop_idx"))
        .when(~goes_out, F.col("home_idx"))
        .when(t < leave_home, F.col("home_idx"))
        .when(t < leave_home + commute, F.lit(-1))  # on the move
        .when(t < leave_work, F.col("work_idx"))
        .when(has_trip & (t >= trip_start) & (t < trip_start + trip_len), F.col("shop_idx"))
        .when(t < leave_work + commute, F.lit(-1))
        .otherwise(F.col("home_idx"))
    )
    ev = ev.withColumn("place_idx", place)
    # On the move: a cell whose index lies between home and work (a cell on the way).
    u_move = _u(seed, f"move/{d}", "eid")
    ev = ev.withColumn(
        "place_idx",
        F.when(F.col("place_idx") < 0, F.floor(u_move * F.col("home_idx") + (1 - u_move) * F.col("work_idx")))
        .otherwise(F.col("place_idx")).cast("long"),
    )
    valid = cells.filter(
        (F.col("valid_from") <= F.lit(date)) & (F.col("valid_to").isNull() | (F.col("valid_to") > F.lit(date)))
    ).select(F.col("idx").alias("place_idx"), "cell_id", F.col("latitude").alias("c_lat"),
             F.col("longitude").alias("c_lng"))
    ev = ev.join(F.broadcast(valid), on="place_idx", how="inner")
    has_fix = _u(seed, f"fix/{d}", "eid") < 0.15
    fix_lat, fix_dlng = _offset(F.col("c_lat"), _u(seed, f"fd/{d}", "eid") * 0.25,
                                _u(seed, f"fa/{d}", "eid") * F.lit(2 * math.pi))
    event_ts = F.timestamp_seconds(F.unix_timestamp(F.to_timestamp(F.lit(d))) + F.col("sec"))
    ev = ev.select(
        "eid",
        "msisdn",
        "imsi",
        F.when(_u(seed, f"noimei/{d}", "eid") < 0.05, F.lit(None)).otherwise(F.col("imei")).alias("imei"),
        event_ts.alias("event_ts"),
        _pick(_u(seed, f"type/{d}", "eid"),
              [(0.15, "voice"), (0.10, "sms"), (0.55, "data"), (0.10, "handover"), (0.10, "location_update")]
              ).alias("event_type"),
        "cell_id",
        F.when(has_fix, fix_lat).alias("latitude"),
        F.when(has_fix, F.col("c_lng") + fix_dlng).alias("longitude"),
    )
    return inject_bad_rows(ev, seed=seed, date=date, share=bad_share)


def inject_bad_rows(events: DataFrame, *, seed: int, date: dt.date, share: float) -> DataFrame:
    """Turn ``share`` of the rows into each bad-row class (disjoint bands of one draw)."""
    d = date.isoformat()
    u = _u(seed, f"bad/{d}", "eid")
    band = F.floor(u / F.lit(share)).cast("int") if share > 0 else F.lit(len(BAD_CLASSES))
    cls = F.when(band < len(BAD_CLASSES), F.element_at(F.array(*[F.lit(c) for c in BAD_CLASSES]), band + 1))
    ev = events.withColumn("bad_class", cls)
    malformed = _pick(_u(seed, f"malf/{d}", "eid"),
                      [(1, "+49 170-"), (1, "0170-"), (1, "49abc"), (1, "1")])
    shift_days = F.when(_u(seed, f"shift/{d}", "eid") < 0.5, F.lit(-1)).otherwise(F.lit(1))
    return ev.select(
        F.when(F.col("bad_class") == "null_msisdn", F.lit(None))
        .when(F.col("bad_class") == "malformed_msisdn", F.concat(malformed, F.substring("msisdn", 7, 6)))
        .otherwise(F.col("msisdn")).alias("msisdn"),
        "imsi",
        "imei",
        F.when(F.col("bad_class") == "ts_outside_date",
               F.col("event_ts") + F.make_dt_interval(shift_days)).otherwise(F.col("event_ts")).alias("event_ts"),
        F.when(F.col("bad_class") == "unknown_event_type",
               _pick(_u(seed, f"badtype/{d}", "eid"), [(1, "mms"), (1, "VOICE"), (1, "")]))
        .otherwise(F.col("event_type")).alias("event_type"),
        F.when(F.col("bad_class") == "unknown_cell", F.concat(F.lit("XX-"), F.col("eid").cast("string")))
        .otherwise(F.col("cell_id")).alias("cell_id"),
        "latitude",
        "longitude",
    )


def generate_lake(spark: SparkSession, *, raw_root: str, start: dt.date, days: int, n_subscribers: int,
                  n_events: int, n_cells: int, seed: int, bad_share: float) -> dict[str, int]:
    """Write the whole raw lake; returns the number of rows written per table."""
    if not 0 <= bad_share * len(BAD_CLASSES) < 0.5:
        raise ValueError(f"--bad-share {bad_share} is out of range (0 to {0.5 / len(BAD_CLASSES):.2f})")
    last = start + dt.timedelta(days=days - 1)
    replan_date = start + dt.timedelta(days=days // 2)
    cells = generate_cells(spark, n_cells=n_cells, seed=seed, replan_date=replan_date).cache()
    subscribers = generate_subscribers(spark, n_subscribers=n_subscribers, n_cells=n_cells, seed=seed,
                                       reference_date=start).cache()
    prefs = generate_preferences(subscribers, seed=seed, first_date=start, last_date=last)

    def write(df: DataFrame, table: str, schema_names: list[str]) -> None:
        df.select(*schema_names).coalesce(4).write.mode("overwrite").parquet(raw_path(raw_root, table))

    write(cells, "cells", CELLS.names)
    write(subscribers, "subscribers", SUBSCRIBERS.names)
    write(prefs, "privacy_preferences", PRIVACY_PREFERENCES.names)
    write(generate_campaigns(spark, first_date=start, last_date=last), "campaigns", CAMPAIGNS.names)
    for i in range(days):  # a handful of dates, never rows
        day = start + dt.timedelta(days=i)
        ev = generate_events(spark, date=day, subscribers=subscribers, cells=cells, n_events=n_events,
                             n_subscribers=n_subscribers, seed=seed, bad_share=bad_share)
        parts = max(1, n_events // 2_000_000)
        ev.select(*NETWORK_EVENTS.names).repartition(parts).write.mode("overwrite").parquet(
            raw_path(raw_root, "network_events", day.isoformat())
        )
    counts = {
        "cells": spark.read.parquet(raw_path(raw_root, "cells")).count(),
        "subscribers": spark.read.parquet(raw_path(raw_root, "subscribers")).count(),
        "privacy_preferences": spark.read.parquet(raw_path(raw_root, "privacy_preferences")).count(),
        "network_events": spark.read.parquet(raw_path(raw_root, "network_events")).count(),
        "campaigns": spark.read.parquet(raw_path(raw_root, "campaigns")).count(),
    }
    cells.unpersist()
    subscribers.unpersist()
    return counts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m jobs.generate_lake", description=__doc__.split("\n")[0])
    p.add_argument("--conf", required=True, help="config file, e.g. conf/local.yaml")
    p.add_argument("--date", required=True, type=dt.date.fromisoformat, help="first event date, YYYY-MM-DD")
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--subscribers", type=int, default=50_000)
    p.add_argument("--events", type=int, default=1_000_000, help="events per day")
    p.add_argument("--cells", type=int, default=2_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bad-share", type=float, default=0.002, help="share of events in each bad-row class")
    p.add_argument("--set", action="append", default=[], metavar="section.key=value")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg: Config = load_config(args.conf, args.set)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spark = build_session("generate-lake", cfg.spark)
    counts = generate_lake(spark, raw_root=cfg.lake.raw, start=args.date, days=args.days,
                           n_subscribers=args.subscribers, n_events=args.events, n_cells=args.cells,
                           seed=args.seed, bad_share=args.bad_share)
    print(f"raw lake written to {cfg.lake.raw}")
    for table, n in counts.items():
        print(f"  {table:<20} {n:>12,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
