"""Who may call what: hashed API keys with roles and station scope, PII masking, and the audit log.

Keys live in `$GRIDRISK_HOME/keys.json` (or the GRIDRISK_API_KEYS variable) as SHA-256 hashes of high-entropy
random keys; the plaintext is shown once by `create_key`. Every list pull and score call is written to an
append-only JSON-lines audit log that never holds names, phones, addresses or feature values.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import errno
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from serving.errors import Forbidden, HomeUnwritable, KeyStoreError, NotAuthenticated, Refusal
from serving.locks import folder_lock, replace_whole

logger = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "grk"


class Role(StrEnum):
    SERVICE = "service"  # other systems: scores
    COLLECTOR = "collector"  # a station's collection team: its own risk lists, names and phones visible
    ANALYST = "analyst"  # all lists and scores, PII masked; reads model info
    ADMIN = "admin"  # everything, PII masked; reloads models


class Action(StrEnum):
    SCORE = "score"
    RISK_LIST = "risk_list"
    MODELS = "models"
    RELOAD = "reload"
    CUSTOMER = "customer"  # one customer's file: archive, history and scores (serving/customer_file.py)


PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.SCORE: frozenset({Role.SERVICE, Role.ANALYST, Role.ADMIN}),
    Action.RISK_LIST: frozenset({Role.COLLECTOR, Role.ANALYST, Role.ADMIN}),
    Action.MODELS: frozenset({Role.ANALYST, Role.ADMIN}),
    Action.RELOAD: frozenset({Role.ADMIN}),
    Action.CUSTOMER: frozenset({Role.COLLECTOR, Role.ANALYST, Role.ADMIN}),
}


@dataclass
class KeyRecord:
    """What is stored about a key: never the key itself, only its SHA-256."""

    key_id: str
    sha256: str
    role: Role
    stations: list[str] = field(default_factory=list)
    supply_units: list[str] = field(default_factory=list)
    note: str = ""
    created_at: str = ""
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Principal:
    """The caller behind a verified key."""

    key_id: str
    role: Role
    stations: tuple[str, ...] = ()
    supply_units: tuple[str, ...] = ()

    def refusal(self, reason: str) -> Forbidden:
        """A 403 for this key: the message names the key, and the audit line its id and role."""
        return Forbidden(f"key {self.key_id} {reason}", self.key_id, self.role.value)

    def require(self, action: Action) -> None:
        if self.role not in PERMISSIONS[action]:
            allowed = ", ".join(sorted(PERMISSIONS[action]))
            raise self.refusal(f"has role {self.role}; {action} needs one of: {allowed}")

    @property
    def sees_pii(self) -> bool:
        # Only a collector, and only inside its scope (lists are cut to the scope before PII is attached).
        return self.role == Role.COLLECTOR

    def scope(
        self, station: str | None, supply_unit: str | None
    ) -> tuple[list[str] | None, list[str] | None]:
        """Stations and supply units a request may see (None: all); Forbidden when it asks outside the key's
        scope. A blank filter (`?station=`, as a browser sends an empty field) means any within the scope."""
        station, supply_unit = blank_is_any(station), blank_is_any(supply_unit)
        if self.role != Role.COLLECTOR:
            return ([station] if station else None, [supply_unit] if supply_unit else None)
        if station is not None:
            self._require_station(station)
        if supply_unit is not None:
            self._require_supply_unit(supply_unit)
        stations = [station] if station else (list(self.stations) or None)
        units = [supply_unit] if supply_unit else (list(self.supply_units) or None)
        return stations, units

    def require_covers(self, station: str | None, supply_unit: str | None, subject: str) -> None:
        """Forbidden unless the key may see `subject` (a customer), placed in this station and supply unit.
        Unlike a filter, a customer placed nowhere (None) is outside a scoped key's stations, as it is outside
        its lists. The refusal names the key's own scope, never the customer's station: a collector learns
        only that the customer is not theirs."""
        if self.covers(station, supply_unit):
            return
        if self.stations and station not in self.stations:
            raise self.refusal(f"covers stations {named(self.stations)}; {subject} is not in them")
        if self.supply_units and supply_unit not in self.supply_units:
            raise self.refusal(f"covers supply units {named(self.supply_units)}; {subject} is not in them")

    def covers(self, station: str | None, supply_unit: str | None) -> bool:
        """Whether a customer placed in this station and supply unit is inside the key's scope."""
        if self.role != Role.COLLECTOR:
            return True
        return (not self.stations or station in self.stations) and (
            not self.supply_units or supply_unit in self.supply_units
        )

    def _require_station(self, station: str | None) -> None:
        if self.stations and station not in self.stations:
            raise self.refusal(f"covers stations {named(self.stations)}, not station {station!r}")

    def _require_supply_unit(self, supply_unit: str | None) -> None:
        if self.supply_units and supply_unit not in self.supply_units:
            raise self.refusal(
                f"covers supply units {named(self.supply_units)}, not supply unit {supply_unit!r}"
            )


