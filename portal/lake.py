"""Plain (Spark-free) access to the raw zone for the portal and its export, through pyarrow.

Local paths and object-store URIs alike (``s3a://`` is Hadoop's name for what pyarrow
calls ``s3://``). The portal answers single numbers, so it reads with a filter on
``msisdn`` and never starts a Spark session.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from mobility.io import raw_path
from portal.store import Preference

# The contract's schema of privacy_preferences as Parquet; a UTC-adjusted timestamp is
# what Spark reads as TimestampType.
PREFERENCES_ARROW = pa.schema([
    pa.field("msisdn", pa.string()),
    pa.field("analytics_opt_out", pa.bool_()),
    pa.field("location_offers_opt_in", pa.bool_()),
    pa.field("updated_at", pa.timestamp("us", tz="UTC")),
])


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """File system and path of a lake location."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(uri)
    if uri.startswith("s3a://"):
        uri = "s3://" + uri[len("s3a://"):]
    return pafs.FileSystem.from_uri(uri)


def parquet_files(fs: pafs.FileSystem, path: str) -> list[str]:
    """Data files of a Parquet table (Spark's and pyarrow's rule: names starting '_' or '.' are not data)."""
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return []
    found = fs.get_file_info(pafs.FileSelector(path, recursive=True))

    def hidden(file: str) -> bool:
        return any(part.startswith(("_", ".")) for part in file[len(path):].split("/"))

    return sorted(f.path for f in found if f.type == pafs.FileType.File and not hidden(f.path))


def _variants(msisdn: str) -> list[str]:
    # Raw inputs may still carry '+' or '00' (the pipeline normalizes them before joining).
    return [msisdn, "+" + msisdn, "00" + msisdn]


def _matching(fs: pafs.FileSystem, path: str, msisdn: str, columns: list[str]) -> list[pa.Table]:
    tables = []
    for file in parquet_files(fs, path):
        table = pq.read_table(file, filesystem=fs, columns=columns,
                              filters=pc.field("msisdn").isin(_variants(msisdn)))
        if table.num_rows:
            tables.append(table)
    return tables


def is_subscriber(raw_root: str, msisdn: str) -> bool:
    """Is ``msisdn`` in the CRM snapshot ``<raw>/subscribers``?"""
    fs, path = resolve(raw_path(raw_root, "subscribers"))
    return bool(_matching(fs, path, msisdn, ["msisdn"]))


def latest_lake_preference(raw_root: str, msisdn: str) -> Preference | None:
    """The latest record for ``msisdn`` in ``<raw>/privacy_preferences`` (any channel), if any."""
    fs, path = resolve(raw_path(raw_root, "privacy_preferences"))
    best: Preference | None = None
    cols = ["analytics_opt_out", "location_offers_opt_in", "updated_at"]
    for table in _matching(fs, path, msisdn, cols):
        for row in table.to_pylist():
            ts = row["updated_at"]
            if ts is None:
                continue
            if ts.tzinfo is not None:
                ts = ts.astimezone(dt.UTC).replace(tzinfo=None)
            if best is None or ts > best.updated_at:
                best = Preference(bool(row["analytics_opt_out"]), bool(row["location_offers_opt_in"]), ts)
    return best
