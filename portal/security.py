"""Keyed hashes, one-time codes and sealed session data, all derived from the portal secret.

One secret (the variable ``portal.key_env`` names) is split by HMAC into independent
sub-keys, so a hash of a number in a log line cannot be compared with a code hash or
a session token hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mobility.secrets import Secret

CODE_DIGITS = 6


class PortalCrypto:
    """Everything the portal derives from its secret."""

    def __init__(self, key: Secret) -> None:
        def sub(label: str) -> bytes:
            return hmac.new(key.value, f"mobility-insights/portal/{label}".encode(), hashlib.sha256).digest()

        self._number = sub("number")
        self._client = sub("client")
        self._code = sub("code")
        self._token = sub("session-token")
        self._seal = sub("seal")

    def __repr__(self) -> str:
        return "PortalCrypto(<redacted>)"

    @staticmethod
    def _mac(key: bytes, text: str) -> str:
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    def number_hash(self, msisdn: str) -> str:
        """Keyed hash of a number: what logs, rate limits and code records hold."""
        return self._mac(self._number, msisdn)

    def client_hash(self, client: str) -> str:
        """Keyed hash of a client address, for the per-client rate limit."""
        return self._mac(self._client, client)

    def code_hash(self, salt: str, code: str) -> str:
        """A code is stored only as this keyed, salted hash (6 digits are otherwise easy to invert)."""
        return self._mac(self._code, f"{salt}|{code}")

    def token_hash(self, token: str) -> str:
        """Sessions are stored under the hash of their cookie value, never the value itself."""
        return self._mac(self._token, token)

    def _seal_key(self, token: str) -> bytes:
        return hmac.new(self._seal, token.encode(), hashlib.sha256).digest()

    def seal(self, token: str, msisdn: str) -> str:
        """Encrypt a session's number with a key only the cookie holder and the server together have.

        The database alone (no cookie) cannot give the number of a session back.
        """
        nonce = secrets.token_bytes(12)
        ct = AESGCM(self._seal_key(token)).encrypt(nonce, msisdn.encode(), b"portal-session")
        return base64.b64encode(nonce + ct).decode()

    def unseal(self, token: str, sealed: str) -> str:
        raw = base64.b64decode(sealed)
        return AESGCM(self._seal_key(token)).decrypt(raw[:12], raw[12:], b"portal-session").decode()


def new_code() -> str:
    """A uniformly random one-time code of :data:`CODE_DIGITS` digits."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_token() -> str:
    """A random session cookie value or CSRF token (256 bits)."""
    return secrets.token_urlsafe(32)