def named(names: tuple[str, ...] | list[str]) -> str:
    """Scope names as a refusal says them, `'S01', 'S02'` (a Python list's brackets showed on the page)."""
    return ", ".join(repr(name) for name in names)


def blank_is_any(value: str | None) -> str | None:
    """A filter left empty (or only spaces) is no filter: the API and the web form read it the same way."""
    return value if value is not None and value.strip() else None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _parse(doc: Any, origin: str) -> dict[str, KeyRecord]:
    rows = doc.get("keys", []) if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise KeyStoreError(
            f"{origin}: expected a list of key records or {{'keys': [...]}}, got {type(rows).__name__}"
        )
    out: dict[str, KeyRecord] = {}
    for i, row in enumerate(rows):
        try:
            record = KeyRecord(**{**row, "role": Role(row["role"])})
        except (TypeError, KeyError, ValueError) as exc:
            raise KeyStoreError(
                f"{origin}: key record {i} is invalid ({exc}); each needs key_id, sha256 and a role in "
                f"{[r.value for r in Role]} — recreate it with `gridrisk keys create`"
            ) from exc
        out[record.key_id] = record
    return out


def read_keys(path: Path) -> dict[str, KeyRecord]:
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # permissions, a folder, binary bytes: no key can be checked
        raise KeyStoreError(f"keys file {path} cannot be read ({exc}); restore it or remove it") from exc
    try:
        return _parse(json.loads(text), str(path))
    except json.JSONDecodeError as exc:
        raise KeyStoreError(f"keys file {path} is not valid JSON ({exc}); restore it or remove it") from exc


def parse_env_keys(text: str) -> dict[str, KeyRecord]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyStoreError(
            f"GRIDRISK_API_KEYS is not valid JSON ({exc}); set it to the key records as JSON, e.g. the "
            "content of a keys.json written by `gridrisk keys create`, or unset it to use the keys file"
        ) from exc
    return _parse(doc, "GRIDRISK_API_KEYS")


KEYS_MODE = 0o600  # the keys file's mode when it is made; a replaced one keeps its own (never world-readable)


def _update_keys(path: Path, refused: str, change: Callable[[dict[str, KeyRecord]], tuple[T, bool]]) -> T:
    """Read the keys file, `change` its records, and write them back when `change` says they changed, all
    under an exclusive `flock` on `keys.json.lock` beside it. Without it, eight `gridrisk keys create` run
    at once (one key per station from a script) stored six keys, and a revocation racing a create was reported
    done but lost: each command wrote back the file it had read before the other's write. HomeUnwritable
    (the file unchanged) when the home cannot be written, saying what was `refused`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        owner = _owner(path)
        with folder_lock(path.parent, f"{path.name}.lock", exclusive=True):
            _keep_owner(path.with_name(f"{path.name}.lock"), owner)
            records = read_keys(path)  # under the lock: another command's write is in it
            result, changed = change(records)
            if changed:
                _write_keys(path, records, owner)
    except OSError as exc:
        raise HomeUnwritable("keys file", path, exc, refused) from exc
    return result


def _write_keys(path: Path, records: dict[str, KeyRecord], owner: tuple[int, int] | None) -> None:
    """Replace the keys file in one rename, from a staging file of this command's own in the same folder
    (one shared name let a command rename away the file another was still writing)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        mode = stat.S_IMODE(path.stat().st_mode) & 0o660 or KEYS_MODE
    except FileNotFoundError:
        mode = KEYS_MODE

    def write() -> None:
        tmp.write_text(json.dumps({"keys": [asdict(r) for r in records.values()]}, indent=1))
        os.chmod(tmp, mode)
        _keep_owner(tmp, owner)

    replace_whole(path, tmp, write)


def _owner(path: Path) -> tuple[int, int] | None:
    """Who a file of the home should belong to: the file's owner, or its folder's for a new file."""
    for where in (path, path.parent):
        try:
            found = where.stat()
        except FileNotFoundError:
            continue
        return found.st_uid, found.st_gid
    return None


def _keep_owner(path: Path, owner: tuple[int, int] | None) -> None:
    """Run as root (`sudo gridrisk keys create`), a file written in the home went to root with mode 600, and
    the service's own account could no longer read its keys: every keyed request was a 503. Root gives the
    file to the owner it had (a new one to the folder's owner); another account cannot, and need not."""
    if owner is None or os.geteuid() != 0:
        return
    found = path.stat()
    if (found.st_uid, found.st_gid) != owner:
        os.chown(path, *owner)


