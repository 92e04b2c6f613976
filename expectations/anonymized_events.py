"""Suite of ``curated/anonymized_events`` (stage 2 output): daily ids, H3 cells, windows."""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame

from expectations.common import (
    SuiteParams,
    make_suite,
    no_identifier_columns,
    output_checks,
    output_expectations,
    schema_expectations,
)

TABLE = "anonymized_events"
COLUMNS = {"date": "date", "daily_id": "string", "window_start": "timestamp", "h3_cell": "string",
           "age_band": "string", "gender": "string"}
KEYS = ("date", "daily_id", "window_start", "h3_cell")
no_identifier_columns(COLUMNS)


def _checks(p: SuiteParams) -> dict:
    return {"hex_ids": ("daily_id",), "h3": {"h3_cell": p.h3_resolution}, "window": "window_start"}


def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row: the output checks."""
    return df.agg(*output_checks(df, p, keys=KEYS, **_checks(p)))


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [*schema_expectations(COLUMNS), *output_expectations(p, **_checks(p))])
