"""Consent and erasure as frame transforms: who is opted out (as keyed hashes), and dropping them.

Every stage that computes or re-computes a release honours every opt-out in force *when
it runs*: stages 2 and 3 do not trust an opted-out set computed earlier, they read the
current raw ``privacy_preferences`` and derive the keyed hashes of the opted-out
subscribers themselves — ``pseudo_id = HMAC(network key, msisdn)`` for stage 2, and the
day's ``daily_id = HMAC(daily key of the date, pseudo_id)`` for stage 3 — so a re-run of
one stage is as safe as a run of the whole pipeline. The opted-out set is small (a few
percent of the subscribers), hashed once per run and broadcast.

The same hashes find a subscriber's rows for erasure (``jobs.erase``).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from contract.columns import canonical_msisdn
from transforms.hashing import KeyedHash
from transforms.stage1 import quarantine_message


def unusable_preferences(prefs: DataFrame) -> DataFrame:
    """Preference records whose MSISDN is missing or cannot be normalized.

    They cannot be attributed to anyone, so an opt-out among them would be lost: a
    stage that meets one must stop (the input suite does the same in stage 1).
    """
    return prefs.filter(canonical_msisdn(F.col("msisdn")).isNull())


def with_canonical(df: DataFrame, col: str = "msisdn") -> DataFrame:
    """Replace ``col`` by its canonical MSISDN (null when it cannot be normalized)."""
    return df.withColumn(col, canonical_msisdn(F.col(col)))


def pseudonyms_of(msisdns: DataFrame, *, hasher: KeyedHash) -> DataFrame:
    """``pseudo_id`` (HMAC with the network key in ``hasher``) of canonical MSISDNs, one row each."""
    return (msisdns.select("msisdn").filter(F.col("msisdn").isNotNull()).distinct()
            .transform(hasher.attach)
            .select(hasher.hex(F.col("msisdn")).alias("pseudo_id"))
            .transform(hasher.detach))


def daily_ids_of(pseudonyms: DataFrame, *, hasher: KeyedHash, date: dt.date) -> DataFrame:
    """``date`` and ``daily_id`` (HMAC with the day's key in ``hasher``) of stage-1 pseudonyms."""
    return (pseudonyms.select("pseudo_id").transform(hasher.attach)
            .select(F.lit(date).alias("date"), hasher.hex(F.col("pseudo_id")).alias("daily_id"))
            .transform(hasher.detach))


def quarantine_ids_of(msisdns: DataFrame, *, hasher: KeyedHash) -> DataFrame:
    """``msisdn_hmac`` as the quarantine record holds it (quarantine domain, network key in ``hasher``)."""
    return (msisdns.select("msisdn").filter(F.col("msisdn").isNotNull()).distinct()
            .transform(hasher.attach)
            .select(hasher.hex(quarantine_message("msisdn", F.col("msisdn"))).alias("msisdn_hmac"))
            .transform(hasher.detach))


def to_opt_outs(pseudonyms: DataFrame, *, date: dt.date, taken_at: dt.datetime) -> DataFrame:
    """The ``curated/opt_outs`` contract: the opted-out pseudonyms in force when stage 1 ran for ``date``."""
    return pseudonyms.select(F.lit(date).alias("date"), "pseudo_id",
                             F.lit(taken_at).cast("timestamp").alias("taken_at"))


def with_excluded_flag(df: DataFrame, *, ids: DataFrame, on: str) -> DataFrame:
    """Add ``_excluded``: the row's ``on`` id is in ``ids`` (a small broadcast set)."""
    flags = F.broadcast(ids.select(on).distinct().withColumn("_excluded", F.lit(True)))
    return df.join(flags, on=on, how="left").withColumn("_excluded", F.coalesce("_excluded", F.lit(False)))


def drop_listed(df: DataFrame, *, ids: DataFrame, on: str) -> DataFrame:
    """Rows whose ``on`` id is not in ``ids`` (anti join with the broadcast set)."""
    return df.join(F.broadcast(ids.select(on).distinct()), on=on, how="left_anti")