def create_key(
    path: Path,
    role: Role | str,
    stations: list[str] | None = None,
    supply_units: list[str] | None = None,
    note: str = "",
) -> tuple[str, KeyRecord]:
    """Make a key, store its hash, and return the plaintext (shown once) with its record."""
    role = Role(role)
    stations, supply_units = list(stations or []), list(supply_units or [])
    for option, names in (("--station", stations), ("--supply-unit", supply_units)):
        if any(not name.strip() for name in names):
            # A scope entry nobody's data matches: the key would see nothing, and no one would notice why.
            raise KeyStoreError(f"{option} {names!r} holds a blank name; give each scope a real name")
    if role == Role.COLLECTOR and not (stations or supply_units):
        raise KeyStoreError(
            "a collector key needs a scope: pass --station S (and optionally --supply-unit U)"
        )
    if role != Role.COLLECTOR and (stations or supply_units):
        raise KeyStoreError(
            f"role {role} sees every station; --station/--supply-unit only apply to collectors"
        )

    def add(records: dict[str, KeyRecord]) -> tuple[tuple[str, KeyRecord], bool]:
        key_id = secrets.token_hex(4)
        while key_id in records:
            key_id = secrets.token_hex(4)
        plaintext = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        record = KeyRecord(key_id, hash_key(plaintext), role, stations, supply_units, note, _now())
        records[key_id] = record
        return (plaintext, record), True

    return _update_keys(path, "no key was made", add)


def revoke_key(path: Path, key_id: str) -> tuple[KeyRecord, bool]:
    """Revoke a key; returns its record and whether this call revoked it (False: it was revoked already, at
    the time the record names, and the file is left as it was)."""

    def revoke(records: dict[str, KeyRecord]) -> tuple[tuple[KeyRecord, bool], bool]:
        if key_id not in records:
            raise KeyStoreError(f"no key {key_id!r} in {path}; `gridrisk keys list` shows the ids")
        record = records[key_id]
        if record.revoked_at is not None:
            return (record, False), False
        record.revoked_at = _now()
        return (record, True), True

    return _update_keys(path, f"key {key_id} was not revoked and still works", revoke)


class KeyStore:
    """Verifies presented keys against the hashes; re-reads a changed file, so revocations apply live."""

    def __init__(self, path: Path, env_keys: str | None = None) -> None:
        self.path = Path(path)
        self._env = parse_env_keys(env_keys) if env_keys else None
        self._records: dict[str, KeyRecord] = {}
        self._mtime: int | None = None
        self._lock = threading.Lock()

    def _current(self) -> dict[str, KeyRecord]:
        if self._env is not None:
            return self._env
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if mtime != self._mtime:
            with self._lock:
                self._records, self._mtime = read_keys(self.path), mtime
        return self._records

    def record(self, key_id: str) -> KeyRecord | None:
        """A key's stored record; the web session re-checks it on every page, so revocations apply."""
        return self._current().get(key_id)

    def authenticate(self, presented: str | None) -> Principal:
        # Spaces around a pasted key: the bearer scheme and the web form already drop them, X-API-Key did not.
        presented = presented.strip() if presented else presented
        if not presented:
            raise NotAuthenticated(
                "no API key: send it in the X-API-Key header (or Authorization: Bearer <key>)"
            )
        parts = presented.split("_", 2)
        record = self._current().get(parts[1]) if len(parts) == 3 and parts[0] == KEY_PREFIX else None
        if record is None or not hmac.compare_digest(record.sha256, hash_key(presented)):
            raise NotAuthenticated("API key not recognised; ask an admin for one (`gridrisk keys create`)")
        if not record.active:
            raise NotAuthenticated(
                f"API key {record.key_id} was revoked at {record.revoked_at}; ask for a new one",
                record.key_id,
                record.role.value,
            )
        return Principal(record.key_id, record.role, tuple(record.stations), tuple(record.supply_units))


def mask_name(name: str | None) -> str | None:
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1)


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    return phone[:3] + "*" * max(len(phone) - 7, 0) + phone[-4:] if len(phone) > 7 else "*" * len(phone)


# Line breaks to str.splitlines() and many log shippers that JSON leaves raw: a caller's filter holding one
# (`?station=%E2%80%A8`) split its audit line in two unparseable halves. Escaped, they stay in the string.
LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
ROUTE_CHARS = 200  # of a refused request's method and path in its audit line
DETAIL_CHARS = 300  # of the refusal's reason
REFUSALS_PER_MINUTE = 120  # refusal lines one process writes a minute (`AuditLog.refused`)
AUDIT_MODE = 0o640  # of a new audit log: the service's account writes it, its group (a log shipper) reads it


