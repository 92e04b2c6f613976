"""Suite of ``insights/footfall`` (released): every row stands for at least ``k_min`` people."""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame

from expectations.common import (
    SuiteParams,
    digest_check,
    make_suite,
    no_identifier_columns,
    output_checks,
    output_expectations,
    release_checks,
    release_expectations,
    schema_expectations,
)

TABLE = "footfall"
COLUMNS = {"date": "date", "window_start": "timestamp", "h3_cell": "string", "h3_resolution": "int",
           "age_band": "string", "gender": "string", "visitors": "long"}
KEYS = ("date", "window_start", "h3_cell", "h3_resolution", "age_band", "gender", "visitors")
no_identifier_columns(COLUMNS)


def _checks(p: SuiteParams) -> dict:
    return {"h3": {"h3_cell": p.h3_resolution}, "window": "window_start"}


def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row: the output checks, the smallest group, the resolutions."""
    return df.agg(*output_checks(df, p, keys=KEYS, **_checks(p)),
                  *release_checks(p, count="visitors", resolution=p.h3_resolution), digest_check(df))


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        *output_expectations(p, **_checks(p)),
        *release_expectations(p, count="visitors", resolution=p.h3_resolution),
    ])
