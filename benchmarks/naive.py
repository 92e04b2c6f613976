"""The naive build of the pipeline, for the benchmark only.

It is the pipeline written the way the design card's packages invite: one Python
call per event for every keyed hash (``hmac``/``hashlib``, for the stage-1 pseudonyms
and the daily ids of events and trips), h3-pyspark's ``geo_to_h3`` on every event's
coordinates (its own fix, or its radio cell's coordinates joined per event, at both
resolutions), and distinct counts over the 64-character ids themselves.

Rather than a copy of the jobs that would drift from them, :func:`naive_kernels`
swaps exactly those kernels into the pipeline's modules while the naive run lasts;
everything else (tagging, caching, validation, trips, suppression, the outputs) is
the pipeline's own code. So the naive/pipeline ratio measures what the vectorized
kernels are worth, and the outputs must be identical (``benchmarks.check``).

Never use this outside ``benchmarks/``: the keys travel inside the UDF closures.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
from collections.abc import Iterator

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mobility.secrets import Secret

_current_key: list[bytes] = []


def naive_key_frame(spark, secret: Secret) -> Secret:
    """Instead of a broadcast key frame: remember the key for the UDFs built next."""
    _current_key[:] = [secret.value]
    return secret


def naive_with_key(df: DataFrame, *, keys: Secret) -> DataFrame:
    """Nothing to join: the key rides in the UDF closure."""
    _current_key[:] = [keys.value]
    return df


def naive_hmac_sha256_hex(message: Column) -> Column:
    """HMAC-SHA256 hex of a string column, one Python call per row."""
    key = _current_key[0]

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


# (module, attribute, replacement): every place the pipeline's kernels are looked up.
PATCHES = (
    ("transforms.stage1", "hmac_sha256_hex", naive_hmac_sha256_hex),
    ("transforms.stage2", "hmac_sha256_hex", naive_hmac_sha256_hex),
    ("transforms.flows", "hmac_sha256_hex", naive_hmac_sha256_hex),
    ("jobs.pseudonymize", "key_frame", naive_key_frame),
    ("jobs.pseudonymize", "with_key", naive_with_key),
    ("jobs.anonymize", "key_frame", naive_key_frame),
    ("jobs.anonymize", "with_key", naive_with_key),
    ("transforms.stage2", "with_key", naive_with_key),
    ("jobs.anonymize", "locate", naive_locate),
    ("transforms.stage3", "distinct_people", naive_distinct_people),
    ("transforms.flows", "distinct_people", naive_distinct_people),
)


@contextlib.contextmanager
def naive_kernels() -> Iterator[None]:
    """Swap the naive kernels into the pipeline's modules; fail loudly if one is gone."""
    saved = []
    try:
        for module, attr, repl in PATCHES:
            mod = importlib.import_module(module)
            if not hasattr(mod, attr):
                raise RuntimeError(f"benchmarks.naive: {module}.{attr} no longer exists; update PATCHES")
            saved.append((mod, attr, getattr(mod, attr)))
            setattr(mod, attr, repl)
        yield
    finally:
        for mod, attr, original in reversed(saved):
            setattr(mod, attr, original)
