"""Wiring shared by the stages that must honour the opt-outs in force when they run.

Stages 2 and 3 read the *current* raw ``privacy_preferences`` themselves (as of their
own run time) instead of trusting a set computed by an earlier stage, so that a re-run
of one stage after a new opt-out is as safe as a run of the whole pipeline. The
transforms are in :mod:`transforms.consent`; this module only reads and raises.
"""

from __future__ import annotations

from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from contract.errors import InputError
from mobility.io import read_raw
from mobility.runner import Context
from mobility.secrets import derive_daily_key
from transforms.consent import daily_ids_of, drop_listed, pseudonyms_of, unusable_preferences
from transforms.kernels import BUILTIN, Kernels
from transforms.stage1 import opted_out_msisdns


def current_opted_out(ctx: Context) -> DataFrame:
    """Canonical MSISDNs with an analytics opt-out in force at ``ctx.run_ts`` (InputError on unusable records)."""
    prefs = read_raw(ctx.spark, ctx.cfg.lake.raw, "privacy_preferences")
    unusable = unusable_preferences(prefs).count()  # a small table
    if unusable:
        raise InputError(f"privacy_preferences: {unusable} record(s) with a missing MSISDN or one that cannot be "
                         "normalized to E.164 digits; an opt-out among them would be lost, so nothing was written")
    return opted_out_msisdns(prefs, as_of=ctx.run_ts)


def opted_out_pseudonyms(ctx: Context) -> DataFrame:
    """``pseudo_id`` of every subscriber opted out now (network key).

    A lazy frame, never collected (the opted-out set grows with the subscriber base);
    it is small enough to broadcast where it is joined. The key travels as a one-row
    frame, so plans show only its column names (``transforms/hashing.py``).
    """
    kernels: Kernels = ctx.kernels or BUILTIN
    hasher = kernels.keyed_hash(ctx.spark, ctx.keys.network)
    return pseudonyms_of(current_opted_out(ctx), hasher=hasher)


def opted_out_daily_ids(ctx: Context) -> DataFrame:
    """``date`` and ``daily_id`` of every subscriber opted out now, for ``ctx.date`` (network + daily key)."""
    kernels: Kernels = ctx.kernels or BUILTIN
    hasher = kernels.keyed_hash(ctx.spark, derive_daily_key(ctx.keys.daily, ctx.date.isoformat()))
    return daily_ids_of(opted_out_pseudonyms(ctx), hasher=hasher, date=ctx.date)


def drop_opted_out_daily(ctx: Context, frames: dict[str, DataFrame]
                         ) -> tuple[dict[str, DataFrame], dict[str, int], DataFrame]:
    """Stage 3: the frames (keyed by ``daily_id``) without the people opted out now, and the rows dropped per table.

    The ids are computed once and cached on the executors (the caller unpersists the
    returned frame when the frames are no longer needed).
    """
    ids = opted_out_daily_ids(ctx).select("daily_id").persist(StorageLevel.MEMORY_AND_DISK)
    excluded = dict.fromkeys(frames, 0)
    listed = [df.join(F.broadcast(ids), on="daily_id", how="left_semi").select(F.lit(table).alias("table"))
              for table, df in frames.items()]
    for r in reduce(DataFrame.unionByName, listed).groupBy("table").count().collect():  # one query for both tables
        excluded[r["table"]] = r["count"]
    return {table: drop_listed(df, ids=ids, on="daily_id") for table, df in frames.items()}, excluded, ids
