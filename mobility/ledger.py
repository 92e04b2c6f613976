"""The release ledger: the one commit point of every publication, and the record of its policy.

Every publication (stage 1's two tables, stage 2's two, stage 3's three) writes each
table's new Delta version first and then appends one row per table to the ledger of
its zone **in a single Delta commit**. That append is the commit point:

* readers (``mobility.release.read_release`` for buyers, the later stages for curated
  inputs) read each table at the version the ledger names for the date, so a release
  is all of its tables or none;
* a run that finds a table at a version newer than the ledger knows (a crash between
  the table commits and the ledger commit) restores it to the ledger's version and
  purges the leftover files before doing anything else (:func:`recover`).

Ledgers: ``<lake.insights>/_release_ledger`` (the release ledger: buyers and auditors
read it), ``<lake.curated>/_publish_ledger`` (the restricted zone's own) and
``<network zone>/_publish_ledger`` (the offers' audience, ``mobility.io.network_root``). One row
per published table and date: run id, time, job, table, Delta version, rows, content
digest, and the policy the release was made under.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contract.columns import content_digest, digest_hex
from contract.errors import InputError
from contract.vocabulary import DP_MECHANISM, DP_SUPPRESSION
from mobility.config import Config, LakeConfig
from mobility.io import (
    CURATED_TABLES,
    INSIGHTS_TABLES,
    NETWORK_TABLES,
    delta_head,
    delta_version,
    is_delta_table,
    network_root,
    path_exists,
    table_path,
)

RELEASE_LEDGER = "_release_ledger"
# Ledger events besides "published" and "recovered": rows deleted by jobs.erase (people)
# and by jobs.retention (dates before the row's ``date``); the version is the one after
# the deletion, so recovery keeps it and readers of earlier dates read it.
ERASED, EXPIRED = "erased", "expired"
PUBLISH_LEDGER = "_publish_ledger"
# The rule that decides which footfall groups are released (see transforms/disclosure.py).
SUPPRESSION_RULE = "remainder-guard-v1"

SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("recorded_at", T.TimestampType(), False),
    T.StructField("job", T.StringType(), False),
    T.StructField("event", T.StringType(), False),  # published | recovered | erased | expired | erasure
    T.StructField("date", T.DateType(), True),
    T.StructField("table_name", T.StringType(), False),
    T.StructField("version", T.LongType(), False),
    T.StructField("rows", T.LongType(), True),
    T.StructField("digest", T.StringType(), True),
    T.StructField("mode", T.StringType(), True),
    T.StructField("k_min", T.IntegerType(), True),
    T.StructField("h3_resolution", T.IntegerType(), True),
    T.StructField("od_h3_resolution", T.IntegerType(), True),
    T.StructField("window_minutes", T.IntegerType(), True),
    T.StructField("age_band_edges", T.StringType(), True),
    T.StructField("suppression", T.StringType(), True),
    T.StructField("note", T.StringType(), True),
    # Differential-privacy mode only (null for k_anonymity): what the release spent and how.
    T.StructField("epsilon", T.DoubleType(), True),
    T.StructField("delta", T.DoubleType(), True),
    T.StructField("dp_bounds", T.StringType(), True),
    T.StructField("mechanism", T.StringType(), True),
])


@dataclass(frozen=True)
class Policy:
    """What a release was made under; two releases of a date must share it."""

    mode: str
    k_min: int
    h3_resolution: int
    od_h3_resolution: int
    window_minutes: int
    age_band_edges: str
    suppression: str
    epsilon: float | None = None
    delta: float | None = None
    dp_bounds: str | None = None
    mechanism: str | None = None

    @classmethod
    def of(cls, cfg: Config) -> Policy:
        g = cfg.generalization
        common = {"k_min": cfg.privacy.k_min, "h3_resolution": g.h3_resolution,
                  "od_h3_resolution": g.od_h3_resolution, "window_minutes": g.window_minutes,
                  "age_band_edges": json.dumps(list(g.age_band_edges))}
        if cfg.privacy.mode != "differential_privacy":
            return cls(mode="k_anonymity", suppression=SUPPRESSION_RULE, **common)
        d = cfg.dp
        bounds = {"footfall": d.footfall_max_groups, "presence": d.presence_max_groups,
                  "od_flows": d.od_flows_max_groups}
        return cls(mode="differential_privacy", suppression=DP_SUPPRESSION, epsilon=d.epsilon, delta=d.delta,
                   dp_bounds=json.dumps(bounds, sort_keys=True), mechanism=DP_MECHANISM, **common)

    @property
    def is_dp(self) -> bool:
        return self.mode == "differential_privacy"

    @classmethod
    def from_row(cls, row) -> Policy:
        d = row.asDict() if hasattr(row, "asDict") else dict(row)
        return cls(**{f: d.get(f) for f in cls.__dataclass_fields__})

    def differences(self, other: Policy) -> list[str]:
        """``key: this -> other`` for every field that differs."""
        a, b = asdict(self), asdict(other)
        return [f"{k}: {a[k]} -> {b[k]}" for k in a if a[k] != b[k]]


def zone_of(table: str) -> str:
    if table in INSIGHTS_TABLES:
        return "insights"
    if table in CURATED_TABLES:
        return "curated"
    if table in NETWORK_TABLES:
        return "network"
    raise ValueError(f"unknown table '{table}'")


def ledger_path(lake: LakeConfig, zone: str) -> str:
    if zone == "insights":
        return f"{lake.insights.rstrip('/')}/{RELEASE_LEDGER}"
    if zone == "curated":
        return f"{lake.curated.rstrip('/')}/{PUBLISH_LEDGER}"
    if zone == "network":
        return f"{network_root(lake)}/{PUBLISH_LEDGER}"
    raise ValueError(f"unknown zone '{zone}'")


def read_ledger(spark: SparkSession, lake: LakeConfig, zone: str) -> DataFrame:
    """The whole ledger of a zone (empty, with the schema, if nothing was ever published)."""
    path = ledger_path(lake, zone)
    if not is_delta_table(spark, path):
        return spark.createDataFrame([], SCHEMA)
    return spark.read.format("delta").load(path)


# The rows of each ledger as last read, keyed by its path: (version, commit time, rows).
_ROWS: dict[str, tuple[tuple[int, int], list[dict]]] = {}


def ledger_rows(spark: SparkSession, lake: LakeConfig, zone: str) -> list[dict]:
    """The whole ledger of a zone as dicts (empty if nothing was ever published).

    A publication consults the ledger a dozen times (recovery, the republish check, the
    pinned reads); each Delta read of it cost a snapshot and a Spark job. The rows are
    read once per ledger version and kept: a later call lists the ledger's log (no Spark
    job) and reads again only if a commit was added. The ledger has a few rows per run
    and table, so it grows with the number of runs, never with the data. Every call
    returns fresh dicts.
    """
    path = ledger_path(lake, zone)
    head = delta_head(spark, path)
    if head is None:
        return []
    cached = _ROWS.get(path)
    if cached is None or cached[0] != head:
        cached = _ROWS[path] = (head, [r.asDict() for r in spark.read.format("delta")
                                       .option("versionAsOf", head[0]).load(path).collect()])
    return [dict(r) for r in cached[1]]


def new_run_id() -> str:
    return uuid.uuid4().hex


def append(spark: SparkSession, lake: LakeConfig, zone: str, rows: Iterable[dict]) -> None:
    """Append ledger rows in ONE Delta commit (the commit point of a publication)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    full = [{f.name: r.get(f.name) for f in SCHEMA.fields} | {"recorded_at": r.get("recorded_at") or now}
            for r in rows]
    if not full:
        return
    # mergeSchema: a ledger written before a column was added (the dp columns) takes it on.
    (spark.createDataFrame(full, SCHEMA).write.format("delta").mode("append").option("mergeSchema", "true")
     .save(ledger_path(lake, zone)))


