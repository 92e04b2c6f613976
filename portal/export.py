"""Export the portal's consent log to ``<lake.raw>/privacy_preferences``, exactly once.

Each run takes the changes after the recorded high-water mark (the last change id
exported), up to a cut-off, and appends them as one Parquet file named after its
change-id range, ``portal-<first id>-<last id>.parquet``. Order of the steps:

1. read the high-water mark and the changes after it (on PostgreSQL under a SHARE lock
   of ``consent_changes``, so no change that is still being committed is skipped);
2. delete files of earlier runs that wrote their file but crashed before recording it
   (their first id is above the mark): their changes are in this run's file again;
3. write the file under a hidden temporary name, then rename it (readers never see a
   half-written file);
4. record the batch (its first id is unique) - the new high-water mark.

A crash before 4 leaves the mark where it was, so the next run exports the same
changes again and replaces the orphaned file (step 2): nothing is duplicated or lost.
A second run with nothing new writes nothing.

The cut-off is the end of the run's date (next midnight, UTC) or now, whichever is
earlier; a change belongs to the batch when its time is before the cut-off. Changes are
taken in id order and the batch stops at the first change at or after the cut-off, so
the mark never jumps over a change.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine, func, insert, select, text

from mobility.io import raw_path
from portal.lake import PREFERENCES_ARROW, parquet_files, resolve
from portal.store import consent_changes, exports

FILE_RE = re.compile(r"portal-(\d{12})-(\d{12})\.parquet$")


@dataclass(frozen=True)
class ExportResult:
    cutoff: dt.datetime
    high_water_mark_before: int
    rows: int
    first_change_id: int | None
    last_change_id: int | None
    file: str | None
    analytics_opt_outs: int
    location_offer_opt_ins: int
    orphans_removed: int


def cutoff_for(date: dt.date, now: dt.datetime) -> dt.datetime:
    """End of ``date`` (next midnight, UTC), or ``now`` if that is earlier (naive UTC)."""
    return min(dt.datetime.combine(date + dt.timedelta(days=1), dt.time()), now)


def batch_name(first_id: int, last_id: int) -> str:
    return f"portal-{first_id:012d}-{last_id:012d}.parquet"


def _record(engine: Engine, *, first_id: int, last_id: int, rows: int, file: str, cutoff: dt.datetime,
            now: dt.datetime) -> None:
    """Step 4: the batch is exported (the new high-water mark)."""
    with engine.begin() as conn:
        conn.execute(insert(exports).values(first_change_id=first_id, last_change_id=last_id, rows=rows,
                                            file=file, cutoff=cutoff, exported_at=now))


def export_preferences(engine: Engine, raw_root: str, *, date: dt.date, now: dt.datetime) -> ExportResult:
    """Append the changes up to the cut-off of ``date`` to the raw preferences table (see module doc)."""
    cutoff = cutoff_for(date, now)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE consent_changes IN SHARE MODE"))
        mark = conn.execute(select(func.coalesce(func.max(exports.c.last_change_id), 0))).scalar_one()
        pending = conn.execute(
            select(consent_changes.c.id, consent_changes.c.msisdn, consent_changes.c.analytics_opt_out,
                   consent_changes.c.location_offers_opt_in, consent_changes.c.changed_at)
            .where(consent_changes.c.id > mark).order_by(consent_changes.c.id)
        ).all()
    batch = []
    for row in pending:
        if row.changed_at >= cutoff:
            break
        batch.append(row)

    fs, table_dir = resolve(raw_path(raw_root, "privacy_preferences"))
    orphans = [f for f in parquet_files(fs, table_dir)
               if (m := FILE_RE.search(f)) and int(m.group(1)) > mark]
    for f in orphans:
        fs.delete_file(f)
    if not batch:
        return ExportResult(cutoff, mark, 0, None, None, None, 0, 0, len(orphans))

    first_id, last_id = batch[0].id, batch[-1].id
    table = pa.Table.from_pydict({
        "msisdn": [r.msisdn for r in batch],
        "analytics_opt_out": [bool(r.analytics_opt_out) for r in batch],
        "location_offers_opt_in": [bool(r.location_offers_opt_in) for r in batch],
        "updated_at": [r.changed_at.replace(tzinfo=dt.UTC) for r in batch],
    }, schema=PREFERENCES_ARROW)
    name = batch_name(first_id, last_id)
    fs.create_dir(table_dir, recursive=True)
    tmp, final = f"{table_dir}/.{name}.tmp", f"{table_dir}/{name}"
    pq.write_table(table, tmp, filesystem=fs)
    fs.move(tmp, final)
    _record(engine, first_id=first_id, last_id=last_id, rows=len(batch), file=name, cutoff=cutoff, now=now)
    return ExportResult(
        cutoff=cutoff, high_water_mark_before=mark, rows=len(batch), first_change_id=first_id,
        last_change_id=last_id, file=name,
        analytics_opt_outs=sum(bool(r.analytics_opt_out) for r in batch),
        location_offer_opt_ins=sum(bool(r.location_offers_opt_in) for r in batch),
        orphans_removed=len(orphans),
    )
