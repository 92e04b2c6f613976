"""Suite of the raw ``subscribers`` CRM snapshot: unique MSISDNs, plausible birth dates, coded values.

Uniqueness and well-formedness are judged on the *canonical* MSISDN: ``+4917...`` and
``4917...`` are one subscriber listed twice (stage 1 would have to guess which row
holds), and a number that cannot be normalized matches no event (its share is bounded by
``quality.min_wellformed_msisdn_share``).
"""

from __future__ import annotations

import datetime as dt

import great_expectations as gx
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from contract.columns import canonical_msisdn, count_if
from contract.vocabulary import CUSTOMER_TYPES, GENDER_CODES
from expectations.common import (
    MAX_AGE_YEARS,
    SuiteParams,
    at_least,
    in_set,
    make_suite,
    none_bad,
    not_in_set,
    schema_expectations,
    share_if,
)

TABLE = "subscribers"
COLUMNS = {"msisdn": "string", "birth_date": "date", "gender": "string", "customer_type": "string"}


def profile(df: DataFrame, p: SuiteParams) -> DataFrame:
    """One row: duplicates, shares, codes outside their sets."""
    oldest = dt.date(p.date.year - MAX_AGE_YEARS, p.date.month, min(p.date.day, 28))
    implausible = F.col("birth_date").isNotNull() & ((F.col("birth_date") > F.lit(p.date))
                                                      | (F.col("birth_date") < F.lit(oldest)))
    canonical = canonical_msisdn(F.col("msisdn"))
    return df.agg(
        (F.count(canonical) - F.count_distinct(canonical)).alias("duplicate_msisdns"),
        count_if(F.col("msisdn").isNull()).alias("null_msisdns"),
        share_if(canonical.isNotNull()).alias("wellformed_msisdn_share"),
        share_if(~implausible).alias("plausible_birth_date_share"),
        not_in_set("gender", tuple(GENDER_CODES), allow_null=True),
        not_in_set("customer_type", CUSTOMER_TYPES),
    )


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        none_bad("duplicate_msisdns", "subscribers are unique by canonical MSISDN (after removing blanks, '+', '00')"),
        none_bad("null_msisdns", "no subscriber without MSISDN"),
        at_least("wellformed_msisdn_share", p.min_wellformed_msisdn_share,
                 "share of well-formed MSISDNs >= quality.min_wellformed_msisdn_share"),
        at_least("plausible_birth_date_share", 1.0 - p.max_quarantine_share,
                 f"birth dates not in the future nor more than {MAX_AGE_YEARS} years back "
                 "(share >= 1 - quality.max_quarantine_share)"),
        in_set("gender", tuple(GENDER_CODES), "gender is F, M, D or null"),
        in_set("customer_type", CUSTOMER_TYPES, "customer_type is consumer or business"),
    ])
