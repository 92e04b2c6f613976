"""The per-row kernels of the pipeline, passed into the jobs as one value.

The jobs are built from stage code that takes its kernels as parameters: the keyed
hash (:class:`transforms.hashing.KeyedHash`), locating events in H3
(:func:`transforms.stage2.locate`), counting people in ``anonymized_events``
(:func:`transforms.stage3.people_in_unique_rows`) and counting distinct people in trips
(:func:`transforms.stage3.distinct_people`). :data:`BUILTIN` is the production set;
``benchmarks/naive.py`` builds the naive set for the benchmark, and both run the same
stage code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from mobility.secrets import Secret
from transforms.hashing import BroadcastHmac, KeyedHash
from transforms.stage2 import locate
from transforms.stage3 import DistinctPeople, distinct_people, people_in_unique_rows


@dataclass(frozen=True)
class Kernels:
    """What a job computes per row, swappable as a whole."""

    keyed_hash: Callable[[SparkSession, Secret], KeyedHash]
    locate: Callable[..., DataFrame]
    distinct_people: DistinctPeople
    # People per footfall/presence group of anonymized_events (one row per person, window, cell).
    count_people: DistinctPeople


BUILTIN = Kernels(keyed_hash=BroadcastHmac.for_secret, locate=locate, distinct_people=distinct_people,
                  count_people=people_in_unique_rows)
