"""Helpers for the portal's tests: a real uvicorn server in a thread, a movable clock, the outbox."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets as pysecrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import uvicorn

from mobility.config import Config, load_config
from mobility.secrets import Secret
from portal.app import create_app, utcnow
from portal.store import make_engine
from tests.conftest import ROOT, write_conf

SCREENSHOTS = ROOT / "reports" / "screenshots" / "portal"
CHROMIUM = "/usr/bin/chromium"


@dataclass
class MovableClock:
    """The wall clock plus an offset the test can move forward (code and session expiry)."""

    offset: dt.timedelta = field(default_factory=dt.timedelta)

    def __call__(self) -> dt.datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)


def portal_conf(tmp_path: Path, **portal: object) -> Path:
    """A config for a lake under ``tmp_path`` with the portal's database and outbox there too."""
    values = {
        "database_url": f"sqlite:///{tmp_path / 'portal.db'}",
        "outbox": str(tmp_path / "outbox.jsonl"),
        "customer_check": "subscribers",
        "secure_cookies": False,
        **portal,
    }
    return write_conf(tmp_path, portal=values, privacy={"k_min": 10})


def write_subscribers(cfg: Config, numbers: list[str]) -> None:
    """A CRM snapshot with ``numbers`` (contract schema), written without Spark."""
    folder = Path(cfg.lake.raw) / "subscribers"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "msisdn": numbers,
        "birth_date": [dt.date(1990, 1, 1)] * len(numbers),
        "gender": ["F"] * len(numbers),
        "customer_type": ["consumer"] * len(numbers),
    })
    pq.write_table(table, folder / "part-0.parquet")


class PortalServer:
    """The portal app served by uvicorn on 127.0.0.1 with a free port, in a daemon thread."""

    def __init__(self, conf: Path, clock: MovableClock | None = None) -> None:
        self.conf = conf
        self.cfg = load_config(conf)
        self.key = Secret(pysecrets.token_bytes(32))
        self.clock = clock or MovableClock()
        self.engine = make_engine(self.cfg.portal.database_url)
        self.app = create_app(self.cfg, self.key, engine=self.engine, clock=self.clock)
        self.outbox = Path(self.cfg.portal.outbox)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> PortalServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the portal server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        self.engine.dispose()

    def messages(self, to: str | None = None) -> list[dict]:
        if not self.outbox.exists():
            return []
        rows = [json.loads(line) for line in self.outbox.read_text().splitlines() if line.strip()]
        return [r for r in rows if to is None or r["to"] == to]

    def last_code(self, to: str) -> str:
        msgs = self.messages(to)
        assert msgs, f"no message was sent to the test number ending {to[-4:]}"
        return re.search(r"\b(\d{6})\b", msgs[-1]["text"]).group(1)


def shot(page, name: str) -> Path:
    """A full-page screenshot for reviewers (reports/ is git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def sign_in(page, server: PortalServer, typed: str, number: str, *, lang: str = "en") -> None:
    """Start page -> number -> code from the outbox -> choices page."""
    page.goto(f"{server.url}/?lang={lang}")
    page.fill("#msisdn", typed)
    page.click("button[type=submit]")
    page.wait_for_url("**/verify")
    page.fill("#code", server.last_code(number))
    page.click("button[type=submit]")
    page.wait_for_url("**/choices")