def table_version(spark: SparkSession, path: str) -> int | None:
    """The table's current Delta version, or None if there is no table yet."""
    return delta_version(spark, path)


def known_versions(spark: SparkSession, lake: LakeConfig, zone: str, tables: Iterable[str]) -> dict[str, int | None]:
    """The newest version the ledger knows of each table (None: never published)."""
    known: dict[str, int] = {}
    for r in ledger_rows(spark, lake, zone):
        known[r["table_name"]] = max(int(r["version"]), known.get(r["table_name"], -1))
    return {t: known.get(t) for t in tables}


def vacuum_now(spark: SparkSession, path: str) -> None:
    """Remove every file the table's current version does not reference (superseded versions become unreadable)."""
    from delta.tables import DeltaTable

    key = "spark.databricks.delta.retentionDurationCheck.enabled"
    previous = spark.conf.get(key, "true")
    spark.conf.set(key, "false")
    try:
        DeltaTable.forPath(spark, path).vacuum(0.0)
    finally:
        spark.conf.set(key, previous)


# Commits that change no row (file housekeeping): a table whose only commits since the
# ledger's version are these holds what the ledger recorded.
HOUSEKEEPING = ("CREATE TABLE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES", "OPTIMIZE", "REORG")


def commits_since(spark: SparkSession, path: str, before: int | None) -> list:
    """The table's history entries after version ``before`` (all of them if None), oldest first.

    Reads only the newest entries (a table's history grows by a few commits a day) and
    no Spark job at all when the log listing shows no newer commit. Should commits land
    between the listing and the read (a VACUUM writes two), the whole history is read.
    """
    from delta.tables import DeltaTable

    since = -1 if before is None else before
    current = table_version(spark, path)
    if current is None or current <= since:
        return []
    table = DeltaTable.forPath(spark, path)
    entries = [r for r in table.history(current - since + 1).collect() if int(r["version"]) > since]
    if not any(int(r["version"]) == since + 1 for r in entries):
        entries = [r for r in table.history().collect() if int(r["version"]) > since]
    return sorted(entries, key=lambda r: int(r["version"]))


