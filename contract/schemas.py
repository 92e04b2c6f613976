"""Explicit schemas of the raw lake (DESIGN.md, "Input lake").

``mobility.io.read_raw`` enforces them at the boundary, naming the missing or mistyped
column instead of letting Spark infer something else and fail three stages later.
"""

from __future__ import annotations

from pyspark.sql import types as T

NETWORK_EVENTS = T.StructType(
    [
        T.StructField("msisdn", T.StringType()),
        T.StructField("imsi", T.StringType()),
        T.StructField("imei", T.StringType()),
        T.StructField("event_ts", T.TimestampType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("cell_id", T.StringType()),
        T.StructField("latitude", T.DoubleType()),
        T.StructField("longitude", T.DoubleType()),
    ]
)

SUBSCRIBERS = T.StructType(
    [
        T.StructField("msisdn", T.StringType()),
        T.StructField("birth_date", T.DateType()),
        T.StructField("gender", T.StringType()),
        T.StructField("customer_type", T.StringType()),
    ]
)

PRIVACY_PREFERENCES = T.StructType(
    [
        T.StructField("msisdn", T.StringType()),
        T.StructField("analytics_opt_out", T.BooleanType()),
        T.StructField("location_offers_opt_in", T.BooleanType()),
        T.StructField("updated_at", T.TimestampType()),
    ]
)

CELLS = T.StructType(
    [
        T.StructField("cell_id", T.StringType()),
        T.StructField("latitude", T.DoubleType()),
        T.StructField("longitude", T.DoubleType()),
        T.StructField("radio", T.StringType()),
        T.StructField("valid_from", T.DateType()),
        T.StructField("valid_to", T.DateType()),
    ]
)

# Location-offer campaigns (issue 16, ``jobs.offers``): one row per campaign. The geofence is
# either a point with a radius (``fence_lat``, ``fence_lng``, ``radius_m``) or a set of H3
# cells at ``fence_h3_resolution`` (``fence_h3``), never both. The campaign runs on the dates
# ``start_date``..``end_date`` (inclusive; ``end_date`` null = open-ended), each day from
# ``daily_from`` to ``daily_to`` ("HH:MM", UTC like the events, end exclusive, "24:00" allowed).
# ``max_per_person_per_day``: offers per person and day for this campaign. Target lists null
# = everyone; otherwise released age-band labels (``25-34``) and genders (``female``).
CAMPAIGNS = T.StructType(
    [
        T.StructField("campaign_id", T.StringType()),
        T.StructField("merchant", T.StringType()),
        T.StructField("fence_lat", T.DoubleType()),
        T.StructField("fence_lng", T.DoubleType()),
        T.StructField("radius_m", T.DoubleType()),
        T.StructField("fence_h3", T.ArrayType(T.StringType())),
        T.StructField("fence_h3_resolution", T.IntegerType()),
        T.StructField("start_date", T.DateType()),
        T.StructField("end_date", T.DateType()),
        T.StructField("daily_from", T.StringType()),
        T.StructField("daily_to", T.StringType()),
        T.StructField("max_per_person_per_day", T.IntegerType()),
        T.StructField("target_age_bands", T.ArrayType(T.StringType())),
        T.StructField("target_genders", T.ArrayType(T.StringType())),
    ]
)

RAW_TABLES: dict[str, T.StructType] = {
    "network_events": NETWORK_EVENTS,
    "subscribers": SUBSCRIBERS,
    "privacy_preferences": PRIVACY_PREFERENCES,
    "cells": CELLS,
    "campaigns": CAMPAIGNS,
}
