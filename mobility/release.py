"""How buyers read a release, and when a date may be released again.

**Reading.** A release of a date is the ``footfall``, ``presence`` and ``od_flows`` rows
of that date at the Delta versions the release ledger names for it
(:func:`read_release`): the three tables of one release, never a mix of two runs,
even while a run is writing or after one died half-way.

**Republishing.** An attacker can read every version of a date that is still
readable and subtract one from another. A date that was released before is
published again only if, against every earlier release of it that can still be
read (:func:`check_republish`):

* the policy is the same (k_min, resolutions, window, age bands, suppression rule,
  mode) — a 25-34 band minus a 25-29 band is a small group;
* the same rows are released (same keys in every table) — a row present in one
  version and suppressed in the other bounds a change the rule hid;
* every value differs by 0 or by at least ``k_min`` — a difference of 1 is a person.

Otherwise the run is refused (exit 1) and the release zone is unchanged. After an
allowed republish the superseded versions are purged (``mobility.publish``).
"""

from __future__ import annotations

import datetime as dt

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contract.errors import ReleaseRefused
from contract.vocabulary import RELEASE_KEYS, RELEASE_VALUES
from mobility.config import LakeConfig
from mobility.io import is_delta_table, path_exists, table_path
from mobility.ledger import Policy, latest_publication, published_rows, read_pinned

RELEASE_TABLES = ("footfall", "presence", "od_flows")


def read_release(spark: SparkSession, lake: LakeConfig, date: dt.date) -> dict[str, DataFrame]:
    """The released ``footfall``, ``presence`` and ``od_flows`` rows of ``date``, at the ledger's versions.

    Raises FileNotFoundError when the date has not been released.
    """
    return {t: read_pinned(spark, lake, t, date, what=f"insights/{t}") for t in RELEASE_TABLES}


def release_policy(spark: SparkSession, lake: LakeConfig, date: dt.date) -> Policy | None:
    """The policy the newest release of ``date`` was made under (None if never released)."""
    rows = latest_publication(spark, lake, "insights", date)
    return Policy.from_row(next(iter(rows.values()))) if rows else None


def _readable(spark: SparkSession, path: str, version: int, date: dt.date) -> DataFrame | None:
    """The date's rows at ``version``, or None when that version can no longer be read."""
    try:
        df = spark.read.format("delta").option("versionAsOf", version).load(path).filter(F.col("date") == F.lit(date))
    except AnalysisException:
        return None
    if any(not path_exists(spark, f) for f in df.inputFiles()):
        return None
    return df


def differences(old: DataFrame, new: DataFrame, *, table: str, k_min: int) -> DataFrame:
    """Rows of two versions of one table that make a small group derivable.

    ``kind`` is ``only_old`` / ``only_new`` (a row released in one version only) or
    ``small_difference`` (``0 < |new - old| < k_min``).
    """
    keys, value = list(RELEASE_KEYS[table]), RELEASE_VALUES[table]
    joined = (old.select(*keys, F.col(value).alias("_old"))
              .join(new.select(*keys, F.col(value).alias("_new")), on=keys, how="full_outer"))
    diff = F.abs(F.col("_new") - F.col("_old"))
    kind = (F.when(F.col("_new").isNull(), F.lit("only_old"))
            .when(F.col("_old").isNull(), F.lit("only_new"))
            .when((diff > 0) & (diff < F.lit(k_min)), F.lit("small_difference")))
    return joined.withColumn("kind", kind).filter(F.col("kind").isNotNull())


def check_budget(date: dt.date, runs: dict[str, dict[str, dict]], policy: Policy, budget_epsilon: float | None,
                 budget_delta: float | None) -> None:
    """Refuse a DP release whose ε or δ, added to every earlier DP release of the date, exceeds the budget.

    Every earlier release counts, readable or purged: a buyer may have kept a copy.
    """
    if budget_epsilon is None or budget_delta is None:
        raise ValueError("a differential-privacy release needs the per-date budget (dp.budget_epsilon, budget_delta)")
    spent = [Policy.from_row(next(iter(t.values()))) for t in runs.values()]
    spent_eps = sum(p.epsilon or 0.0 for p in spent if p.is_dp)
    spent_delta = sum(p.delta or 0.0 for p in spent if p.is_dp)
    over_eps = spent_eps + policy.epsilon > budget_epsilon * (1 + 1e-9)
    if over_eps or spent_delta + policy.delta > budget_delta * (1 + 1e-9):
        raise ReleaseRefused(
            f"{date.isoformat()}: the privacy budget would be exceeded: {len(spent)} earlier release(s) spent "
            f"epsilon={spent_eps:g}, delta={spent_delta:g}; this one would spend epsilon={policy.epsilon:g}, "
            f"delta={policy.delta:g}; the date's budget is epsilon={budget_epsilon:g}, delta={budget_delta:g} "
            "(dp.budget_epsilon, dp.budget_delta). Nothing was published")


def check_republish(spark: SparkSession, lake: LakeConfig, date: dt.date, frames: dict[str, DataFrame],
                    policy: Policy, *, budget_epsilon: float | None = None, budget_delta: float | None = None) -> int:
    """Refuse (ReleaseRefused) a release of ``date`` that is unsafe next to an earlier one.

    ``frames`` are the new release's tables. k-anonymous releases are compared with every
    earlier release that can still be read (same policy, same keys, differences 0 or at
    least k_min). A differential-privacy release must fit the date's budget together with
    every earlier DP release; next to a k-anonymous release of the date it is refused like
    any change of policy. Returns how many earlier releases were compared.
    """
    earlier = published_rows(spark, lake, "insights", date)  # a few rows per release
    runs: dict[str, dict[str, dict]] = {}
    for r in earlier:
        if r["table_name"] in frames:  # releases of these tables (not, e.g., the offers' report)
            runs.setdefault(r["run_id"], {})[r["table_name"]] = r
    if policy.is_dp:
        check_budget(date, runs, policy, budget_epsilon, budget_delta)
    compared = 0
    for run_id, tables in runs.items():
        old_policy = Policy.from_row(next(iter(tables.values())))
        if policy.is_dp and old_policy.is_dp:
            # Differential privacy composes: what two DP releases reveal together is bounded
            # by the budget they spend together (checked above, readable or not).
            compared += 1  # superseded: its version is purged after the write, like any republish
            continue
        changed = old_policy.differences(policy)
        readable = {t: _readable(spark, table_path(lake, t), int(row["version"]), date)
                    for t, row in tables.items() if t in frames and is_delta_table(spark, table_path(lake, t))}
        readable = {t: df for t, df in readable.items() if df is not None}
        if not readable:
            continue  # purged: nobody can read it any more
        compared += 1
        if changed:
            raise ReleaseRefused(
                f"{date.isoformat()} was released before (run {run_id[:8]}) under another policy "
                f"({'; '.join(changed)}); releasing it again would let the two be subtracted. Nothing was published")
        for table, old in readable.items():
            found = differences(old, frames[table], table=table, k_min=policy.k_min)
            first = found.groupBy("kind").count().orderBy("kind").collect()  # at most 3 rows
            if first:
                shown = ", ".join(f"{r['count']} {r['kind']}" for r in first)
                raise ReleaseRefused(
                    f"{date.isoformat()} was released before (run {run_id[:8]}) and {table} would differ from it "
                    f"in a way that reveals groups below k_min={policy.k_min} ({shown}). Nothing was published; "
                    "see docs/privacy.md, 'Correcting a release'")
    return compared
