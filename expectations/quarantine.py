"""Suite of ``curated/quarantine``: a reason for every row, and no back door for identifiers."""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame

from contract.vocabulary import QUARANTINE_SOURCES, REASONS
from expectations.common import (
    SuiteParams,
    in_set,
    make_suite,
    no_identifier_columns,
    not_in_set,
    output_checks,
    output_expectations,
    schema_expectations,
)

TABLE = "quarantine"
COLUMNS = {"date": "date", "source": "string", "reason": "string", "record": "string"}
KEYS = ("date", "source", "reason", "record")
no_identifier_columns(COLUMNS)


def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row: the output checks (the JSON record is searched for identifier shapes), unknown sources/reasons."""
    return df.agg(*output_checks(df, p, keys=KEYS, demographics=False), not_in_set("source", QUARANTINE_SOURCES),
                  not_in_set("reason", REASONS))


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        *output_expectations(p, demographics=False),
        in_set("source", QUARANTINE_SOURCES, "source names an input table"),
        in_set("reason", REASONS, "reason is one of stage 1's quarantine reasons"),
    ])
