"""The portal's database (SQLAlchemy 2 Core): SQLite file by default, PostgreSQL by URL.

Tables:

* ``consent_changes`` — the append-only consent log, the only table that holds a number
  in clear (the export must write it): one row per change with the full preference after
  it, the time of change (UTC) and the channel (``portal``). The application only inserts.
* ``codes`` — one-time codes, by keyed number hash, stored as salted keyed hashes.
* ``sessions`` — by hash of the cookie value; the number sealed with the cookie value.
* ``exports`` — one row per exported batch of changes: the high-water mark of the export.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    insert,
    select,
)
from sqlalchemy.engine import make_url

CHANNEL_PORTAL = "portal"

metadata = MetaData()

consent_changes = Table(
    "consent_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("msisdn", String(15), nullable=False, index=True),
    Column("analytics_opt_out", Boolean, nullable=False),
    Column("location_offers_opt_in", Boolean, nullable=False),
    Column("changed_at", DateTime, nullable=False),  # naive UTC, microseconds
    Column("channel", String(16), nullable=False),
)

codes = Table(
    "codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("number_hash", String(64), nullable=False, index=True),
    Column("client_hash", String(64), nullable=False, index=True),
    Column("salt", String(32), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("expires_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("used_at", DateTime, nullable=True),
    Column("sent", Boolean, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("csrf", String(64), nullable=False),
    Column("sealed_msisdn", Text, nullable=True),
    Column("number_hash", String(64), nullable=True),
    Column("code_id", Integer, ForeignKey("codes.id"), nullable=True),
    Column("verified", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
)

exports = Table(
    "exports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("first_change_id", Integer, nullable=False, unique=True),
    Column("last_change_id", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("file", String(200), nullable=False),
    Column("cutoff", DateTime, nullable=False),
    Column("exported_at", DateTime, nullable=False),
)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the schema created; a SQLite file's folder is created too."""
    parsed = make_url(url)
    kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # FastAPI runs sync endpoints in a thread pool; SQLite serializes the writes.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, future=True, pool_pre_ping=True, **kwargs)
    metadata.create_all(engine)
    return engine


@dataclass(frozen=True)
class Preference:
    """A subscriber's preference in force, and when it was recorded (None = never)."""

    analytics_opt_out: bool
    location_offers_opt_in: bool
    updated_at: dt.datetime | None


DEFAULT_PREFERENCE = Preference(analytics_opt_out=False, location_offers_opt_in=False, updated_at=None)


def latest_change(engine: Engine, msisdn: str) -> Preference | None:
    """The latest change the portal recorded for ``msisdn``, if any."""
    with engine.connect() as conn:
        row = conn.execute(
            select(consent_changes.c.analytics_opt_out, consent_changes.c.location_offers_opt_in,
                   consent_changes.c.changed_at)
            .where(consent_changes.c.msisdn == msisdn)
            .order_by(consent_changes.c.changed_at.desc(), consent_changes.c.id.desc())
            .limit(1)
        ).first()
    return None if row is None else Preference(bool(row[0]), bool(row[1]), row[2])


def append_change(engine: Engine, msisdn: str, *, analytics_opt_out: bool, location_offers_opt_in: bool,
                  now: dt.datetime, channel: str = CHANNEL_PORTAL) -> dt.datetime:
    """Append one consent change; returns its time.

    The time is made strictly later than the subscriber's previous change, so two quick
    changes never tie on ``updated_at`` (the preferences suite refuses such ties).
    """
    with engine.begin() as conn:
        last = conn.execute(
            select(func.max(consent_changes.c.changed_at)).where(consent_changes.c.msisdn == msisdn)
        ).scalar()
        at = now if last is None or now > last else last + dt.timedelta(microseconds=1)
        conn.execute(insert(consent_changes).values(
            msisdn=msisdn, analytics_opt_out=analytics_opt_out, location_offers_opt_in=location_offers_opt_in,
            changed_at=at, channel=channel))
    return at
