"""Suite of ``curated/opt_outs``: the opted-out set stage 1 honoured, as well-formed pseudonyms only."""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from expectations.common import (
    SuiteParams,
    make_suite,
    no_identifier_columns,
    none_bad,
    output_checks,
    output_expectations,
    schema_expectations,
)

TABLE = "opt_outs"
COLUMNS = {"date": "date", "pseudo_id": "string", "taken_at": "timestamp"}
KEYS = ("date", "pseudo_id", "taken_at")
no_identifier_columns(COLUMNS)


def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row: the output checks, and pseudonyms listed twice."""
    return df.agg(*output_checks(df, p, keys=KEYS, hex_ids=("pseudo_id",), demographics=False),
                  (F.count(F.lit(1)) - F.count_distinct("pseudo_id")).alias("duplicate_pseudo_ids"))


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        *output_expectations(p, hex_ids=("pseudo_id",), demographics=False),
        none_bad("duplicate_pseudo_ids", "each opted-out pseudonym is listed once"),
    ])
