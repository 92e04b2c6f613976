"""Stage 1 (network domain): canonical MSISDNs, opt-outs, policy exclusions, quarantine, pseudonyms.

Every MSISDN — of events, subscribers and preferences — is first put in its one
canonical form (:func:`contract.columns.canonical_msisdn`: E.164 digits, blanks, ``+``
and a leading ``00`` removed), so that no join can miss a person because of how a
number was written.

Each event then gets exactly one *disposition*, decided in the order the law needs:

1. ``opted_out``   — the subscriber's latest preference (as of the run) is an
   analytics opt-out. Checked before anything else, so not even a quarantine
   record is kept of them.
2. ``minor``       — younger than ``min_age`` on the event date.
3. ``business``    — a business line, when business lines are excluded.
4. ``quarantine``  — the row cannot be processed; ``reason`` says why. Only rows of
   people who may be processed at all get here; a row whose MSISDN is missing or
   cannot be normalized cannot be matched to a person and is quarantined.
5. ``kept``        — goes on to ``pseudonymized_events``.

Tagging instead of filtering lets one pass produce both outputs and the run
summary's counts, which then add up by construction.

The quarantine keeps what fixing the feed needs and no more: identifiers hashed under
their own domain (``HMAC(network key, "quarantine/msisdn/" + msisdn)``, which never
equals a ``pseudo_id``), the time truncated to the hour and coordinates rounded to 2
decimals (about 1 km).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contract.columns import canonical_msisdn
from contract.vocabulary import (
    EVENT_TYPES,
    GENDER_CODES,
    GENDERS,
    QUARANTINE_COORD_DECIMALS,
    QUARANTINE_ID_DOMAIN,
    QUARANTINE_TIME_UNIT,
    UNKNOWN,
    age_band_labels,
)
from transforms.hashing import KeyedHash


def latest_preferences(prefs: DataFrame, *, as_of: dt.datetime) -> DataFrame:
    """The preference in force per subscriber (canonical MSISDN): the latest record at or before ``as_of``.

    Records written ``+49 ...``, ``0049...`` and ``49...`` are one subscriber. Should
    several records share the latest ``updated_at`` (the input suite flags that), the
    answer is still deterministic and safe: an opt-out among them wins, an opt-in
    counts only if all of them say so. Records whose MSISDN cannot be normalized are
    left out here; the input gate (:mod:`expectations.privacy_preferences`, and
    :func:`transforms.consent.unusable_preferences` in later stages) fails the run on them.

    One hash aggregation (:func:`latest_says`), where taking the latest time first and
    joining the records back to it cost a join and a second aggregation; every stage
    reads the preferences this way.
    """
    current = (prefs.filter(F.col("updated_at") <= F.lit(as_of))
               .withColumn("msisdn", canonical_msisdn(F.col("msisdn")))
               .filter(F.col("msisdn").isNotNull()))
    return current.groupBy("msisdn").agg(
        latest_says(F.coalesce(F.col("analytics_opt_out"), F.lit(False))).alias("analytics_opt_out"),
        (~latest_says(~F.coalesce(F.col("location_offers_opt_in"), F.lit(False)))).alias("location_offers_opt_in"),
    )


def latest_says(flag: Column) -> Column:
    """Aggregate: whether ``flag`` is true in any of the group's records with the latest ``updated_at``
    (null times are ignored; the preference filter drops them anyway).

    The latest time and the flag are one number, microseconds since the epoch times two
    plus the flag, so their maximum is the latest time and, among records sharing it,
    true if any of them is true: a ``max`` over a long, which Spark hash-aggregates.
    """
    encoded = F.unix_micros(F.col("updated_at")) * F.lit(2) + F.when(flag, F.lit(1)).otherwise(F.lit(0))
    return (F.max(encoded) % F.lit(2)) != F.lit(0)


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


def with_canonical_msisdn(events: DataFrame) -> DataFrame:
    """Replace ``msisdn`` by its canonical form (null if it cannot be normalized); keep the raw value
    as ``_msisdn_raw`` for the quarantine reason only (it is dropped with the other identifiers)."""
    return (events.withColumn("_msisdn_raw", F.col("msisdn"))
            .withColumn("msisdn", canonical_msisdn(F.col("msisdn"))))


def with_opt_out_flag(events: DataFrame, *, opted_out: DataFrame) -> DataFrame:
    """Add ``_opted_out``: the event's subscriber has an analytics opt-out in force.

    Both sides must hold canonical MSISDNs (:func:`with_canonical_msisdn`, :func:`opted_out_msisdns`).

    The opted-out set is broadcast, as in stages 2 and 3 (:mod:`transforms.consent`): it
    is a few percent of the subscribers. Left to the planner, adaptive execution re-plans
    the join once the set's aggregation has run, finds no size estimate for it (its rows
    come out already partitioned by ``msisdn``) and turns the broadcast into a sort-merge
    join that shuffles every raw event: measured at 4 M events, 29-33 s against 13-16 s.
    The set is collected on the driver and sent to every executor, so it is bounded by the
    driver's memory, ``spark.driver.maxResultSize`` and Spark's broadcast limits (8 GB):
    tens of millions of opted-out numbers would fail here rather than fall back to a
    shuffle join. Stages 2 and 3 broadcast the same set as longer pseudonyms.
    """
    flags = F.broadcast(opted_out.select("msisdn", F.lit(True).alias("_opted_out")))
    return events.join(flags, on="msisdn", how="left").withColumn("_opted_out", F.coalesce("_opted_out", F.lit(False)))


def quarantine_reason(*, date: dt.date, cell_known: Column, msisdn: Column | None = None,
                      canonical: Column | None = None) -> Column:
    """The first reason a row cannot be processed, or null when it can.

    ``msisdn`` is the number as the feed wrote it (default: column ``msisdn``); it is
    malformed only when :func:`contract.columns.canonical_msisdn` cannot normalize it.
    ``canonical`` is that normal form when the caller has it already (the regular
    expressions then run once per row, not twice).
    """
    msisdn = F.col("msisdn") if msisdn is None else msisdn
    canonical = canonical_msisdn(msisdn) if canonical is None else canonical
    lat, lng = F.col("latitude"), F.col("longitude")
    return (
        F.when(msisdn.isNull() | (F.trim(msisdn) == ""), F.lit("missing_msisdn"))
        .when(canonical.isNull(), F.lit("malformed_msisdn"))
        .when(F.col("event_type").isNull() | ~F.col("event_type").isin(*EVENT_TYPES), F.lit("unknown_event_type"))
        .when(F.col("event_ts").isNull(), F.lit("missing_event_ts"))
        .when(F.to_date("event_ts") != F.lit(date), F.lit("event_ts_outside_date"))
        .when(~cell_known, F.lit("unknown_cell"))
        .when(lat.isNull() != lng.isNull(), F.lit("invalid_position"))
        .when(lat.isNotNull() & ((F.abs(lat) > 90) | (F.abs(lng) > 180) | F.isnan(lat) | F.isnan(lng)),
              F.lit("invalid_position"))
    )


def with_quarantine_reason(events: DataFrame, *, date: dt.date, valid_cells: DataFrame) -> DataFrame:
    """Add ``reason`` (null for processable rows), checking cells against those valid on the date, and
    ``_cell_known`` (that check alone: true, or null when the cell is not valid on the date)."""
    known = F.broadcast(valid_cells.select("cell_id", F.lit(True).alias("_cell_known")))
    normalized = "_msisdn_raw" in events.columns  # with_canonical_msisdn ran: msisdn is canonical
    raw = F.col("_msisdn_raw") if normalized else F.col("msisdn")
    return (
        events.join(known, on="cell_id", how="left")
        .withColumn("reason", quarantine_reason(date=date, cell_known=F.coalesce("_cell_known", F.lit(False)),
                                                msisdn=raw, canonical=F.col("msisdn") if normalized else None))
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


def gender_label(position: Column) -> Column:
    """The released label at a position of :data:`contract.vocabulary.GENDERS` (from :func:`gender_position`)."""
    return F.element_at(F.array(*map(F.lit, GENDERS)), position)


def gender_position(gender: Column) -> Column:
    """The position (1-based) in :data:`contract.vocabulary.GENDERS` of a CRM code's label; never null."""
    expr = F.when(F.lit(False), F.lit(None))
    for code, label in GENDER_CODES.items():
        expr = expr.when(F.upper(F.trim(gender)) == F.lit(code), F.lit(GENDERS.index(label) + 1))
    return expr.otherwise(F.lit(GENDERS.index(UNKNOWN) + 1))


