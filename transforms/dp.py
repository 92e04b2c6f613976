"""Differential privacy as a release mode: bounded contributions, OpenDP noise, public keys.

The k-anonymous release (``transforms/disclosure.py``) protects each table as far as its
rules foresee every way of combining releases. This mode protects against all of them,
with a number an auditor can check: every release of a date is (ε, δ)-differentially
private with respect to one person's whole day.

* **Bounded contributions.** A person adds 1 to at most ``L`` groups per table and date
  (footfall: window x cell x label groups; presence: window x cell; od_flows: OD groups),
  at most once per group. Which ``L`` groups are kept is decided by a keyed pseudo-random
  order — SHA-256 of the person's daily id (itself an HMAC under the day's secret key) and
  the group — so it depends on nothing an attacker controls. The L1 sensitivity of a
  table's vector of counts is then ``L``.
* **Noise from a vetted library.** Discrete Laplace noise on the integer counts, drawn by
  OpenDP (``make_laplace`` on integer vectors: exact sampling, no floating-point attack
  surface) inside ``mapInPandas`` on the small grouped table; the aggregation stays in
  Spark. Scale ``L / ε_table``; OpenDP's own privacy map checks the calibration.
* **Which groups appear.** Footfall and presence are computed over a *public* key set —
  the H3 cells of the radio cells valid on the date x the day's windows (x every age band
  and gender label for footfall) — so no data-dependent selection happens. OD flows are
  sparse: OpenDP's ``make_laplace_threshold`` (noise, then a threshold that costs ``δ``)
  selects them.
* **Post-processing** (no budget): a noisy count is released only if it reaches the
  table's release threshold: at least ``privacy.k_min`` (buyers keep the "at least k_min"
  promise) and, over public keys, high enough that an empty group appears with at most
  :data:`FALSE_GROUP_RATE` probability (without it, a third of all empty cell-windows
  would show k_min or more people at the default settings).

The noise is random on every evaluation, so ``jobs.aggregate`` materialises the noisy
frames once (``localCheckpoint``) before they are audited and written: audit and write
see the same values, and a lost block fails the run instead of silently drawing new noise.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from contract.vocabulary import DP_MECHANISM

MECHANISM = DP_MECHANISM
# Over public keys, an empty group is released with at most this probability.
FALSE_GROUP_RATE = 0.01


def _opendp():
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


@dataclass(frozen=True)
class TableNoise:
    """One table's share of a release's budget and the noise calibrated to it."""

    epsilon: float
    delta: float
    max_groups: int
    scale: float
    threshold: int  # released only at or above it (od_flows: OpenDP's partition-selection threshold)


def laplace_scale(epsilon: float, max_groups: int) -> float:
    """The discrete Laplace scale for L1 sensitivity ``max_groups`` at ``epsilon``, checked by OpenDP's map."""
    dp = _opendp()
    scale = max_groups / epsilon
    m = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=scale)
    spent = m.map(max_groups)
    if spent > epsilon * (1 + 1e-9):
        raise ValueError(f"OpenDP: scale {scale} spends ε={spent} > {epsilon}")
    return scale


def release_threshold(scale: float, k_min: int) -> int:
    """The smallest noisy count released over public keys: at least ``k_min``, and an empty
    group's noise reaches it with probability at most :data:`FALSE_GROUP_RATE`.

    For the discrete Laplace with ``t = exp(-1/scale)``, P(noise >= τ) = t^τ / (1 + t).
    """
    t = math.exp(-1.0 / scale)
    tau = math.ceil(scale * math.log(1.0 / (FALSE_GROUP_RATE * (1.0 + t))))
    return max(k_min, tau)


def _threshold_measurement(scale: float, threshold: int):
    dp = _opendp()
    return dp.m.make_laplace_threshold(dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=int)),
                                       dp.l01inf_distance(dp.absolute_distance(T=int)), scale=scale,
                                       threshold=threshold)


