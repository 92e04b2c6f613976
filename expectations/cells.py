"""Suite of the raw ``cells`` reference: validity ranges that do not overlap per cell, sane coordinates."""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from contract.columns import count_if
from expectations.common import (
    SuiteParams,
    at_least,
    make_suite,
    none_bad,
    schema_expectations,
)

TABLE = "cells"
COLUMNS = {"cell_id": "string", "latitude": "double", "longitude": "double", "radio": "string",
           "valid_from": "date", "valid_to": "date"}


def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row. Ranges are half-open ``[valid_from, valid_to)``; a record overlaps when it
    starts before the previous record of the same cell (by ``valid_from``) has ended."""
    w = Window.partitionBy("cell_id").orderBy(F.col("valid_from").asc_nulls_first(), F.col("valid_to"))
    prev_to = F.lag("valid_to").over(w)
    prev_exists = F.lag(F.lit(1)).over(w).isNotNull()
    flagged = df.withColumn(
        "_overlaps", prev_exists & (prev_to.isNull() | (prev_to > F.col("valid_from")))
    )
    bad_coords = (F.col("latitude").isNotNull() & (F.abs("latitude") > 90)) | (
        F.col("longitude").isNotNull() & (F.abs("longitude") > 180))
    return flagged.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct(F.when(F.col("_overlaps"), F.col("cell_id"))).alias("cells_with_overlapping_validity"),
        count_if(F.col("cell_id").isNull() | F.col("valid_from").isNull()).alias("null_key_rows"),
        count_if(F.col("valid_to") <= F.col("valid_from")).alias("empty_validity_ranges"),
        count_if(bad_coords).alias("coordinates_out_of_range"),
    )


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        at_least("rows", 1, "the cell plan is not empty"),
        none_bad("cells_with_overlapping_validity", "validity ranges do not overlap per cell"),
        none_bad("null_key_rows", "every record has cell_id and valid_from"),
        none_bad("empty_validity_ranges", "valid_to is after valid_from"),
        none_bad("coordinates_out_of_range", "latitude within +-90, longitude within +-180"),
    ])
