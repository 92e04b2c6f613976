"""Explicit schemas of the raw lake (DESIGN.md, "Input lake") and the reader that enforces them.

Every job reads its inputs through :func:`read_raw`, which fails at the boundary with
a message naming the missing or mistyped column instead of letting Spark infer
something else and fail three stages later.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
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

EVENT_TYPES = ("voice", "sms", "data", "handover", "location_update")
IDENTIFIER_COLUMNS = ("msisdn", "imsi", "imei")


class InputError(RuntimeError):
    """An input table is missing or does not have the contracted schema."""


def check_schema(df: DataFrame, expected: T.StructType, table: str) -> None:
    """Raise :class:`InputError` naming the first missing or mistyped column."""
    actual = {f.name: f.dataType for f in df.schema.fields}
    for f in expected.fields:
        if f.name not in actual:
            raise InputError(f"{table}: missing column '{f.name}' ({f.dataType.simpleString()})")
        if actual[f.name] != f.dataType:
            raise InputError(
                f"{table}: column '{f.name}' is {actual[f.name].simpleString()}, "
                f"expected {f.dataType.simpleString()}"
            )


def raw_path(raw_root: str, table: str, date: str | None = None) -> str:
    """Path of a raw table, or of one date partition of ``network_events``."""
    base = f"{raw_root.rstrip('/')}/{table}"
    return f"{base}/event_date={date}" if date else base


def read_raw(spark: SparkSession, raw_root: str, table: str, date: str | None = None) -> DataFrame:
    """Read a raw table (or one event partition) and enforce its contracted schema.

    The files' own schema is checked first (so a mistyped column is named, not
    silently cast to null), then the frame is narrowed to the contracted columns.
    """
    path = raw_path(raw_root, table, date)
    try:
        df = spark.read.parquet(path)
    except Exception as exc:  # AnalysisException: path does not exist / no files
        what = f"partition event_date={date} of {table}" if date else f"table {table}"
        raise InputError(f"{what} not found at {path}") from exc
    expected = RAW_TABLES[table]
    check_schema(df, expected, table)
    return df.select(*[f.name for f in expected.fields])
