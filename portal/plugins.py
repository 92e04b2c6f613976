"""The pluggable parts of the portal: who receives codes (sender) and who is a customer.

Both are chosen by config and are either a built-in name or ``module:Class``. A class is
instantiated with the whole :class:`~mobility.config.Config` (so it can read its own
settings, e.g. a gateway URL, and secrets from the environment by name).

A **sender** has ``send(msisdn: str, text: str) -> None``: ``msisdn`` is E.164 digits,
``text`` the message in the subscriber's language; raising an exception means the code
was not sent (the portal still shows its neutral page). Built in: ``outbox``, which
appends one JSON line per message to ``portal.outbox`` (for the demo and the tests; it
is the stand-in for an SMS gateway and therefore holds the number it sends to).

A **customer check** has ``is_customer(msisdn: str) -> bool``. Built in: ``subscribers``
(the number is in ``<lake.raw>/subscribers``) and ``any`` (every well-formed number).
Codes are only sent to numbers the check accepts; the page shown is the same either way.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import threading
from pathlib import Path
from typing import Protocol

from contract.errors import ConfigError
from mobility.config import Config
from portal import lake


class CodeSender(Protocol):
    def send(self, msisdn: str, text: str) -> None: ...


class CustomerCheck(Protocol):
    def is_customer(self, msisdn: str) -> bool: ...


class OutboxSender:
    """Appends each message as a JSON line ``{"sent_at", "to", "text"}`` to a local file."""

    def __init__(self, cfg: Config) -> None:
        self.path = Path(cfg.portal.outbox)
        self._lock = threading.Lock()

    def send(self, msisdn: str, text: str) -> None:
        line = json.dumps({"sent_at": dt.datetime.now(dt.UTC).isoformat(), "to": msisdn, "text": text})
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")


class AnyNumber:
    """Every well-formed number counts as a customer."""

    def __init__(self, cfg: Config) -> None:
        pass

    def is_customer(self, msisdn: str) -> bool:
        return True


class LakeSubscribers:
    """A customer is a number in the CRM snapshot ``<lake.raw>/subscribers``."""

    def __init__(self, cfg: Config) -> None:
        self.raw = cfg.lake.raw
        fs, path = lake.resolve(f"{self.raw.rstrip('/')}/subscribers")
        if not lake.parquet_files(fs, path):
            logging.getLogger("portal").warning(
                "portal: no CRM snapshot at %s/subscribers, so no number is a customer and no code is sent "
                "(run `make demo` first, or set portal.customer_check=any)", self.raw)

    def is_customer(self, msisdn: str) -> bool:
        return lake.is_subscriber(self.raw, msisdn)


SENDERS = {"outbox": OutboxSender}
CUSTOMER_CHECKS = {"subscribers": LakeSubscribers, "any": AnyNumber}


def _load(spec: str, builtins: dict[str, type], key: str, cfg: Config):
    if spec in builtins:
        return builtins[spec](cfg)
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ConfigError(f"config key '{key}' must be one of {sorted(builtins)} or module:Class, got {spec!r}")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"config key '{key}': cannot load {spec!r} ({exc})") from None
    return cls(cfg)


def load_sender(cfg: Config) -> CodeSender:
    return _load(cfg.portal.sender, SENDERS, "portal.sender", cfg)


def load_customer_check(cfg: Config) -> CustomerCheck:
    return _load(cfg.portal.customer_check, CUSTOMER_CHECKS, "portal.customer_check", cfg)
