"""The naive build of the pipeline, for the benchmark only.

It is the pipeline written the way the design card's packages invite: one Python
call per event for every keyed hash (``hmac``/``hashlib``, for the stage-1 pseudonyms
and the daily ids of events and trips), h3-pyspark's ``geo_to_h3`` on every event's
coordinates (its own fix, or its radio cell's coordinates joined per event, at both
resolutions), and distinct counts over the 64-character ids themselves.

It is a :class:`transforms.kernels.Kernels` value (:data:`NAIVE`) passed to the same
jobs as the production kernels — no module is patched, and everything else (tagging,
caching, validation, trips, suppression, the outputs) is the pipeline's own code. So
the naive/pipeline ratio measures what the vectorized kernels are worth, and the
outputs must be identical (``benchmarks.check``).

Never use this outside ``benchmarks/``: the key travels inside the UDF closure.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mobility.secrets import Secret
from transforms.kernels import Kernels


@dataclass(frozen=True)
class UdfHmac:
    """HMAC-SHA256 hex of a string column, one Python call per row; the key rides in the closure."""

    secret: Secret

    @classmethod
    def for_secret(cls, spark: SparkSession, secret: Secret) -> UdfHmac:
        return cls(secret)

    def attach(self, df: DataFrame) -> DataFrame:
        return df  # nothing to join

    def detach(self, df: DataFrame) -> DataFrame:
        return df

    def hex(self, message: Column) -> Column:
        key = self.secret.value

        def _hmac(m: str | None) -> str | None:
            return None if m is None else hmac.new(key, m.encode("utf-8"), hashlib.sha256).hexdigest()

        return F.udf(_hmac, T.StringType())(message)


def _naive_h3(events: DataFrame, cells_h3: DataFrame, resolution: int, out: str) -> DataFrame:
    """``geo_to_h3`` per event on its fix, else on its radio cell's coordinates joined per event."""
    import h3_pyspark

    cells = cells_h3.select("cell_id", F.col("latitude").alias("_cell_lat"), F.col("longitude").alias("_cell_lng"))
    has_fix = F.col("latitude").isNotNull() & F.col("longitude").isNotNull()
    lat = F.when(has_fix, F.col("latitude")).otherwise(F.col("_cell_lat"))
    lng = F.when(has_fix, F.col("longitude")).otherwise(F.col("_cell_lng"))
    return (
        events.join(cells, on="cell_id", how="left")
        .withColumn(out, h3_pyspark.geo_to_h3(lat, lng, F.lit(resolution)))
        .drop("_cell_lat", "_cell_lng")
    )


def naive_locate(events: DataFrame, *, cells_h3: DataFrame, targets: dict[str, tuple[str, int]]) -> DataFrame:
    """``geo_to_h3`` per event and per target resolution (see :func:`transforms.stage2.locate`)."""
    for out, (_, resolution) in targets.items():
        events = _naive_h3(events, cells_h3, resolution, out)
    return events


def naive_distinct_people(id_col: str = "daily_id") -> Column:
    """Distinct count over the 64-character hex ids themselves."""
    return F.count_distinct(F.col(id_col))


NAIVE = Kernels(keyed_hash=UdfHmac.for_secret, locate=naive_locate, distinct_people=naive_distinct_people,
                count_people=naive_distinct_people)