def unrecorded_changes(spark: SparkSession, path: str, known: int | None) -> list[int]:
    """Versions after ``known`` whose commit changed data (everything if ``known`` is None)."""
    return [int(r["version"]) for r in commits_since(spark, path, known) if r["operation"] not in HOUSEKEEPING]


def recover(spark: SparkSession, lake: LakeConfig, tables: Iterable[str], *, job: str) -> list[str]:
    """Roll back every table the ledger does not know at its current version; return what was healed.

    A version newer than the ledger's is the leftover of a run that died between its
    table commits and its ledger commit: nobody reading through the ledger ever saw it.
    The table is restored to the ledger's version (or emptied if the ledger never knew
    it), its leftover files are purged, and the recovery is recorded so that the next
    run finds the table and the ledger in agreement. Idempotent: a crash during
    recovery is healed by the next one.
    """
    from delta.tables import DeltaTable

    healed: list[str] = []
    by_zone: dict[str, list[str]] = {}
    for t in tables:
        by_zone.setdefault(zone_of(t), []).append(t)
    for zone, zone_tables in by_zone.items():
        records = []
        for table, known in known_versions(spark, lake, zone, zone_tables).items():
            path = table_path(lake, table)
            current = table_version(spark, path)
            if current is None or current == known or not unrecorded_changes(spark, path, known):
                continue
            if known is None:
                DeltaTable.forPath(spark, path).delete()  # created by a run that never committed
                note = f"removed the rows of an unrecorded first publication (versions 0..{current})"
            else:
                DeltaTable.forPath(spark, path).restoreToVersion(known)
                note = f"restored version {known}; discarded unrecorded versions {known + 1}..{current}"
            vacuum_now(spark, path)
            records.append({"run_id": new_run_id(), "job": job, "event": "recovered", "table_name": table,
                            "version": table_version(spark, path), "note": note})
            healed.append(f"{table}: {note}")
        append(spark, lake, zone, records)
    return healed


def published(spark: SparkSession, lake: LakeConfig, zone: str, date: dt.date) -> DataFrame:
    """The ledger's publications of ``date``, newest last."""
    return (read_ledger(spark, lake, zone)
            .filter((F.col("event") == F.lit("published")) & (F.col("date") == F.lit(date)))
            .orderBy("recorded_at", "table_name"))


def published_rows(spark: SparkSession, lake: LakeConfig, zone: str, date: dt.date) -> list[dict]:
    """:func:`published` as dicts (a few per release), newest last."""
    rows = [r for r in ledger_rows(spark, lake, zone) if r["event"] == "published" and r["date"] == date]
    return sorted(rows, key=lambda r: (r["recorded_at"], r["table_name"]))


