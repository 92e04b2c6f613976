"""Disclosure control across released tables: secondary suppression and the privacy audit.

Primary suppression (``visitors < k_min``) protects each row on its own. Rows can
also be combined: footfall splits each (date, window, cell) by age band and gender,
and presence releases the same cell-window's total over the *same* people counted
the *same* way (every person has exactly one age band and gender per day). So::

    presence = sum over (age_band, gender) of footfall                      (1)

and anyone can compute the remainder ``R = presence - sum(released footfall rows)``,
which is the number of people in the suppressed groups. If exactly one group is
suppressed, R *is* that group. The rule (secondary suppression):

* presence is released only if it is ``>= k_min``;
* for a cell-window whose presence is released, if ``0 < R < k_min``, suppress
  further released footfall groups, smallest first, until ``R >= k_min``. This always
  ends, because suppressing every group leaves ``R = presence >= k_min``.

After it, R is 0 (nothing suppressed: nothing to hide) or at least ``k_min``.
(1) is the only linear relation among released rows: OD flows count a different
measure and release no totals, footfall and presence are released at one H3
resolution (no parent/child sums), and daily ids do not link days. The audit
enforces those assumptions too. See docs/privacy.md.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contract.columns import count_if
from contract.vocabulary import PRIMARY, SECONDARY

CELL_WINDOW = ("date", "window_start", "h3_cell")
DEMOGRAPHICS = ("age_band", "gender")

FINDINGS_SCHEMA = T.StructType(
    [
        T.StructField("kind", T.StringType()),
        T.StructField("date", T.DateType()),
        T.StructField("window_start", T.TimestampType()),
        T.StructField("cell", T.StringType()),
        T.StructField("value", T.LongType()),
    ]
)


def mark_suppression(footfall_groups: DataFrame, presence_counts: DataFrame, *, k_min: int) -> DataFrame:
    """Add ``suppression`` to every footfall group: null (released), ``primary`` or ``secondary``.

    Args:
        footfall_groups: all groups ``date, window_start, h3_cell, age_band, gender, visitors``
            before any suppression.
        presence_counts: all cell-windows ``date, window_start, h3_cell, visitors`` before
            suppression (the presence that is released iff ``>= k_min``).
        k_min: least number of people per released row and per derivable remainder.

    Within each cell-window the groups that pass ``k_min`` are ordered by ascending
    visitors (ties by age band, gender) and a running sum gives, for each, how many
    people the earlier ones hold. A group is suppressed secondarily iff presence is
    released, ``0 < R0 < k_min`` (``R0`` = presence minus all groups passing k) and
    ``R0`` plus the earlier groups is still below ``k_min``: exactly the smallest
    prefix that lifts the remainder to ``k_min``. Window functions only.
    """
    k = F.lit(k_min)
    presence = presence_counts.select(*CELL_WINDOW, F.col("visitors").alias("_presence"))
    passes = F.col("visitors") >= k
    cw = Window.partitionBy(*CELL_WINDOW)
    ordered = cw.orderBy("visitors", *DEMOGRAPHICS).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    eligible_visitors = F.when(passes, F.col("visitors")).otherwise(F.lit(0))
    marked = (
        footfall_groups.join(presence, on=list(CELL_WINDOW), how="left")
        .withColumn("_r0", F.col("_presence") - F.sum(eligible_visitors).over(cw))
        .withColumn("_before", F.sum(eligible_visitors).over(ordered) - eligible_visitors)
    )
    secondary = (
        passes
        & (F.col("_presence") >= k)
        & (F.col("_r0") > 0)
        & (F.col("_r0") < k)
        & (F.col("_r0") + F.col("_before") < k)
    )
    return marked.withColumn(
        "suppression", F.when(~passes, F.lit(PRIMARY)).when(secondary, F.lit(SECONDARY))
    ).drop("_presence", "_r0", "_before")


def _finding(df: DataFrame, kind: str, *, cell: str | None, value: str) -> DataFrame:
    window = F.col("window_start") if "window_start" in df.columns else F.lit(None)
    return df.select(
        F.lit(kind).alias("kind"),
        F.col("date").cast("date").alias("date"),
        window.cast("timestamp").alias("window_start"),
        (F.col(cell) if cell else F.lit(None)).cast("string").alias("cell"),
        F.col(value).cast("long").alias("value"),
    )


def audit_release(footfall: DataFrame | None, presence: DataFrame | None, od_flows: DataFrame | None,
                  k_min: int) -> DataFrame:
    """Search released tables for small groups that are visible or derivable. Stable API.

    Args:
        footfall, presence, od_flows: frames in the ``insights/*`` contracts (DESIGN.md),
            any number of dates; ``None`` for a table that is not checked.
        k_min: the release threshold.

    Returns:
        A DataFrame ``kind, date, window_start, cell, value`` (:data:`FINDINGS_SCHEMA`),
        empty when the release is safe. Kinds:

        * ``below_k:<table>`` — a released row with ``value`` < k_min people (for
          od_flows ``cell`` is ``origin>destination``);
        * ``derivable_remainder`` — a released presence minus its cell-window's released
          footfall rows leaves ``0 < value < k_min`` people: a small group derivable by
          subtraction;
        * ``negative_remainder`` — released footfall rows sum to more than the released
          presence: the tables break relation (1), on which the rule relies;
        * ``multiple_resolutions:<table>`` — a date holds ``value`` > 1 H3 resolutions,
          which would create parent/child sums;
        * ``resolution_mismatch`` — footfall and presence of a date differ in resolution.

        Footfall rows whose cell-window has no released presence are *not* a finding:
        presence is then below k_min, and the only released relation involving those
        rows is their sum, which is ``>= k_min`` since every term is.
    """
    if footfall is None and presence is None and od_flows is None:
        raise ValueError("audit_release needs at least one table")
    k = F.lit(k_min)
    parts: list[DataFrame] = []
    tables = {"footfall": (footfall, "h3_cell", "visitors"), "presence": (presence, "h3_cell", "visitors"),
              "od_flows": (od_flows, "_od_cell", "trips")}
    for name, (df, cell, value) in tables.items():
        if df is None:
            continue
        if name == "od_flows":
            df = df.withColumn("_od_cell", F.concat_ws(">", "origin_h3", "destination_h3"))
        parts.append(_finding(df.filter(F.col(value) < k), f"below_k:{name}", cell=cell, value=value))
        resolutions = df.groupBy("date").agg(F.count_distinct("h3_resolution").alias("n"))
        parts.append(_finding(resolutions.filter(F.col("n") > 1), f"multiple_resolutions:{name}", cell=None,
                              value="n"))
    if footfall is not None and presence is not None:
        sums = footfall.groupBy(*CELL_WINDOW).agg(F.sum("visitors").alias("_released"))
        remainder = (
            presence.select(*CELL_WINDOW, "visitors")
            .join(sums, on=list(CELL_WINDOW), how="left")
            .select(*CELL_WINDOW, (F.col("visitors") - F.coalesce(F.col("_released"), F.lit(0))).alias("r"))
        )
        parts.append(_finding(remainder.filter((F.col("r") > 0) & (F.col("r") < k)), "derivable_remainder",
                              cell="h3_cell", value="r"))
        parts.append(_finding(remainder.filter(F.col("r") < 0), "negative_remainder", cell="h3_cell", value="r"))
        res_f = footfall.groupBy("date").agg(F.min("h3_resolution").alias("rf"), F.max("h3_resolution").alias("xf"))
        res_p = presence.groupBy("date").agg(F.min("h3_resolution").alias("rp"), F.max("h3_resolution").alias("xp"))
        mismatch = res_f.join(res_p, on="date", how="inner").filter(
            (F.col("rf") != F.col("rp")) | (F.col("xf") != F.col("xp")))
        parts.append(_finding(mismatch, "resolution_mismatch", cell=None, value="rp"))
    findings = parts[0]
    for part in parts[1:]:
        findings = findings.unionByName(part)
    return findings


def release_counts(marked: DataFrame, presence_counts: DataFrame, od_groups: DataFrame, *, k_min: int) -> DataFrame:
    """One row of group counts for the run summary: footfall groups by suppression mark, presence
    and OD groups below ``k_min`` (one Spark job over the small aggregates)."""
    k = F.lit(k_min)
    ff = marked.agg(
        F.count(F.lit(1)).alias("footfall_groups"),
        count_if(F.col("suppression").isNull()).alias("footfall_released"),
        count_if(F.col("suppression") == PRIMARY).alias("footfall_primary"),
        count_if(F.col("suppression") == SECONDARY).alias("footfall_secondary"),
    )
    pr = presence_counts.agg(F.count(F.lit(1)).alias("presence_groups"),
                             count_if(F.col("visitors") < k).alias("presence_below_k"))
    od = od_groups.agg(F.count(F.lit(1)).alias("od_groups"), count_if(F.col("trips") < k).alias("od_below_k"))
    return ff.crossJoin(pr).crossJoin(od)


def describe_findings(findings: DataFrame, *, limit: int = 3) -> str:
    """The first few findings as one line (at most ``limit`` rows reach the driver)."""
    first = findings.orderBy("kind", "date", "window_start", "cell").limit(limit).collect()
    return "; ".join(f"{r['kind']} {r['window_start']} {r['cell']} value={r['value']}" for r in first)
