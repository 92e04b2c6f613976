"""Stage 1 (network domain): opt-outs, quarantine, policy exclusions, demographics, pseudonyms.

Each event gets exactly one *disposition*, decided in this order:

1. ``opted_out``   — the subscriber's latest preference (as of the run) is an
   analytics opt-out. Checked before anything else, so not even a quarantine
   record is kept of them.
2. ``quarantine``  — the row cannot be processed; ``reason`` says why.
3. ``minor``       — younger than ``min_age`` on the event date.
4. ``business``    — a business line, when business lines are excluded.
5. ``kept``        — goes on to ``pseudonymized_events``.

Tagging instead of filtering lets one pass produce both outputs and the run
summary's counts, which then add up by construction.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contract.vocabulary import EVENT_TYPES, GENDER_CODES, MSISDN_PATTERN, UNKNOWN, age_band_labels
from transforms.hashing import KeyedHash


def latest_preferences(prefs: DataFrame, *, as_of: dt.datetime) -> DataFrame:
    """The preference in force per subscriber: the latest record at or before ``as_of``."""
    latest = F.max_by(F.struct("analytics_opt_out", "location_offers_opt_in"), F.col("updated_at"))
    return (
        prefs.filter(F.col("updated_at") <= F.lit(as_of))
        .groupBy("msisdn")
        .agg(latest.alias("p"))
        .select("msisdn", F.col("p.analytics_opt_out").alias("analytics_opt_out"),
                F.col("p.location_offers_opt_in").alias("location_offers_opt_in"))
    )


def opted_out_msisdns(prefs: DataFrame, *, as_of: dt.datetime) -> DataFrame:
    """MSISDNs whose preference in force is an analytics opt-out."""
    return latest_preferences(prefs, as_of=as_of).filter(F.col("analytics_opt_out")).select("msisdn")


def cells_valid_on(cells: DataFrame, *, date: dt.date) -> DataFrame:
    """One row per cell id: the record valid on ``date``.

    Validity is half-open, ``[valid_from, valid_to)``; ``valid_to`` null = still valid.
    Should records overlap (the cells suite flags that), the latest ``valid_from`` wins,
    so an event is never duplicated by the join. A record without coordinates cannot
    place an event, so it does not count as a known cell.
    """
    d = F.lit(date)
    placed = F.col("latitude").isNotNull() & F.col("longitude").isNotNull()
    valid = cells.filter(placed & (F.col("valid_from") <= d) & (F.col("valid_to").isNull() | (F.col("valid_to") > d)))
    latest = F.max_by(F.struct("latitude", "longitude", "radio", "valid_from"), F.col("valid_from"))
    return valid.groupBy("cell_id").agg(latest.alias("c")).select("cell_id", "c.*")


def with_opt_out_flag(events: DataFrame, *, opted_out: DataFrame) -> DataFrame:
    """Add ``_opted_out``: the event's subscriber has an analytics opt-out in force."""
    flags = opted_out.select("msisdn", F.lit(True).alias("_opted_out"))
    return events.join(flags, on="msisdn", how="left").withColumn("_opted_out", F.coalesce("_opted_out", F.lit(False)))


def quarantine_reason(*, date: dt.date, cell_known: Column) -> Column:
    """The first reason a row cannot be processed, or null when it can."""
    msisdn = F.col("msisdn")
    lat, lng = F.col("latitude"), F.col("longitude")
    return (
        F.when(msisdn.isNull() | (F.trim(msisdn) == ""), F.lit("missing_msisdn"))
        .when(~msisdn.rlike(MSISDN_PATTERN), F.lit("malformed_msisdn"))
        .when(F.col("event_type").isNull() | ~F.col("event_type").isin(*EVENT_TYPES), F.lit("unknown_event_type"))
        .when(F.col("event_ts").isNull(), F.lit("missing_event_ts"))
        .when(F.to_date("event_ts") != F.lit(date), F.lit("event_ts_outside_date"))
        .when(~cell_known, F.lit("unknown_cell"))
        .when(lat.isNull() != lng.isNull(), F.lit("invalid_position"))
        .when(lat.isNotNull() & ((F.abs(lat) > 90) | (F.abs(lng) > 180) | F.isnan(lat) | F.isnan(lng)),
              F.lit("invalid_position"))
    )


def with_quarantine_reason(events: DataFrame, *, date: dt.date, valid_cells: DataFrame) -> DataFrame:
    """Add ``reason`` (null for processable rows), checking cells against those valid on the date."""
    known = F.broadcast(valid_cells.select("cell_id", F.lit(True).alias("_cell_known")))
    return (
        events.join(known, on="cell_id", how="left")
        .withColumn("reason", quarantine_reason(date=date, cell_known=F.coalesce("_cell_known", F.lit(False))))
        .drop("_cell_known")
    )


def age_band(age: Column, *, edges: tuple[int, ...]) -> Column:
    """Label an age with the configured bands: ``18-24``, ..., ``65+``; null -> ``unknown``."""
    labels = age_band_labels(edges)
    expr = F.when(age.isNull() | (age < F.lit(edges[0])), F.lit(UNKNOWN))
    for hi, label in zip(edges[1:], labels, strict=False):
        expr = expr.when(age < F.lit(hi), F.lit(label))
    return expr.otherwise(F.lit(labels[-1]))


