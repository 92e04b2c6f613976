"""Suite of ``curated/erasure_log``: what an erasure removed, per table, and never whom."""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from contract.columns import count_if
from contract.vocabulary import ERASED_TABLES
from expectations.common import (
    SuiteParams,
    in_set,
    make_suite,
    no_identifier_columns,
    none_bad,
    not_in_set,
    output_checks,
    output_expectations,
    schema_expectations,
)

TABLE = "erasure_log"
COLUMNS = {"date": "date", "erasure_id": "string", "erased_at": "timestamp", "people": "long",
           "table_name": "string", "rows_removed": "long", "files_removed": "long"}
KEYS = ("date", "erasure_id", "erased_at", "people", "table_name", "rows_removed", "files_removed")
no_identifier_columns(COLUMNS)


def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row: the output checks, negative counts, unknown tables."""
    negative = (F.col("people") < 1) | (F.col("rows_removed") < 0) | (F.col("files_removed") < 0)
    return df.agg(*output_checks(df, p, keys=KEYS, hex_ids=("erasure_id",), demographics=False),
                  count_if(negative).alias("impossible_counts"), not_in_set("table_name", ERASED_TABLES))


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        *output_expectations(p, hex_ids=("erasure_id",), demographics=False),
        none_bad("impossible_counts", "at least one person, no negative row or file count"),
        in_set("table_name", ERASED_TABLES, "table_name is an erased curated table"),
    ])
