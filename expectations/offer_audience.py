"""Suite of ``curated/offer_audience`` (restricted zone): who is to be sent a location offer.

This table holds MSISDNs *by design* (an offer has to be delivered), so unlike every
other output it is not scanned for identifier-shaped values in ``msisdn`` (only in
``campaign_id``) and is never released. What it must prove instead is consent: given
the ``privacy_preferences`` change log (``consent=``, MSISDNs canonical), every row's
subscriber must have had a location-offers opt-in in force at ``notify_at`` — the
latest record with ``updated_at <= notify_at`` is an opt-in (a tie counts as no). The
check is independent of how ``transforms.offers`` decided it (a range join here, a
window there), and without the consent frame the suite refuses to run.
"""

from __future__ import annotations

import great_expectations as gx
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from contract.columns import count_if
from contract.vocabulary import MSISDN_PATTERN
from expectations.common import (
    SuiteParams,
    any_null,
    at_least,
    exactly,
    identifier_shaped,
    make_suite,
    none_bad,
    on_date,
    schema_expectations,
)

TABLE = "offer_audience"
COLUMNS = {"date": "date", "campaign_id": "string", "msisdn": "string", "notify_at": "timestamp"}
KEYS = ("date", "campaign_id", "msisdn", "notify_at")


def rows_without_consent(df: DataFrame, consent: DataFrame) -> DataFrame:
    """Audience rows whose subscriber had no location-offers opt-in in force at ``notify_at``."""
    rows = df.select("campaign_id", "msisdn", "notify_at").withColumn("_row", F.monotonically_increasing_id())
    prefs = consent.select(F.col("msisdn").alias("_p_msisdn"), "updated_at",
                           F.coalesce(F.col("location_offers_opt_in"), F.lit(False)).alias("_opt_in"))
    joined = rows.join(prefs, on=(F.col("msisdn") == F.col("_p_msisdn")) & (F.col("updated_at") <= F.col("notify_at")),
                       how="left")
    # Latest record first; among records of the same instant, a "no" outranks a "yes".
    latest = joined.groupBy("_row").agg(F.max(F.struct(F.col("updated_at"), (~F.col("_opt_in")).alias("no")))
                                         .alias("p"))
    return latest.filter(F.col("p.updated_at").isNull() | F.col("p.no"))


def profile(df: DataFrame, p: SuiteParams, consent: DataFrame | None = None) -> DataFrame:
    """One row: rows, off-date rows, null keys, malformed numbers, duplicates, rows without consent."""
    if consent is None:
        raise ValueError("the offer_audience suite needs the consent log (consent=...) to check every row")
    checks = df.agg(
        F.count(F.lit(1)).alias("rows"),
        count_if(F.col("date") != F.lit(p.date)).alias("rows_off_date"),
        count_if(any_null(*KEYS)).alias("null_key_rows"),
        count_if(~F.coalesce(F.col("msisdn").rlike(MSISDN_PATTERN), F.lit(False))).alias("malformed_msisdn"),
        count_if(~on_date("notify_at", p.date)).alias("notify_at_off_date"),
        count_if(identifier_shaped("campaign_id")).alias("identifier_shaped_values"),
        (F.count(F.lit(1)) - F.count_distinct(*KEYS)).alias("duplicate_rows"),
    )
    missing = rows_without_consent(df, consent).agg(F.count(F.lit(1)).alias("rows_without_consent"))
    return checks.crossJoin(missing)


def build_suite(p: SuiteParams) -> gx.ExpectationSuite:
    rows = (exactly("rows", p.expected_rows, "row count reconciles with the run summary")
            if p.expected_rows is not None else at_least("rows", 0, "rows audited"))
    return make_suite(TABLE, [
        *schema_expectations(COLUMNS),
        none_bad("rows_off_date", f"every row is dated {p.date.isoformat()}"),
        none_bad("null_key_rows", "no nulls in key columns"),
        none_bad("malformed_msisdn", "msisdn is a canonical MSISDN (E.164 digits)"),
        none_bad("notify_at_off_date", "notify_at falls on the date"),
        none_bad("identifier_shaped_values", "no MSISDN/IMSI/IMEI-shaped value in campaign_id"),
        none_bad("duplicate_rows", "one row per campaign, subscriber and notification time"),
        none_bad("rows_without_consent", "every subscriber had a location-offers opt-in in force at notify_at"),
        rows,
    ])
