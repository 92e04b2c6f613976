"""Suite of the raw ``network_events`` partition (input gate of stage 1).

Shares, not absolutes: a few bad rows are normal and go to the quarantine; too many
mean a broken feed, and the run must stop before anything is written.
"""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame
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


def profile(df: DataFrame, p: SuiteParams, *, known_cells: DataFrame) -> DataFrame:
    """One row: row count and the share of rows passing each check (one scan, broadcast cell ids)."""
    known = F.broadcast(known_cells.select("cell_id").distinct().withColumn("_known", F.lit(True)))
    rows = df.select("msisdn", "event_ts", "event_type", "cell_id").join(known, on="cell_id", how="left")
    wellformed = canonical_msisdn(F.col("msisdn")).isNotNull()  # normalizable: '+49 ...', '0049...' are fine
    in_date = on_date("event_ts", p.date)
    cell_known = F.coalesce(F.col("_known"), F.lit(False))
    typed = F.coalesce(F.col("event_type").isin(*EVENT_TYPES), F.lit(False))
    return rows.agg(
        F.count(F.lit(1)).alias("rows"),
        share_if(wellformed).alias("wellformed_msisdn_share"),
        share_if(in_date).alias("event_ts_on_date_share"),
        share_if(cell_known).alias("known_cell_share"),
        share_if(typed).alias("known_event_type_share"),
        share_if(wellformed & in_date & cell_known & typed).alias("processable_share"),
    )


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
