"""Suite of ``curated/pseudonymized_events`` (stage 1 output): no identifier survives, pseudonyms are HMACs."""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame

from contract.columns import count_if
from contract.vocabulary import EVENT_TYPES
from expectations.common import (
    SuiteParams,
    in_set,
    make_suite,
    no_identifier_columns,
    none_bad,
    not_in_set,
    on_date,
    output_checks,
    output_expectations,
    schema_expectations,
)

TABLE = "pseudonymized_events"
COLUMNS = {"date": "date", "pseudo_id": "string", "event_ts": "timestamp", "event_type": "string",
           "cell_id": "string", "latitude": "double", "longitude": "double", "age_band": "string",
           "gender": "string"}
KEYS = ("date", "pseudo_id", "event_ts", "event_type", "cell_id")
no_identifier_columns(COLUMNS)

def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row: the output checks, events off the date, unknown event types."""
    return df.agg(*output_checks(df, p, keys=KEYS, hex_ids=("pseudo_id",), vocabularies={"event_type": EVENT_TYPES}),
                  count_if(~on_date("event_ts", p.date)).alias("event_ts_off_date"),
                  not_in_set("event_type", EVENT_TYPES))

def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        *output_expectations(p, hex_ids=("pseudo_id",)),
        none_bad("event_ts_off_date", "event_ts falls on the date"),
        in_set("event_type", EVENT_TYPES, "event_type is in the set"),
    ])
