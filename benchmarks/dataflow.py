"""The ``dataflow`` benchmark variant: the least the contract's data flow costs, with none of its rules.

DESIGN.md makes the pipeline three jobs that hand their data on through Delta tables:
stage 1 writes every kept event again with a 64-character pseudonym, stage 2 reads
that back and groups it by person (one row per person, window and cell), stage 3
reads those rows and counts them per group. ``floor`` (read the raw events, write
them as Delta) is one hop of that; this variant is all of them, in their plainest
form:

1. read the raw partition; write every event with ``sha2(msisdn, 256)`` (one hash, where
   the pipeline's HMAC takes two) in place of the three raw identifiers;
2. read that table; one shuffle by the hash: a row per hash, hour and cell; write it;
3. read that table; count rows per hour and cell; write the counts.

No joins, no quarantine, no opt-outs, no trips, no suites, no ledger, no
suppression, one Delta commit per table. What the pipeline takes beyond this is the
cost of its rules; what this takes beyond ``floor`` is the cost of the contract's
data flow, which no implementation of the contract avoids.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from mobility.io import read_raw


def dataflow(spark: SparkSession, raw_root: str, out: Path, date: str) -> None:
    """Run the three hops of the contract's data flow for ``date`` into ``out``."""
    stage1, stage2, stage3 = (str(out / name) for name in ("stage1_events", "stage2_rows", "stage3_counts"))
    events = read_raw(spark, raw_root, "network_events", date)
    (events.select(F.sha2(F.col("msisdn"), 256).alias("pseudo_id"), "event_ts", "event_type", "cell_id",
                   "latitude", "longitude")
     .write.format("delta").mode("overwrite").save(stage1))
    (spark.read.format("delta").load(stage1)
     .groupBy("pseudo_id", F.date_trunc("hour", "event_ts").alias("window_start"), "cell_id")
     .agg(F.count("*").alias("events"))
     .write.format("delta").mode("overwrite").save(stage2))
    (spark.read.format("delta").load(stage2)
     .groupBy("window_start", "cell_id").agg(F.count("*").alias("people"))
     .write.format("delta").mode("overwrite").save(stage3))
