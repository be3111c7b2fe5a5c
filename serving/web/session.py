"""Web sign-in: an API key typed once becomes a signed, HttpOnly session cookie that names the key (its id and
a prefix of its stored hash, never the key) and a random session id. Every page re-reads the key's record, so
a revoked key is signed out on its next click, and the page sees exactly the role and stations the API would.
Signing out records the session id until the cookie would have expired (`SignedOut`), so a copy of the
cookie kept elsewhere stops working too.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from serving.access import KeyRecord, KeyStore, Principal
from serving.errors import HomeUnwritable
from serving.locks import folder_lock, replace_whole

logger = logging.getLogger(__name__)

SESSION_COOKIE = "gridrisk_session"
LANG_COOKIE = "gridrisk_lang"
SECRET_FILE = "web-session.secret"
SIGNED_OUT_FILE = "web-signed-out.json"
HASH_PREFIX = 16  # hex characters of the key's SHA-256 kept in the cookie: enough to tell records apart


def load_secret(configured: str | None, home: Path) -> bytes:
    """The configured secret, else the one kept in the home (made once, 0600, shared by local workers)."""
    if configured:
        return configured.encode()
    path = Path(home) / SECRET_FILE
    if not path.exists():
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(secrets.token_hex(32))
            os.chmod(tmp, 0o600)
            # link() fails if the file exists: of several workers starting together, exactly one secret wins.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        except OSError as exc:  # a read-only or full home: every page was a 500, its error page too
            raise HomeUnwritable(
                "the web session secret",
                path,
                exc,
                "no one can sign in to the web page (GRIDRISK_WEB_SESSION_SECRET sets one without the file)",
            ) from exc
        finally:
            with contextlib.suppress(OSError):  # never in place of the error above
                tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    key_id: str
    prefix: str  # of the key's stored SHA-256
    session_id: str  # "" in a cookie issued before sessions had ids
    expires: float  # epoch seconds


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
        session_id = secrets.token_hex(8)
        payload = {"k": record.key_id, "h": record.sha256[:HASH_PREFIX], "t": issued, "s": session_id}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def read(self, token: str | None, now: float | None = None) -> Session | None:
        """The session of a valid, unexpired token; None for anything else."""
        signed = self._signed(token)
        if signed is None:
            return None
        session, issued = signed
        age = (time.time() if now is None else now) - issued
        return session if 0 <= age <= self.max_age_seconds else None

    def expired(self, token: str | None, now: float | None = None) -> bool:
        """Whether the token is one we issued whose time is up (the sign-in form says so)."""
        signed = self._signed(token)
        return signed is not None and (time.time() if now is None else now) > signed[0].expires

    def _signed(self, token: str | None) -> tuple[Session, float] | None:
        """The session of a token we signed and its issue time, whatever its age; None for anything else."""
        # Tokens we issue are ASCII, and compare_digest raises TypeError on a non-ASCII str: a cookie such as
        # `a.é` (any browser extension or proxy can send one) is no session, not an error.
        if not token or not token.isascii() or token.count(".") != 1:
            return None
        body, signature = token.split(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            payload = json.loads(_unb64(body))
            key_id, prefix, issued = str(payload["k"]), str(payload["h"]), float(payload["t"])
            session_id = str(payload.get("s", ""))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            return None
        return Session(key_id, prefix, session_id, issued + self.max_age_seconds), issued


class SignedOut:
    """Session ids signed out before their cookie expired, in a file the workers of one machine share
    (replicas on other machines share it only through a shared home). An entry leaves the file once its
    cookie would have expired, and the file keeps at most `MAX_ENTRIES` (the soonest to expire go first); a
    page view stats the file and rereads it only when it changed."""

    MAX_ENTRIES = 10_000

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int, int, int] | None = None
        self._ids: dict[str, float] = {}

    def _load(self, *, fresh: bool = False) -> dict[str, float]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._ids = None, {}
            return self._ids
        except OSError:
            return self._ids
        # Inode and nanosecond times too: a rewrite of the same size within a coarse mtime tick is a change.
        seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        if fresh or self._seen != seen:
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                self._ids = {str(k): float(v) for k, v in raw.items()}
            except (OSError, ValueError, TypeError, AttributeError):
                # Unreadable or not ours: a page must not fail on it; sign-outs it held are lost.
                logger.warning("ignoring the signed-out sessions file %s: unreadable", self.path)
                self._ids = {}
            self._seen = seen
        return self._ids

    def __contains__(self, session: Session) -> bool:
        return bool(session.session_id) and session.session_id in self._load()

    def add(self, session: Session, now: float | None = None) -> None:
        """Record a sign-out; raises OSError when the home cannot be written."""
        if not session.session_id:
            return
        now = time.time() if now is None else now
        # Read, add and write under the lock, from the file itself: two workers signing out at once must not
        # drop each other's entry.
        with folder_lock(self.path.parent, f".{self.path.name}.lock", exclusive=True):
            kept = {k: v for k, v in self._load(fresh=True).items() if v > now}
            kept[session.session_id] = session.expires
            if len(kept) > self.MAX_ENTRIES:
                kept = dict(sorted(kept.items(), key=lambda item: item[1])[-self.MAX_ENTRIES :])
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            replace_whole(self.path, tmp, lambda: tmp.write_text(json.dumps(kept), encoding="utf-8"))


def principal_of(keys: KeyStore, key_id: str, prefix: str) -> Principal | None:
    """The caller behind a session, as the API would see its key; None once the key is revoked or replaced."""
    record = keys.record(key_id)
    if record is None or not record.active or not hmac.compare_digest(record.sha256[:HASH_PREFIX], prefix):
        return None
    return Principal(record.key_id, record.role, tuple(record.stations), tuple(record.supply_units))
