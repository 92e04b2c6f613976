"""Disclosure control across released tables: suppression and the privacy audit.

Primary suppression (``visitors < k_min``) protects each row on its own. Rows can
also be combined: footfall splits each (date, window, cell) by age band and gender,
and presence releases the same cell-window's total over the *same* people counted
the *same* way (every person has exactly one age band and gender per day). So::

    presence = sum over (age_band, gender) of footfall                      (1)

and anyone can compute the remainder ``R = presence - sum(released footfall rows)``.

The rule (``remainder-guard-v1``): groups below ``k_min`` are suppressed (primary).
Let ``R0`` be what they hold together and ``m`` the number of demographic labels
(age bands x genders) the cell-window does not release. If ``0 < R0 < k_min`` (the
suppressed people would be a small group) or ``R0 = m*(k_min - 1)`` (every missing
label would have to hold exactly ``k_min - 1`` people), the cell-window's **whole
breakdown** is suppressed (``secondary``) and only its total may be released.
Presence is released iff it is at least ``k_min``.

Why this survives an attacker who knows the rule: where a breakdown is released, the
missing labels hold ``R0 >= k_min`` people, each fewer than ``k_min``, and not all at
the maximum, so each missing label is consistent with at least two values below
``k_min``; where it is suppressed, only the total is known, which many splits give.
The secondary choice never depends on which released group is smallest. The earlier
"smallest released sibling first" rule did, and could be inverted;
``tests/test_disclosure.py`` checks the property exhaustively over small cell-windows
for both rules.

(1) is the only linear relation among released rows: OD flows count a different
measure and release no totals, footfall and presence are released at one H3
resolution (no parent/child sums), and daily ids do not link days. The audit
enforces those assumptions too. Across *versions* of a date, ``mobility.release``
checks republishing. See docs/privacy.md.
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


def mark_suppression(footfall_groups: DataFrame, *, k_min: int, labels: int) -> DataFrame:
    """Add ``suppression`` to every footfall group: null (released), ``primary`` or ``secondary``.

    Args:
        footfall_groups: all groups ``date, window_start, h3_cell, age_band, gender, visitors``
            before any suppression (their sum per cell-window is its presence, relation (1)).
        k_min: least number of people per released row and per suppressed remainder.
        labels: how many (age band, gender) labels exist (public: the configured bands
            and ``unknown``, times the four genders).

    One window pass per cell-window; no ordering by value.
    """
    k = F.lit(k_min)
    small = F.col("visitors") < k
    cw = Window.partitionBy(*CELL_WINDOW)
    remainder = F.sum(F.when(small, F.col("visitors")).otherwise(F.lit(0))).over(cw)
    missing = F.lit(labels) - F.sum(F.when(small, F.lit(0)).otherwise(F.lit(1))).over(cw)
    whole = (remainder > 0) & ((remainder < k) | (remainder >= missing * F.lit(k_min - 1)))
    return footfall_groups.withColumn("suppression", F.when(small, F.lit(PRIMARY)).when(whole, F.lit(SECONDARY)))


def released_breakdown(sizes: list[int], k_min: int, labels: int) -> list[int] | None:
    """The rule on one cell-window in plain Python (the reference for tests and the exhaustive check).

    ``sizes`` are the sizes of the labels present (zeros are ignored). Returns the
    released sizes (in the order given), or None when the breakdown is suppressed.
    Presence (their sum) is released iff it is at least ``k_min``.
    """
    present = [s for s in sizes if s > 0]
    released = [s for s in present if s >= k_min]
    remainder = sum(present) - sum(released)
    missing = labels - len(released)
    if remainder > 0 and (remainder < k_min or remainder >= missing * (k_min - 1)):
        return None
    return released


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
                  k_min: int, *, labels: int | None = None) -> DataFrame:
    """Search released tables for small groups that are visible or derivable. Stable API.

    Args:
        footfall, presence, od_flows: frames in the ``insights/*`` contracts (DESIGN.md),
            any number of dates; ``None`` for a table that is not checked.
        k_min: the release threshold.
        labels: the number of (age band, gender) labels; enables the ``pinned_remainder`` check.

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
        * ``pinned_remainder`` — (with ``labels``) the remainder equals (missing labels) x
          (k_min - 1): every missing label would hold exactly k_min - 1 people;
        * ``footfall_without_presence`` — footfall rows of a cell-window whose presence is
          not released (impossible under the rule: their sum alone is at least k_min);
        * ``multiple_resolutions:<table>`` — a date holds ``value`` > 1 H3 resolutions,
          which would create parent/child sums;
        * ``resolution_mismatch`` — footfall and presence of a date differ in resolution.

    """
    if footfall is None and presence is None and od_flows is None:
        raise ValueError("audit_release needs at least one table")
    # Few shuffles (each is a Spark job of its own): one aggregation per table and date (its
    # resolutions), one of footfall per cell-window (sum and count) and one full outer join
    # with presence, from which every cell-window check is read.
    k = F.lit(k_min)
    parts: list[DataFrame] = []
    tables = {"footfall": (footfall, "h3_cell", "visitors"), "presence": (presence, "h3_cell", "visitors"),
              "od_flows": (od_flows, "_od_cell", "trips")}
    resolutions: dict[str, DataFrame] = {}
    for name, (df, cell, value) in tables.items():
        if df is None:
            continue
        if name == "od_flows":
            df = df.withColumn("_od_cell", F.concat_ws(">", "origin_h3", "destination_h3"))
        parts.append(_finding(df.filter(F.col(value) < k), f"below_k:{name}", cell=cell, value=value))
        # collect_set: the distinct resolutions in one aggregation (count_distinct adds a second shuffle)
        resolutions[name] = df.groupBy("date").agg(F.size(F.collect_set("h3_resolution")).alias("n"),
                                                   F.min("h3_resolution").alias("lo"),
                                                   F.max("h3_resolution").alias("hi"))
        parts.append(_finding(resolutions[name].filter(F.col("n") > 1), f"multiple_resolutions:{name}",
                              cell=None, value="n"))
    if footfall is not None and presence is not None:
        sums = footfall.groupBy(*CELL_WINDOW).agg(F.sum("visitors").alias("_released"),
                                                  F.count(F.lit(1)).alias("_n"))
        # Null keys match nothing, as in the left and anti joins this stands for.
        both = (presence.select(*CELL_WINDOW, "visitors", F.lit(True).alias("_presence"))
                .join(sums, on=list(CELL_WINDOW), how="full_outer"))
        in_presence = F.col("_presence").isNotNull()
        remainder = both.filter(in_presence).withColumn(
            "r", F.col("visitors") - F.coalesce(F.col("_released"), F.lit(0)))
        parts.append(_finding(remainder.filter((F.col("r") > 0) & (F.col("r") < k)), "derivable_remainder",
                              cell="h3_cell", value="r"))
        parts.append(_finding(remainder.filter(F.col("r") < 0), "negative_remainder", cell="h3_cell", value="r"))
        if labels is not None:  # every missing label pinned at k_min - 1 (cell-windows with footfall rows)
            pinned = remainder.filter(F.col("_n").isNotNull() & (F.col("r") > 0)
                                      & (F.col("r") >= (F.lit(labels) - F.col("_n")) * F.lit(k_min - 1)))
            parts.append(_finding(pinned, "pinned_remainder", cell="h3_cell", value="r"))
        orphans = both.filter(~in_presence)  # rows only the footfall side holds
        parts.append(_finding(orphans, "footfall_without_presence", cell="h3_cell", value="_released"))
        mismatch = (resolutions["footfall"].select("date", F.col("lo").alias("rf"), F.col("hi").alias("xf"))
                    .join(resolutions["presence"].select("date", F.col("lo").alias("rp"), F.col("hi").alias("xp")),
                          on="date", how="inner")
                    .filter((F.col("rf") != F.col("rp")) | (F.col("xf") != F.col("xp"))))
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
