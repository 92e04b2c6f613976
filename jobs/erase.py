"""Erasure: remove subscribers from every curated table and every date, physically, and log it.

    python -m jobs.erase --conf conf/local.yaml --date 2026-10-05 --msisdn-file requests.txt

``--msisdn-file``: one MSISDN per line, in any format (blanks, ``+``, ``00`` are
normalized; empty lines are skipped; a line that cannot be normalized stops the job
before anything is deleted). ``--date``: the day of the request; it dates the log entry
(optional here: today, UTC).

The subscribers' rows are found only through their keyed hashes, never their numbers:
``pseudo_id = HMAC(network key, msisdn)`` in ``pseudonymized_events`` and ``opt_outs``;
per date ``daily_id = HMAC(daily key of the date, pseudo_id)`` in ``anonymized_events``
and ``anonymized_trips``; the quarantine-domain id in the quarantine's records. Each
table: MERGE ... WHEN MATCHED DELETE (the ids never enter the log), purge
(REORG for deletion vectors, VACUUM RETAIN 0 HOURS: every superseded file goes, so time
travel on these tables ends here), checkpoint. Run it when no other job writes these
tables: a zero-hour VACUUM would also remove a concurrent writer's uncommitted files.

Crash safety: the deletions are recorded in the restricted zone's ledger in one commit
(event ``erased``, the version after the deletion) before anything is purged. A run that
dies before that commit is rolled back by the next run's recovery (the request is then
not in the erasure log: run it again); one that dies after it is complete except for the
purge, which a second run of the same request (or the next ``jobs.retention``) does.

``curated/erasure_log`` gets one row per erased table: date, ``erasure_id`` (an HMAC of
the request, never the numbers), when, how many people, rows and files removed. Released
aggregates are anonymous and stay; the release ledger notes the erasure (event
``erasure``). Running the same request again finds nothing (rows_removed 0) and logs
that too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import sys

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from contract.columns import canonical_msisdn
from contract.errors import InputError
from contract.vocabulary import ERASED_TABLES
from mobility import ledger
from mobility.io import is_delta_table, path_exists, read_text, table_path
from mobility.ledger import ERASED, table_version
from mobility.lifecycle import delete_matching, purge
from mobility.publish import DeltaPublisher, Publisher
from mobility.runner import Context, heal, run_job
from mobility.secrets import derive_daily_key
from transforms.consent import daily_ids_of, pseudonyms_of, quarantine_ids_of
from transforms.kernels import BUILTIN, Kernels

# How each erased table is matched (t: the table, s: the ids of the request).
MATCH = {
    "pseudonymized_events": ("pseudo_id", "t.pseudo_id = s.pseudo_id"),
    "opt_outs": ("pseudo_id", "t.pseudo_id = s.pseudo_id"),
    "anonymized_events": ("daily", "t.date = s.date AND t.daily_id = s.daily_id"),
    "anonymized_trips": ("daily", "t.date = s.date AND t.daily_id = s.daily_id"),
    "quarantine": ("quarantine", "get_json_object(t.record, '$.msisdn_hmac') = s.msisdn_hmac"),
    "offer_audience": ("msisdn", "t.msisdn = s.msisdn"),  # network zone: the number itself, for delivery
}


def read_request(ctx: Context, uri: str) -> DataFrame:
    """The request's canonical MSISDNs (one column ``msisdn``, distinct); InputError naming bad *line numbers* only."""
    if not path_exists(ctx.spark, uri):
        raise InputError(f"--msisdn-file {uri} does not exist")
    lines = [(i, line) for i, line in enumerate(read_text(ctx.spark, uri).splitlines(), start=1) if line.strip()]
    if not lines:
        raise InputError(f"--msisdn-file {uri} names no MSISDN")
    df = ctx.spark.createDataFrame(lines, "line int, raw string").withColumn("msisdn", canonical_msisdn(F.col("raw")))
    bad = [r["line"] for r in df.filter(F.col("msisdn").isNull()).select("line").orderBy("line").collect()]
    if bad:
        raise InputError(f"--msisdn-file: line(s) {', '.join(map(str, bad[:10]))} cannot be normalized to an MSISDN; "
                         "nothing was erased")
    return df.select("msisdn").distinct()


def frozen(ctx: Context, df: DataFrame) -> DataFrame:
    """Compute a small frame of hashes once (the key frame does not travel into the MERGEs)."""
    return ctx.spark.createDataFrame(df.collect(), df.schema)


