"""Suite of the raw ``network_events`` partition (input gate of stage 1).

Shares, not absolutes: a few bad rows are normal and go to the quarantine; too many
mean a broken feed, and the run must stop before anything is written.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Callable, Iterable, Mapping

import great_expectations as gx
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contract.columns import canonical_msisdn
from contract.vocabulary import EVENT_TYPES
from expectations.common import (
    SuiteParams,
    at_least,
    make_suite,
    on_date,
    schema_expectations,
    share_if,
)

TABLE = "network_events"
COLUMNS = {"msisdn": "string", "imsi": "string", "imei": "string", "event_ts": "timestamp",
           "event_type": "string", "cell_id": "string", "latitude": "double", "longitude": "double"}


# The suite's checks of one row, by name; a row passing all of them is processable.
CHECKS = ("wellformed_msisdn", "event_ts_on_date", "known_cell", "known_event_type")


def row_checks(date: dt.date, *, canonical: Column, cell_known: Column) -> dict[str, Column]:
    """The suite's checks of one raw row, as boolean columns (never null) named as in :data:`CHECKS`.

    ``canonical`` is the row's canonical MSISDN (:func:`contract.columns.canonical_msisdn`,
    null when it cannot be normalized: '+49 ...', '0049...' are fine), ``cell_known``
    whether its cell is valid on the date (null counts as not known). Stage 1 computes
    them in the pass that tags every event (:func:`profile_of_counts`); :func:`profile`
    on the raw partition alone.
    """
    return {
        "wellformed_msisdn": canonical.isNotNull(),
        "event_ts_on_date": on_date("event_ts", date),
        "known_cell": F.coalesce(cell_known, F.lit(False)),
        "known_event_type": F.coalesce(F.col("event_type").isin(*EVENT_TYPES), F.lit(False)),
    }


def profile(df: DataFrame, p: SuiteParams, *, known_cells: DataFrame) -> DataFrame:
    """One row: row count and the share of rows passing each check (one scan, broadcast cell ids)."""
    known = F.broadcast(known_cells.select("cell_id").distinct().withColumn("_known", F.lit(True)))
    rows = df.select("msisdn", "event_ts", "event_type", "cell_id").join(known, on="cell_id", how="left")
    checks = row_checks(p.date, canonical=canonical_msisdn(F.col("msisdn")), cell_known=F.col("_known"))
    return rows.agg(
        F.count(F.lit(1)).alias("rows"),
        *[share_if(check).alias(f"{name}_share") for name, check in checks.items()],
        share_if(functools.reduce(operator.and_, checks.values())).alias("processable_share"),
    )


def profile_of_counts(counts: Iterable[tuple[Mapping[str, bool], int]]) -> pd.DataFrame:
    """:func:`profile`'s row, from the number of rows per outcome of the checks (``({check: passed}, rows)``).

    Stage 1 counts its tagged events by these outcomes while its one pass over them runs
    (``jobs.pseudonymize.tally_metrics``), so the input gate costs no scan of its own.
    """
    counts = [(dict(outcome), n) for outcome, n in counts]
    wrong = next((sorted(outcome) for outcome, _ in counts if set(outcome) != set(CHECKS)), None)
    if wrong is not None:
        raise ValueError(f"an outcome must name exactly the checks {CHECKS}, not {wrong}")
    rows = sum(n for _, n in counts)

    def share(passed: Callable[[Mapping[str, bool]], bool]) -> float:
        return sum(n for outcome, n in counts if passed(outcome)) / rows if rows else 1.0  # as share_if

    return pd.DataFrame([{
        "rows": rows,
        **{f"{name}_share": share(lambda o, name=name: bool(o[name])) for name in CHECKS},
        "processable_share": share(lambda o: all(o[name] for name in CHECKS)),
    }])


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    ok = 1.0 - p.max_quarantine_share
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        at_least("rows", 1, "the partition is not empty"),
        at_least("wellformed_msisdn_share", p.min_wellformed_msisdn_share,
                 "share of well-formed MSISDNs >= quality.min_wellformed_msisdn_share"),
        at_least("known_cell_share", p.min_known_cell_share,
                 "share of events whose cell is known on the date >= quality.min_known_cell_share"),
        at_least("event_ts_on_date_share", ok, "share of event_ts on the partition date >= 1 - max_quarantine_share"),
        at_least("known_event_type_share", ok, "share of event types in the set >= 1 - max_quarantine_share"),
        at_least("processable_share", ok,
                 "share of rows passing every check >= 1 - quality.max_quarantine_share"),
    ])