def threshold_calibration(epsilon: float, delta: float, max_groups: int) -> tuple[float, int]:
    """Scale and the smallest threshold for which OpenDP's map gives at most (``epsilon``, ``delta``).

    One person changes at most ``max_groups`` partitions, each by at most 1 (d_in =
    (l0, l1, l∞) = (L, L, 1)).
    """
    dp = _opendp()
    scale = max_groups / epsilon
    d_in = (max_groups, max_groups, 1)
    threshold = dp.binary_search_param(lambda t: _threshold_measurement(scale, t), d_in=d_in,
                                       d_out=(epsilon, delta), T=int)
    spent_eps, spent_delta = _threshold_measurement(scale, threshold).map(d_in)
    if spent_eps > epsilon * (1 + 1e-9) or spent_delta > delta:
        raise ValueError(f"OpenDP: threshold {threshold} spends ({spent_eps}, {spent_delta}) > ({epsilon}, {delta})")
    return scale, int(threshold)


@dataclass(frozen=True)
class DpPlan:
    """How one release of a date spends its budget: per table ε, δ, bound, scale (and od threshold)."""

    epsilon: float
    delta: float
    footfall: TableNoise
    presence: TableNoise
    od_flows: TableNoise

    @classmethod
    def of(cls, dpc, *, k_min: int) -> DpPlan:
        """From the ``dp`` config section (``mobility.config.DpConfig``) and ``privacy.k_min``."""
        e_f, e_p, e_o = (dpc.epsilon * s for s in (dpc.footfall_share, dpc.presence_share, dpc.od_flows_share))
        od_scale, od_threshold = threshold_calibration(e_o, dpc.delta, dpc.od_flows_max_groups)

        def public(eps: float, bound: int) -> TableNoise:
            scale = laplace_scale(eps, bound)
            return TableNoise(eps, 0.0, bound, scale, release_threshold(scale, k_min))

        return cls(epsilon=dpc.epsilon, delta=dpc.delta,
                   footfall=public(e_f, dpc.footfall_max_groups), presence=public(e_p, dpc.presence_max_groups),
                   od_flows=TableNoise(e_o, dpc.delta, dpc.od_flows_max_groups, od_scale,
                                       max(k_min, od_threshold)))

    def bounds(self) -> str:
        """The contribution bounds as JSON (what the ledger records)."""
        return json.dumps({t: getattr(self, t).max_groups for t in ("footfall", "presence", "od_flows")},
                          sort_keys=True)

    def summary(self) -> dict:
        return {"epsilon": self.epsilon, "delta": self.delta, "mechanism": MECHANISM,
                **{t: asdict(getattr(self, t)) for t in ("footfall", "presence", "od_flows")}}


# ------------------------------------------------------------------------- contribution bounding


def bound_contributions(df: DataFrame, *, id_col: str, group_cols: tuple[str, ...], max_groups: int) -> DataFrame:
    """Each person's distinct groups, at most ``max_groups`` of them, in a keyed pseudo-random order.

    Returns ``id_col`` and ``group_cols``, one row per person and group. The order is
    SHA-256 of the daily id and the group: the daily id is an HMAC under the day's secret
    key, so nobody outside can predict or steer which groups are kept.
    """
    distinct = df.select(id_col, *group_cols).dropDuplicates([id_col, *group_cols])
    order = F.sha2(F.concat_ws("|", F.col(id_col), *[F.col(c).cast("string") for c in group_cols]), 256)
    ranked = distinct.withColumn("_rank", F.row_number().over(Window.partitionBy(id_col).orderBy(order)))
    return ranked.filter(F.col("_rank") <= F.lit(max_groups)).drop("_rank")


def count_bounded(bounded: DataFrame, *, group_cols: tuple[str, ...], count_col: str) -> DataFrame:
    """People per group after bounding (one row per person and group, so a plain count)."""
    return bounded.groupBy(*group_cols).agg(F.count(F.lit(1)).cast("long").alias(count_col))


