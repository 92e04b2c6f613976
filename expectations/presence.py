"""Suite of ``insights/presence`` (released): no demographic split, ``k_min`` visitors, positive estimates."""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from contract.columns import count_if
from expectations.common import (
    SuiteParams,
    digest_check,
    make_suite,
    no_identifier_columns,
    none_bad,
    output_checks,
    output_expectations,
    release_checks,
    release_expectations,
    schema_expectations,
)

TABLE = "presence"
COLUMNS = {"date": "date", "window_start": "timestamp", "h3_cell": "string", "h3_resolution": "int",
           "visitors": "long", "population_estimate": "double"}
KEYS = ("date", "window_start", "h3_cell", "h3_resolution", "visitors", "population_estimate")
no_identifier_columns(COLUMNS)


def _checks(p: SuiteParams) -> dict:
    return {"h3": {"h3_cell": p.h3_resolution}, "window": "window_start"}


def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row: the output checks, the smallest group, non-positive estimates, the resolutions."""
    return df.agg(*output_checks(df, p, keys=KEYS, demographics=False, **_checks(p)),
                  *release_checks(p, count="visitors", resolution=p.h3_resolution),
                  count_if(~(F.col("population_estimate") > 0)).alias("non_positive_estimates"), digest_check(df))


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        *output_expectations(p, demographics=False, **_checks(p)),
        *release_expectations(p, count="visitors", resolution=p.h3_resolution),
        none_bad("non_positive_estimates", "population_estimate is positive"),
    ])
