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

RAW_TABLES: dict[str, T.StructType] = {
    "network_events": NETWORK_EVENTS,
    "subscribers": SUBSCRIBERS,
    "privacy_preferences": PRIVACY_PREFERENCES,
    "cells": CELLS,
}