# The address of the request being served (uvicorn's: the proxy's X-Forwarded-For when the connection comes
# from an address in --forwarded-allow-ips). Set for each request by serving/metrics.py's middleware, the
# outermost, and read by `AuditLog.record`; None outside a request (a test calling it directly).
CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("gridrisk_client", default=None)


class AuditLog:
    """Append-only JSON lines: who pulled what, when, with which model; counts, never customer details."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._minute, self._refusals, self._not_written = -1, 0, 0  # the refusal budget (`refused`)

    def record(
        self,
        principal: Principal,
        action: Action,
        task: str,
        filters: dict[str, Any],
        model_version: str | None,
        rows: int,
    ) -> None:
        entry = {
            "key_id": principal.key_id,
            "role": principal.role.value,
            "action": action.value,
            "task": task,
            "filters": filters,
            "model_version": model_version,
            "rows": rows,
            "client": CLIENT.get(),  # refusals carried it, answered requests did not
        }
        try:
            self._write(entry)
        except OSError as exc:
            # Who pulled which customers is this log's whole point: an answer it cannot record is not given.
            raise HomeUnwritable(
                "audit log",
                self.path,
                exc,
                f"this {action.value} request was refused (every score, list and customer file is recorded "
                "there before it is answered)",
            ) from exc

    def refused(self, exc: Refusal, status: int, route: str, client: str | None) -> None:
        """A 401 or 403: which key (when known), what it asked for, from where, and why it was refused. The
        refusal stands when its line cannot be written (the server's log says so): it reveals nothing.

        At most REFUSALS_PER_MINUTE lines a minute per process: anyone can send keyless requests, and a line
        each would let them fill the home's disk, after which every audited request is refused. The lines
        not written are counted, said in the server's log, and the next line written carries their number."""
        minute = int(time.monotonic() // 60)
        with self._lock:
            if minute != self._minute:
                self._minute, self._refusals = minute, 0
            self._refusals += 1
            if self._refusals > REFUSALS_PER_MINUTE:
                self._not_written += 1
                if self._refusals == REFUSALS_PER_MINUTE + 1:
                    logger.warning(
                        "audit log %s: more than %d refusals this minute; the rest are counted, not written",
                        self.path,
                        REFUSALS_PER_MINUTE,
                    )
                return
            not_written, self._not_written = self._not_written, 0
        entry = {
            "key_id": exc.key_id,
            "role": exc.role,
            "action": "refused",
            "status": status,
            "route": route[:ROUTE_CHARS],
            "client": client,
            "detail": str(exc)[:DETAIL_CHARS],
            **({"refusals_not_written_before": not_written} if not_written else {}),
        }
        try:
            self._write(entry)
        except OSError as fault:
            logger.error("audit log %s: a %d was not recorded (%s): %s", self.path, status, fault, entry)

    def key_event(self, action: str, record: KeyRecord, by: str) -> None:
        """`gridrisk keys create` / `revoke`: the key's id, role and scope, and the account that ran it."""
        self._write(
            {
                "key_id": record.key_id,
                "role": record.role.value,
                "action": action,
                "filters": {"stations": record.stations, "supply_units": record.supply_units},
                "by": by,
                "note": record.note,
            }
        )

    def _write(self, entry: dict[str, Any]) -> None:
        time = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        line = json.dumps({"time": time, **entry}, ensure_ascii=False, default=str).translate(LINE_BREAKS)
        with self._lock:
            self._append((line + "\n").encode("utf-8"))

    def _append(self, data: bytes) -> None:
        """One line in one write, or none: a full disk took half a line once, and the next record was glued
        onto it. The file is locked (the workers of a home share it), so cutting it back to its length before
        the write cuts no other worker's line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        owner = None if self.path.exists() else _owner(self.path)  # a new file: its folder's owner
        # Not world-readable: the lines name keys, callers' addresses and notes (it was made 644).
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, AUDIT_MODE)
        try:
            if owner is not None:
                _keep_owner(self.path, owner)  # made by root (`sudo gridrisk keys …`): still the service's
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a line an older release left half-written stays alone on its line
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(errno.ENOSPC, f"only {written} of {len(data)} bytes written (disk full?)")
            except OSError:
                try:
                    os.ftruncate(fd, size)
                except OSError as undo:
                    logger.error("audit log %s: a partial line could not be cut off (%s)", self.path, undo)
                raise
        finally:
            os.close(fd)  # releases the lock
