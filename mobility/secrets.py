"""Reading the two secrets, and the daily-key derivation.

A secret comes from the environment variable the config names, or — for
deployments that mount secrets as files (Kubernetes, Docker, Airflow) — from the
file named by ``<VAR>_FILE``. It is hex or base64 and at least 16 bytes. There is no
fallback: a missing or malformed secret raises :class:`SecretError` naming the
variable, never the value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from contract.errors import SecretError

MIN_KEY_BYTES = 16
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


@dataclass(frozen=True, repr=False)
class Secret:
    """Key bytes that refuse to print themselves."""

    value: bytes

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__


def _decode(text: str, name: str) -> bytes:
    text = text.strip()
    if _HEX.match(text):
        key = bytes.fromhex(text)
    else:
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SecretError(f"secret in {name} is neither hex nor base64") from None
    if len(key) < MIN_KEY_BYTES:
        raise SecretError(f"secret in {name} is shorter than {MIN_KEY_BYTES} bytes")
    return key


def read_secret(env_name: str, environ: dict[str, str] | None = None) -> Secret:
    """Return the secret held by ``env_name`` (or the file named by ``<env_name>_FILE``)."""
    env = os.environ if environ is None else environ
    if env.get(env_name):
        return Secret(_decode(env[env_name], env_name))
    file_var = f"{env_name}_FILE"
    if env.get(file_var):
        path = Path(env[file_var])
        if not path.is_file():
            raise SecretError(f"secret file named by {file_var} does not exist")
        return Secret(_decode(path.read_text(), file_var))
    raise SecretError(f"missing secret: environment variable {env_name} (or {file_var}) is not set")


def derive_daily_key(master: Secret, date: str) -> Secret:
    """The day's key: HMAC-SHA256(master, "daily/" + date).

    Stable within a day (so one person counts once per day) and unlinkable across
    days without the master secret.
    """
    return Secret(hmac.new(master.value, f"daily/{date}".encode(), hashlib.sha256).digest())


KEY_NAMES = {"network": "network_key_env", "daily": "daily_key_env"}


@dataclass(frozen=True, repr=False)
class Keys:
    """The secrets a job asked for (``network``: stage-1 key; ``daily``: master of the daily keys)."""

    network: Secret | None = None
    daily: Secret | None = None

    @classmethod
    def read(cls, secrets_cfg, needs: tuple[str, ...], environ: dict[str, str] | None = None) -> Keys:
        """Read the secrets named in ``needs`` from the variables ``secrets_cfg`` names (SecretError if missing)."""
        unknown = set(needs) - set(KEY_NAMES)
        if unknown:
            raise ValueError(f"unknown secrets {sorted(unknown)}; known: {sorted(KEY_NAMES)}")
        return cls(**{name: read_secret(getattr(secrets_cfg, KEY_NAMES[name]), environ) for name in needs})

    def __repr__(self) -> str:
        return "Keys(<redacted>)"

    __str__ = __repr__
