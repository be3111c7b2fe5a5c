"""Web sign-in: an API key typed once becomes a signed, HttpOnly session cookie that names the key (its id and
a prefix of its stored hash, never the key). Every page re-reads the key's record, so a revoked key is signed
out on its next click, and the page sees exactly the role and stations the API would.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from serving.access import KeyRecord, KeyStore, Principal

SESSION_COOKIE = "gridrisk_session"
LANG_COOKIE = "gridrisk_lang"
SECRET_FILE = "web-session.secret"
HASH_PREFIX = 16  # hex characters of the key's SHA-256 kept in the cookie: enough to tell records apart


def load_secret(configured: str | None, home: Path) -> bytes:
    """The configured secret, else the one kept in the home (made once, 0600, shared by local workers)."""
    if configured:
        return configured.encode()
    path = Path(home) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.tmp")
        tmp.write_text(secrets.token_hex(32))
        os.chmod(tmp, 0o600)
        # link() fails if the file exists: of several workers starting together, exactly one secret wins.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and reads `<payload>.<HMAC-SHA256>` tokens that expire after `max_age_seconds`."""

    def __init__(self, secret: bytes, max_age_seconds: float) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes (GRIDRISK_WEB_SESSION_SECRET)")
        self._secret = secret
        self.max_age_seconds = max_age_seconds

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())

    def issue(self, record: KeyRecord, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        payload = {"k": record.key_id, "h": record.sha256[:HASH_PREFIX], "t": issued}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def read(self, token: str | None, now: float | None = None) -> tuple[str, str] | None:
        """(key id, hash prefix) of a valid, unexpired token; None for anything else."""
        if not token or token.count(".") != 1:
            return None
        body, signature = token.split(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            payload = json.loads(_unb64(body))
            key_id, prefix, issued = str(payload["k"]), str(payload["h"]), float(payload["t"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        age = (time.time() if now is None else now) - issued
        if not 0 <= age <= self.max_age_seconds:
            return None
        return key_id, prefix


def principal_of(keys: KeyStore, key_id: str, prefix: str) -> Principal | None:
    """The caller behind a session, as the API would see its key; None once the key is revoked or replaced."""
    record = keys.record(key_id)
    if record is None or not record.active or not hmac.compare_digest(record.sha256[:HASH_PREFIX], prefix):
        return None
    return Principal(record.key_id, record.role, tuple(record.stations), tuple(record.supply_units))
