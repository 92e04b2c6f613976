"""Keyed hashing (HMAC-SHA256) from Spark built-ins, with the key kept out of every plan.

Spark has no ``hmac`` function, but HMAC is two SHA-256 passes over binary
concatenations (RFC 2104)::

    HMAC(K, m) = SHA256((K' xor opad) || SHA256((K' xor ipad) || m))

where K' is the key zero-padded to the 64-byte block (hashed first if longer).
``sha2`` takes binary input, so this is built-ins only — no per-row Python.

The padded keys are *not* literals: a literal would print in ``explain()``, the SQL
tab and the event log. They travel in a one-row key frame that is broadcast and
cross-joined, so plans only ever show the column names ``_k_ipad``/``_k_opad``.

Transforms take a :class:`KeyedHash` (attach the key, hash columns, detach the key)
instead of calling these functions directly, so that another implementation (the
benchmark's per-row UDF) runs through the same stage code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mobility.secrets import Secret

BLOCK = 64
IPAD_COL, OPAD_COL = "_k_ipad", "_k_opad"
KEY_SCHEMA = T.StructType([T.StructField(IPAD_COL, T.BinaryType()), T.StructField(OPAD_COL, T.BinaryType())])


class KeyedHash(Protocol):
    """A keyed hash of string columns: ``attach`` the key, ``hex(col)`` per row, ``detach`` before writing."""

    def attach(self, df: DataFrame) -> DataFrame: ...

    def hex(self, message: Column) -> Column: ...

    def detach(self, df: DataFrame) -> DataFrame: ...


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """The two padded keys of RFC 2104."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\x00")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def key_frame(spark: SparkSession, secret: Secret) -> DataFrame:
    """A one-row frame holding the padded key; join it with :func:`with_key`."""
    ipad, opad = hmac_pads(secret.value)
    return spark.createDataFrame([(bytearray(ipad), bytearray(opad))], schema=KEY_SCHEMA)


def with_key(df: DataFrame, *, keys: DataFrame) -> DataFrame:
    """Attach the key columns to every row (a broadcast of one row; no shuffle)."""
    return df.crossJoin(F.broadcast(keys))


def without_key(df: DataFrame) -> DataFrame:
    """Drop the key columns again before anything is written."""
    return df.drop(IPAD_COL, OPAD_COL)


def hmac_sha256_hex(message: Column) -> Column:
    """Lowercase-hex HMAC-SHA256 of a string column, keyed by the attached key columns.

    Null in, null out. Requires :func:`with_key` to have been applied to the frame.
    """
    inner = F.unhex(F.sha2(F.concat(F.col(IPAD_COL), F.encode(message, "UTF-8")), 256))
    return F.sha2(F.concat(F.col(OPAD_COL), inner), 256)


@dataclass(frozen=True)
class BroadcastHmac:
    """HMAC-SHA256 from built-ins, the key in a broadcast one-row frame (the production kernel)."""

    keys: DataFrame

    @classmethod
    def for_secret(cls, spark: SparkSession, secret: Secret) -> BroadcastHmac:
        return cls(key_frame(spark, secret))

    def attach(self, df: DataFrame) -> DataFrame:
        return with_key(df, keys=self.keys)

    def hex(self, message: Column) -> Column:
        return hmac_sha256_hex(message)

    def detach(self, df: DataFrame) -> DataFrame:
        return without_key(df)