def with_demographics(events: DataFrame, *, subscribers: DataFrame, date: dt.date,
                      age_band_edges: tuple[int, ...]) -> DataFrame:
    """Join the CRM, coarsen at once, and keep only what later steps need.

    Adds ``age_band``, ``gender`` (labels), ``_age`` and ``_business``; the birth date
    itself never leaves this function. Subscribers missing from the CRM are
    ``unknown``/``unknown`` and count as consumers.

    The CRM's MSISDNs are normalized first (a minor or a business line written
    ``+49 ...`` is still found). A CRM number that cannot be normalized matches no
    event (whose numbers are normalized too); the subscribers suite bounds their share.
    Rows that become duplicates only after normalization (the suite fails the run on
    them) are merged deterministically and on the safe side: the youngest age, a
    business line if any says so, gender only if they agree. The merge aggregates
    numbers only (gender as its position in the vocabulary: they agree when the smallest
    and the largest are equal), so Spark hash-aggregates the CRM; a distinct count of
    the labels made it expand every row and sort-aggregate twice.
    """
    crm = (
        subscribers.select(
            canonical_msisdn(F.col("msisdn")).alias("msisdn"),
            age_on(F.col("birth_date"), date=date).alias("_age"),
            gender_position(F.col("gender")).alias("_gender"),
            F.coalesce(F.col("customer_type") == F.lit("business"), F.lit(False)).alias("_business"),
        )
        .filter(F.col("msisdn").isNotNull())
        .groupBy("msisdn")
        .agg(F.min("_age").alias("_age"),
             F.min("_gender").alias("_gender_lo"), F.max("_gender").alias("_gender_hi"),
             F.bool_or("_business").alias("_business"))
        .select("msisdn", "_age", "_business",
                F.when(F.col("_gender_lo") == F.col("_gender_hi"), gender_label(F.col("_gender_lo")))
                .otherwise(F.lit(UNKNOWN)).alias("_gender"))
    )
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
        .when(F.col("_age").isNotNull() & (F.col("_age") < F.lit(min_age)), F.lit("minor"))
        .when(F.col("_business") & F.lit(exclude_business), F.lit("business"))
        .when(F.col("reason").isNotNull(), F.lit("quarantine"))
        .otherwise(F.lit("kept"))
    )
    return events.withColumn("disposition", disposition)