def request_ids(ctx: Context, msisdns: DataFrame) -> dict[str, DataFrame]:
    """The keyed ids of the request in each domain (hex only)."""
    kernels: Kernels = ctx.kernels or BUILTIN
    network = kernels.keyed_hash(ctx.spark, ctx.keys.network)
    pseudo = frozen(ctx, pseudonyms_of(msisdns, hasher=network))
    daily = None
    for table in ("anonymized_events", "anonymized_trips"):
        path = table_path(ctx.cfg.lake, table)
        if not is_delta_table(ctx.spark, path):
            continue
        for (day,) in ctx.spark.read.format("delta").load(path).select("date").distinct().collect():
            hasher = kernels.keyed_hash(ctx.spark, derive_daily_key(ctx.keys.daily, day.isoformat()))
            ids = daily_ids_of(pseudo, hasher=hasher, date=day)
            daily = ids if daily is None else daily.unionByName(ids)
    if daily is None:
        daily = ctx.spark.createDataFrame([], "date date, daily_id string")
    return {"pseudo_id": pseudo, "daily": frozen(ctx, daily.distinct()),
            "quarantine": frozen(ctx, quarantine_ids_of(msisdns, hasher=network)), "msisdn": frozen(ctx, msisdns)}


def erasure_id(ctx: Context, msisdns: list[str]) -> str:
    """HMAC(network key, "erasure/" + date + "/" + the sorted canonical numbers): names the request, reveals no one."""
    message = f"erasure/{ctx.date.isoformat()}/" + ",".join(sorted(msisdns))
    return hmac.new(ctx.keys.network.value, message.encode(), hashlib.sha256).hexdigest()


def append(df: DataFrame, path: str, *, date: dt.date) -> None:
    """The erasure log is appended to, never replaced: every erasure stays on record."""
    df.write.format("delta").mode("append").partitionBy("date").save(path)


def stage(ctx: Context, *, msisdn_file: str) -> None:
    spark, lake = ctx.spark, ctx.cfg.lake
    heal(ctx, (*ERASED_TABLES, "erasure_log"))  # a crashed run's leftovers first
    msisdns = read_request(ctx, msisdn_file)
    numbers = [r["msisdn"] for r in msisdns.collect()]  # a request's few numbers, on the driver only
    ids = request_ids(ctx, msisdns)
    request = erasure_id(ctx, numbers)
    erased_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    report: dict[str, dict] = {}
    ctx.summary["erase"] = {"people": len(numbers), "tables": report}
    records: dict[str, list[dict]] = {}
    for table in ERASED_TABLES:
        path = table_path(lake, table)
        if not is_delta_table(spark, path):
            report[table] = {"rows_removed": 0, "files_removed": 0}
            continue
        kind, condition = MATCH[table]
        rows = delete_matching(spark, path, ids[kind], condition)
        report[table] = {"rows_removed": rows}
        records.setdefault(ledger.zone_of(table), []).append({
            "run_id": request, "job": ctx.job, "event": ERASED, "date": ctx.date, "table_name": table,
            "version": table_version(spark, path), "rows": rows,
            "note": f"erasure {request[:16]}: {len(numbers)} subscriber(s), {rows} row(s) removed"})
    # The commit point (one per zone): from here on recovery keeps the deletions, and
    # readers of the tables (read_pinned) read the versions without the erased people.
    for zone, rows in records.items():  # the restricted zone's, then the network zone's (offers)
        ledger.append(spark, lake, zone, rows)
    for table in ERASED_TABLES:
        path = table_path(lake, table)
        if is_delta_table(spark, path):
            report[table].update(purge(spark, path, retain_hours=0))
    log = spark.createDataFrame(
        [(ctx.date, request, erased_at, len(numbers), table, e["rows_removed"], e["files_removed"])
         for table, e in report.items()],
        "date date, erasure_id string, erased_at timestamp, people long, table_name string, rows_removed long, "
        "files_removed long")
    outputs = [("erasure_log", log, len(report))]
    publisher = DeltaPublisher(write=append) if isinstance(ctx.publisher, DeltaPublisher) else ctx.publisher
    publication = publisher(spark, ctx.cfg, outputs, date=ctx.date, job=ctx.job)
    ctx.summary["validation"] = {"report": publication.report, "erasure_log": "passed"}
    # The release ledger notes the erasure; the released aggregates are anonymous and stay.
    ledger.append(spark, lake, "insights", [{
        "run_id": request, "job": ctx.job, "event": "erasure", "date": ctx.date, "table_name": "erasure_log",
        "version": publication.versions.get("erasure_log", -1),
        "note": f"erasure {request[:16]}: {len(numbers)} subscriber(s) removed from the restricted zone; "
                "released aggregates are anonymous and were kept"}])


def main(argv: list[str] | None = None, *, kernels: Kernels = BUILTIN, publisher: Publisher | None = None) -> int:
    extra = argparse.ArgumentParser(prog="python -m jobs.erase", add_help=False)
    extra.add_argument("--msisdn-file", required=True, help="one MSISDN per line, any format")
    known, rest = extra.parse_known_args(sys.argv[1:] if argv is None else argv)
    if not any(a == "--date" or a.startswith("--date=") for a in rest):
        rest = [*rest, "--date", dt.datetime.now(dt.UTC).date().isoformat()]  # the request's day: today (UTC)
    return run_job("erase", rest, lambda ctx: stage(ctx, msisdn_file=known.msisdn_file),
                   needs=("network", "daily"), kernels=kernels, publisher=publisher)


if __name__ == "__main__":
    sys.exit(main())