def age_on(birth_date: Column, *, date: dt.date) -> Column:
    """Completed years on ``date``; null when unknown or implausible (born after the date)."""
    years = F.floor(F.months_between(F.lit(date), birth_date) / F.lit(12)).cast("int")
    return F.when(birth_date.isNull() | (birth_date > F.lit(date)), F.lit(None).cast("int")).otherwise(years)


def gender_label(gender: Column) -> Column:
    """CRM codes to released labels; anything else is ``unknown``."""
    expr = F.when(F.lit(False), F.lit(None))
    for code, label in GENDER_CODES.items():
        expr = expr.when(F.upper(F.trim(gender)) == F.lit(code), F.lit(label))
    return expr.otherwise(F.lit(UNKNOWN))


def with_demographics(events: DataFrame, *, subscribers: DataFrame, date: dt.date,
                      age_band_edges: tuple[int, ...]) -> DataFrame:
    """Join the CRM, coarsen at once, and keep only what later steps need.

    Adds ``age_band``, ``gender`` (labels), ``_age`` and ``_business``; the birth date
    itself never leaves this function. Subscribers missing from the CRM are
    ``unknown``/``unknown`` and count as consumers.
    """
    crm = subscribers.select(
        "msisdn",
        age_on(F.col("birth_date"), date=date).alias("_age"),
        gender_label(F.col("gender")).alias("_gender"),
        (F.col("customer_type") == F.lit("business")).alias("_business"),
    ).dropDuplicates(["msisdn"])
    return (
        events.join(crm, on="msisdn", how="left")
        .withColumn("age_band", age_band(F.col("_age"), edges=age_band_edges))
        .withColumn("gender", F.coalesce(F.col("_gender"), F.lit(UNKNOWN)))
        .withColumn("_business", F.coalesce(F.col("_business"), F.lit(False)))
        .drop("_gender")
    )


def with_disposition(events: DataFrame, *, min_age: int, exclude_business: bool) -> DataFrame:
    """Add ``disposition``, one of :data:`DISPOSITIONS`, in the documented order."""
    disposition = (
        F.when(F.col("_opted_out"), F.lit("opted_out"))
        .when(F.col("reason").isNotNull(), F.lit("quarantine"))
        .when(F.col("_age").isNotNull() & (F.col("_age") < F.lit(min_age)), F.lit("minor"))
        .when(F.col("_business") & F.lit(exclude_business), F.lit("business"))
        .otherwise(F.lit("kept"))
    )
    return events.withColumn("disposition", disposition)


def with_pseudonyms(events: DataFrame, *, hasher: KeyedHash) -> DataFrame:
    """Replace the direct identifiers by their keyed hash; the raw columns are dropped.

    IMSI and IMEI are hashed only for quarantined rows (the quarantine keeps the
    offending row, hashed); for kept rows they are simply dropped.
    """
    quarantined = F.col("disposition") == F.lit("quarantine")
    return (
        events.transform(hasher.attach)
        .withColumn("pseudo_id", hasher.hex(F.col("msisdn")))
        .withColumn("imsi_hash", F.when(quarantined, hasher.hex(F.col("imsi"))))
        .withColumn("imei_hash", F.when(quarantined, hasher.hex(F.col("imei"))))
        .drop("msisdn", "imsi", "imei")
        .transform(hasher.detach)
    )


def tag_events(events: DataFrame, *, date: dt.date, opted_out: DataFrame, valid_cells: DataFrame,
               subscribers: DataFrame, age_band_edges: tuple[int, ...], min_age: int,
               exclude_business: bool) -> DataFrame:
    """All of stage 1 up to (not including) pseudonymization, as one chain."""
    return (
        events.transform(with_opt_out_flag, opted_out=opted_out)
        .transform(with_quarantine_reason, date=date, valid_cells=valid_cells)
        .transform(with_demographics, subscribers=subscribers, date=date, age_band_edges=age_band_edges)
        .transform(with_disposition, min_age=min_age, exclude_business=exclude_business)
    )


def to_pseudonymized_events(tagged: DataFrame, *, date: dt.date) -> DataFrame:
    """The ``curated/pseudonymized_events`` contract (kept rows only)."""
    return tagged.filter(F.col("disposition") == F.lit("kept")).select(
        F.lit(date).alias("date"),
        "pseudo_id",
        "event_ts",
        "event_type",
        "cell_id",
        "latitude",
        "longitude",
        "age_band",
        "gender",
    )


def to_quarantine(tagged: DataFrame, *, date: dt.date) -> DataFrame:
    """The ``curated/quarantine`` contract: the offending row as JSON, identifiers hashed."""
    record = F.to_json(
        F.struct(
            F.col("pseudo_id").alias("msisdn_hmac"),
            F.col("imsi_hash").alias("imsi_hmac"),
            F.col("imei_hash").alias("imei_hmac"),
            "event_ts",
            "event_type",
            "cell_id",
            "latitude",
            "longitude",
        )
    )
    return tagged.filter(F.col("disposition") == F.lit("quarantine")).select(
        F.lit(date).alias("date"),
        F.lit("network_events").alias("source"),
        "reason",
        record.alias("record"),
    )
