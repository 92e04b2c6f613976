"""Suite of ``insights/offer_report`` (released to merchants): counts of at least ``k_min`` people, no identifier."""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from expectations.common import (
    SuiteParams,
    at_least,
    digest_check,
    make_suite,
    no_identifier_columns,
    output_checks,
    output_expectations,
    schema_expectations,
)

TABLE = "offer_report"
COLUMNS = {"date": "date", "campaign_id": "string", "window_start": "timestamp", "age_band": "string",
           "gender": "string", "notified": "long"}
KEYS = ("date", "campaign_id", "window_start", "age_band", "gender", "notified")
no_identifier_columns(COLUMNS)


def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row: the output checks (every string column scanned for identifiers) and the smallest group."""
    # An empty report has no group below k: its minimum counts as k_min, not as a failing null.
    return df.agg(*output_checks(df, p, keys=KEYS, window="window_start"),
                  F.coalesce(F.min("notified"), F.lit(p.k_min)).alias("min_notified"), digest_check(df))


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        *output_expectations(p, window="window_start"),
        at_least("min_notified", p.k_min, f"notified >= privacy.k_min ({p.k_min}) in every row"),
    ])
