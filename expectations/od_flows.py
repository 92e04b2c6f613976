"""Suite of ``insights/od_flows`` (released): every flow stands for at least ``k_min`` trips' people."""

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

TABLE = "od_flows"
COLUMNS = {"date": "date", "window_start": "timestamp", "origin_h3": "string", "destination_h3": "string",
           "h3_resolution": "int", "age_band": "string", "gender": "string", "trips": "long"}
KEYS = ("date", "window_start", "origin_h3", "destination_h3", "h3_resolution", "age_band", "gender", "trips")
no_identifier_columns(COLUMNS)


def _checks(p: SuiteParams) -> dict:
    res = p.od_h3_resolution
    return {"h3": {"origin_h3": res, "destination_h3": res}, "window": "window_start"}


def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row: the output checks, the smallest flow, the resolutions."""
    return df.agg(*output_checks(df, p, keys=KEYS, **_checks(p)),
                  *release_checks(p, count="trips", resolution=p.od_h3_resolution), digest_check(df))


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        *output_expectations(p, **_checks(p)),
        *release_expectations(p, count="trips", resolution=p.od_h3_resolution, resolution_name="OD resolution"),
    ])