def was_published(spark: SparkSession, lake: LakeConfig, zone: str, tables: Iterable[str], date: dt.date) -> bool:
    """Whether any of ``tables`` was ever published for ``date`` (a new write then supersedes it)."""
    tables = set(tables)
    return any(r["table_name"] in tables for r in published_rows(spark, lake, zone, date))


def latest_publication(spark: SparkSession, lake: LakeConfig, zone: str, date: dt.date) -> dict[str, dict]:
    """``{table: ledger row as dict}`` of the newest publication of ``date`` (empty if none)."""
    rows = published_rows(spark, lake, zone, date)
    if not rows:
        return {}
    last = max(rows, key=lambda r: r["recorded_at"])["run_id"]
    return {r["table_name"]: r for r in rows if r["run_id"] == last}


def read_pinned(spark: SparkSession, lake: LakeConfig, table: str, date: dt.date, *, what: str) -> DataFrame:
    """One date of a table, at the version its newest publication of that date recorded.

    If rows of the table were erased (``jobs.erase``) after that publication, the
    version the newest erasure recorded is read instead: it holds the publication minus
    the erased people. A date that retention expired after its publication is an
    InputError. Raises FileNotFoundError when the date was never published. Time travel
    may be gone (log retention); the current version is then used if the ledger's row
    count and digest of the date still match it, else InputError.
    """
    of_table = [r for r in ledger_rows(spark, lake, zone_of(table)) if r["table_name"] == table]
    # One row per publication of the date, erasure and retention run.
    rows = [r for r in of_table
            if (r["event"] == "published" and r["date"] == date) or r["event"] in (ERASED, EXPIRED)]
    publications = [r for r in rows if r["event"] == "published"]
    row = max(publications, key=lambda r: r["recorded_at"]) if publications else None
    path = table_path(lake, table)
    if row is None:
        raise FileNotFoundError(f"{what} of {date.isoformat()} was never published (no entry in the ledger at "
                                f"{ledger_path(lake, zone_of(table))}): run the previous stage first")
    later = [r for r in rows if r["event"] != "published" and r["version"] > row["version"]]
    expired = [r for r in later if r["event"] == EXPIRED and r["date"] is not None and date < r["date"]]
    if expired:
        raise InputError(f"{what} of {date.isoformat()} was deleted by retention (jobs.retention removed the dates "
                         f"before {expired[0]['date'].isoformat()}); it cannot be processed again")
    version = max([int(row["version"])] + [int(r["version"]) for r in later])
    at_date = F.col("date") == F.lit(date)
    current_version = table_version(spark, path)
    known = max(int(r["version"]) for r in of_table)
    if current_version is not None and not unrecorded_changes(spark, path, known):
        # Everything since the pinned version is in the ledger: publications of other
        # dates, erasures, expiries, recoveries. The date's rows are then the current
        # ones, read at the current version (pinned: a writer that commits meanwhile is not seen).
        current = spark.read.format("delta").option("versionAsOf", current_version).load(path).filter(at_date)
        current.inputFiles()  # reads the log's file actions now: a damaged log fails here, naming the table
        return current
    try:
        pinned = spark.read.format("delta").option("versionAsOf", version).load(path).filter(at_date)
        missing = [f for f in pinned.inputFiles() if not path_exists(spark, f)]  # the date's files only
        if not missing:
            return pinned
        reason = f"{len(missing)} of its files were purged"
    except AnalysisException as exc:  # the version's log entry is gone (log retention)
        reason = str(exc).splitlines()[0]
    current = spark.read.format("delta").load(path).filter(at_date)
    if version == row["version"] and row["digest"] is not None and fingerprint(current) == (row["rows"], row["digest"]):
        return current
    raise InputError(f"{what} of {date.isoformat()}: version {version} recorded in the ledger cannot be read "
                     f"({reason}) and the current version is not provably the same")


def fingerprint(df: DataFrame) -> tuple[int, str]:
    """Rows and an order-independent content digest of a frame (one aggregation).

    The digest is :func:`contract.columns.content_digest` as hex (``digest_hex``): the sum of the first 60
    bits of each row's SHA-256 over its JSON. Equal frames give equal digests whatever
    their order or file layout.
    """
    r = df.agg(F.count(F.lit(1)).alias("n"), content_digest(df.columns).alias("s")).first()
    return int(r["n"]), digest_hex(r["s"])

