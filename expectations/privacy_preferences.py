"""Suite of the raw ``privacy_preferences`` change log: exactly one preference in force per subscriber.

Two records of one subscriber with the same latest ``updated_at`` would make the
preference in force a coin toss (an opt-out could be ignored), so that is an error.
Subscribers are compared by *canonical* MSISDN, and a record whose MSISDN cannot be
normalized fails the gate: it cannot be attributed, and an opt-out is never dropped
silently.
"""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from contract.columns import canonical_msisdn, count_if
from expectations.common import (
    SuiteParams,
    any_null,
    make_suite,
    none_bad,
    schema_expectations,
)

TABLE = "privacy_preferences"
COLUMNS = {"msisdn": "string", "analytics_opt_out": "boolean", "location_offers_opt_in": "boolean",
           "updated_at": "timestamp"}


def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row: null keys, and subscribers whose latest record (as of the run) is not unique."""
    nulls = df.agg(count_if(any_null("msisdn", "updated_at", "analytics_opt_out")).alias("null_key_rows"),
                   count_if(F.col("msisdn").isNotNull() & canonical_msisdn(F.col("msisdn")).isNull())
                   .alias("unnormalizable_msisdns"),
                   F.count(F.lit(1)).alias("rows"))
    current = (df.withColumn("msisdn", canonical_msisdn(F.col("msisdn")))
               .filter(F.col("msisdn").isNotNull() & F.col("updated_at").isNotNull()))
    if p.as_of is not None:
        current = current.filter(F.col("updated_at") <= F.lit(p.as_of))
    per_ts = current.groupBy("msisdn", "updated_at").agg(F.count(F.lit(1)).alias("n"))
    latest = per_ts.groupBy("msisdn").agg(F.max_by("n", "updated_at").alias("n_latest"))
    ambiguous = latest.agg(count_if(F.col("n_latest") > 1).alias("ambiguous_latest_preferences"))
    return nulls.crossJoin(ambiguous)


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        none_bad("null_key_rows", "no record without msisdn, updated_at or analytics_opt_out"),
        none_bad("unnormalizable_msisdns", "every MSISDN can be normalized to E.164 digits (an opt-out is never "
                 "dropped silently)"),
        none_bad("ambiguous_latest_preferences", "one latest preference per subscriber (no tie on updated_at)"),
    ])