def quarantine_message(kind: str, value: Column) -> Column:
    """What the quarantine hashes for an identifier: ``"quarantine/<kind>/" + value`` (a separate domain)."""
    return F.concat(F.lit(f"{QUARANTINE_ID_DOMAIN}{kind}/"), value)


def with_pseudonyms(events: DataFrame, *, hasher: KeyedHash) -> DataFrame:
    """Replace the direct identifiers by their keyed hash; the raw columns are dropped.

    Kept rows get ``pseudo_id = HMAC(key, msisdn)``. Quarantined rows get ids in the
    quarantine's own domain (:func:`quarantine_message`), so a quarantine record never
    joins to a curated table: ``msisdn_qid`` of the canonical number (of the raw
    string, under ``msisdn-raw/``, when it cannot be normalized), ``imsi_qid``,
    ``imei_qid``. Nothing else keeps IMSI or IMEI.
    """
    quarantined = F.col("disposition") == F.lit("quarantine")
    raw = F.col("_msisdn_raw") if "_msisdn_raw" in events.columns else F.col("msisdn")
    q_msisdn = F.coalesce(quarantine_message("msisdn", F.col("msisdn")), quarantine_message("msisdn-raw", raw))
    return (
        events.transform(hasher.attach)
        .withColumn("pseudo_id", F.when(~quarantined, hasher.hex(F.col("msisdn"))))
        .withColumn("msisdn_qid", F.when(quarantined, hasher.hex(q_msisdn)))
        .withColumn("imsi_qid", F.when(quarantined, hasher.hex(quarantine_message("imsi", F.col("imsi")))))
        .withColumn("imei_qid", F.when(quarantined, hasher.hex(quarantine_message("imei", F.col("imei")))))
        .drop("msisdn", "imsi", "imei", "_msisdn_raw")
        .transform(hasher.detach)
    )


def tag_events(events: DataFrame, *, date: dt.date, opted_out: DataFrame, valid_cells: DataFrame,
               subscribers: DataFrame, age_band_edges: tuple[int, ...], min_age: int,
               exclude_business: bool) -> DataFrame:
    """All of stage 1 up to (not including) pseudonymization, as one chain."""
    return (
        events.transform(with_canonical_msisdn)
        .transform(with_opt_out_flag, opted_out=opted_out)
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
    """The ``curated/quarantine`` contract: the offending row as JSON, coarsened, identifiers hashed.

    ``record`` fields: ``msisdn_hmac``, ``imsi_hmac``, ``imei_hmac`` (quarantine-domain
    HMACs, see :func:`with_pseudonyms`), ``event_hour`` (``event_ts`` truncated to the
    hour), ``event_type``, ``cell_id``, ``latitude_2dp``, ``longitude_2dp`` (rounded to
    2 decimals, about 1 km): enough to see what is wrong with the feed and where.
    """
    d = QUARANTINE_COORD_DECIMALS
    record = F.to_json(
        F.struct(
            F.col("msisdn_qid").alias("msisdn_hmac"),
            F.col("imsi_qid").alias("imsi_hmac"),
            F.col("imei_qid").alias("imei_hmac"),
            F.date_trunc(QUARANTINE_TIME_UNIT, F.col("event_ts")).alias("event_hour"),
            "event_type",
            "cell_id",
            F.round("latitude", d).alias(f"latitude_{d}dp"),
            F.round("longitude", d).alias(f"longitude_{d}dp"),
        )
    )
    return tagged.filter(F.col("disposition") == F.lit("quarantine")).select(
        F.lit(date).alias("date"),
        F.lit("network_events").alias("source"),
        "reason",
        record.alias("record"),
    )