# ------------------------------------------------------------------------- public keys


def day_windows(spark: SparkSession, date: dt.date, window_minutes: int) -> DataFrame:
    """``date`` and ``window_start`` of every window of the day (public: depends on the config only)."""
    start = dt.datetime.combine(date, dt.time())
    return spark.range(24 * 60 // window_minutes).select(
        F.lit(date).alias("date"),
        (F.lit(start).cast("timestamp") + F.make_dt_interval(mins=F.col("id") * F.lit(window_minutes)))
        .alias("window_start"))


def public_keys(cells_h3: DataFrame, *, date: dt.date, window_minutes: int,
                labels: tuple[tuple[str, str], ...] | None = None) -> DataFrame:
    """The public key set: H3 cells of the cell plan x the day's windows (x age band and gender labels).

    ``cells_h3`` has ``h3_cell`` (the radio cells valid on the date at the release
    resolution); it is the cell plan, not the events, so the set does not depend on anyone's data.
    """
    spark = cells_h3.sparkSession
    keys = day_windows(spark, date, window_minutes).crossJoin(cells_h3.select("h3_cell").distinct())
    if labels is not None:
        keys = keys.crossJoin(spark.createDataFrame(list(labels), "age_band string, gender string"))
    return keys


def over_public_keys(counts: DataFrame, keys: DataFrame, *, count_col: str) -> DataFrame:
    """Every public key with its count (0 where nobody was counted); counts outside the keys are dropped."""
    key_cols = keys.columns
    return keys.join(counts, on=key_cols, how="left").fillna(0, subset=[count_col]).select(*key_cols, count_col)


# ------------------------------------------------------------------------- noise (OpenDP, per batch)


def laplace_batches(scale: float, count_col: str):
    """A ``mapInPandas`` function adding OpenDP discrete Laplace(``scale``) noise to ``count_col``."""

    def noisy(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        dp = _opendp()
        sampler = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=scale)
        for pdf in batches:
            if len(pdf):
                pdf[count_col] = pd.Series(sampler([int(v) for v in pdf[count_col]]), index=pdf.index, dtype="int64")
            yield pdf

    return noisy


def threshold_batches(scale: float, threshold: int, count_col: str, key_col: str):
    """A ``mapInPandas`` function applying OpenDP's Laplace-threshold to the rows (keyed by ``key_col``).

    The mechanism treats every key independently (noise, then keep if above the
    threshold), so applying it to each batch's keys is the same mechanism as applying it
    to the whole map at once.
    """

    def selected(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        m = _threshold_measurement(scale, threshold)
        for pdf in batches:
            if not len(pdf):
                yield pdf
                continue
            released = m({str(k): int(v) for k, v in zip(pdf[key_col], pdf[count_col], strict=True)})
            keep = pdf[key_col].isin(list(released))
            out = pdf[keep].copy()
            out[count_col] = pd.Series([int(released[k]) for k in out[key_col]], index=out.index, dtype="int64")
            yield out

    return selected


def add_noise(counts: DataFrame, noise: TableNoise, *, count_col: str) -> DataFrame:
    """Noisy counts over the given (public) keys. Random on every evaluation: the job materialises it once."""
    return counts.mapInPandas(laplace_batches(noise.scale, count_col), counts.schema)


def select_noisy(counts: DataFrame, noise: TableNoise, *, key_cols: tuple[str, ...], count_col: str) -> DataFrame:
    """DP partition selection over data-dependent keys (od_flows). Random: the job materialises it once."""
    keyed = counts.withColumn("_key", F.concat_ws("|", *[F.col(c).cast("string") for c in key_cols]))
    out = keyed.mapInPandas(threshold_batches(noise.scale, noise.threshold, count_col, "_key"), keyed.schema)
    return out.drop("_key")
