"""How buyers and every report read a release: the insight tables of one date.

All readers of the release zone (the demo, the map and store reports, any export) go
through :func:`read_release`, so that what "the release of a date" means is decided
in one place.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mobility.config import LakeConfig
from mobility.io import is_delta_table, table_path

RELEASE_TABLES = ("footfall", "presence", "od_flows")


def read_release(spark: SparkSession, lake: LakeConfig, date: dt.date) -> dict[str, DataFrame]:
    """The released ``footfall``, ``presence`` and ``od_flows`` rows of ``date``.

    Raises FileNotFoundError naming the table when a table has never been published.
    """
    out = {}
    for table in RELEASE_TABLES:
        path = table_path(lake, table)
        if not is_delta_table(spark, path):
            raise FileNotFoundError(f"insights/{table} has not been published at {path}")
        out[table] = spark.read.format("delta").load(path).filter(F.col("date") == F.lit(date))
    return out
