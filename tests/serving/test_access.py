"""API keys (hashed at rest, revocable live), roles, station scope, PII masks, audit lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from disk_faults import full_disk, read_only

from serving.access import (
    Action,
    AuditLog,
    KeyStore,
    Principal,
    Role,
    create_key,
    hash_key,
    mask_name,
    mask_phone,
    read_keys,
    revoke_key,
)
from serving.errors import Forbidden, HomeUnwritable, KeyStoreError, NotAuthenticated


def test_the_keys_file_holds_only_hashes(tmp_path):
    path = tmp_path / "keys.json"
    plaintext, record = create_key(path, "collector", stations=["S01"], note="team north")
    stored = path.read_text()
    assert plaintext not in stored and plaintext.split("_", 2)[2] not in stored  # the secret may hold "_"
    assert json.loads(stored)["keys"][0]["sha256"] == hash_key(plaintext)
    principal = KeyStore(path).authenticate(plaintext)
    assert principal == Principal(record.key_id, Role.COLLECTOR, ("S01",), ())


def test_revocation_applies_without_a_restart(tmp_path):
    path = tmp_path / "keys.json"
    plaintext, record = create_key(path, "service")
    store = KeyStore(path)
    store.authenticate(plaintext)
    revoke_key(path, record.key_id)
    with pytest.raises(NotAuthenticated, match="revoked"):
        store.authenticate(plaintext)


def test_keys_from_the_environment(tmp_path):
    plaintext, record = create_key(tmp_path / "made.json", "analyst")
    env = json.dumps([{"key_id": record.key_id, "sha256": record.sha256, "role": "analyst"}])
    store = KeyStore(tmp_path / "absent.json", env_keys=env)
    assert store.authenticate(plaintext).role == Role.ANALYST
    with pytest.raises(NotAuthenticated):
        store.authenticate(plaintext[:-1] + ("x" if plaintext[-1] != "x" else "y"))


def test_scopes_are_required_for_collectors_only(tmp_path):
    with pytest.raises(KeyStoreError, match="--station"):
        create_key(tmp_path / "k.json", "collector")
    with pytest.raises(KeyStoreError, match="only apply to collectors"):
        create_key(tmp_path / "k.json", "analyst", stations=["S01"])
    with pytest.raises(KeyStoreError, match="no key"):
        revoke_key(tmp_path / "k.json", "deadbeef")


def test_permissions_and_scope():
    collector = Principal("k1", Role.COLLECTOR, ("S01", "S02"), ("U1",))
    collector.require(Action.RISK_LIST)
    with pytest.raises(Forbidden):
        collector.require(Action.SCORE)
    assert collector.scope(None, None) == (["S01", "S02"], ["U1"])
    assert collector.scope("S02", None) == (["S02"], ["U1"])
    with pytest.raises(Forbidden, match="S03"):
        collector.scope("S03", None)
    analyst = Principal("k2", Role.ANALYST)
    assert analyst.scope("S03", None) == (["S03"], None) and not analyst.sees_pii
    with pytest.raises(Forbidden):
        analyst.require(Action.RELOAD)
    Principal("k3", Role.ADMIN).require(Action.RELOAD)


def test_a_blank_filter_means_any_within_the_scope():
    # Browsers send `station=` for an empty field; a station collector used to get "not station ''".
    station_collector = Principal("k1", Role.COLLECTOR, ("S01",))
    unit_collector = Principal("k2", Role.COLLECTOR, (), ("U2",))
    admin = Principal("k3", Role.ADMIN)
    for blank in ("", "  "):
        assert station_collector.scope(blank, blank) == (["S01"], None)
        assert unit_collector.scope(blank, blank) == (None, ["U2"])
        assert admin.scope(blank, blank) == (None, None)
    # A customer is not a filter: one placed in no station is outside a station collector's scope. The
    # refusal names the key's scope and the customer, never the customer's station.
    station_collector.require_covers("S01", "U1", "customer C1")
    with pytest.raises(Forbidden, match=r"covers stations 'S01'; customer C1 is not in them"):
        station_collector.require_covers(None, "U1", "customer C1")
    with pytest.raises(Forbidden, match="customer C1 is not in them") as refused:
        station_collector.require_covers("S07", "U1", "customer C1")
    assert "S07" not in str(refused.value)
    with pytest.raises(Forbidden, match=r"covers supply units 'U2'; customer C2 is not in them"):
        unit_collector.require_covers("S09", "U3", "customer C2")
    unit_collector.require_covers("S09", "U2", "customer C2")
    admin.require_covers(None, None, "customer C3")


def test_masks():
    assert mask_name("王小明") == "王**"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("12345") == "*****"
    assert mask_name(None) is None


# -- the audit log on a full or read-only disk ---------------------------------------------------------------

ANALYST = Principal("k1", Role.ANALYST)


def audit_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]  # raises if glued


@pytest.mark.parametrize("short", [False, True], ids=["raises", "returns-short"])
def test_a_full_disk_leaves_no_half_line_and_the_log_recovers(tmp_path, monkeypatch, short):
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.record(ANALYST, Action.SCORE, "arrears", {"n": 1}, "1", 1)
    before = path.read_bytes()
    full_disk(monkeypatch, tmp_path, short=short)
    with pytest.raises(HomeUnwritable, match=f"audit log {path} cannot be written") as refused:
        log.record(ANALYST, Action.RISK_LIST, "arrears", {"n": 2}, "1", 2)
    cause = "bytes written" if short else "No space left on device"
    assert cause in str(refused.value) and "risk_list request was refused" in str(refused.value)
    assert path.read_bytes() == before  # cut back: no half line for the next record to be glued onto
    monkeypatch.undo()  # space freed: the same log object writes again, no restart
    log.record(ANALYST, Action.CUSTOMER, "all", {"n": 3}, None, 1)
    assert [line["filters"]["n"] for line in audit_lines(path)] == [1, 3]


def test_a_read_only_home_refuses_the_audit_line_naming_the_file_and_the_cause(tmp_path, monkeypatch):
    path = tmp_path / "audit.log"
    read_only(monkeypatch, tmp_path)
    with pytest.raises(
        HomeUnwritable, match=rf"audit log {path} cannot be written \(Read-only file system\)"
    ):
        AuditLog(path).record(ANALYST, Action.SCORE, "arrears", {}, "1", 1)
    assert not path.exists()


def test_a_line_left_half_written_by_an_older_release_does_not_swallow_the_next(tmp_path):
    path = tmp_path / "audit.log"
    path.write_text('{"time": "2026-01-01T00:00:00", "key_id": "k0", "ro')
    AuditLog(path).record(ANALYST, Action.SCORE, "arrears", {}, "1", 1)
    broken, line = path.read_text().splitlines()
    assert broken.endswith('"ro') and json.loads(line)["key_id"] == "k1"


# -- several `gridrisk keys` commands at once (a script making a key per station with `xargs -P`) -----------


def _create_after(barrier, path: Path, out) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    try:
        out.put(create_key(path, "service")[1].key_id)
    except Exception as exc:  # the old code's misleading "cannot be written (No such file or directory)"
        out.put(f"error: {exc}")


def _revoke_after(barrier, path: Path, key_id: str, out) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    try:
        revoke_key(path, key_id)
        out.put(("revoked", key_id))
    except Exception as exc:
        out.put(f"error: {exc}")


def _race(*targets: tuple) -> list:  # type: ignore[type-arg]
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    barrier, out = fork.Barrier(len(targets)), fork.Queue()
    procs = [fork.Process(target=t, args=(barrier, *args, out)) for t, *args in targets]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return results


def test_keys_created_at_once_by_several_processes_are_all_stored(tmp_path):
    # Eight at once: seven said "shown once, store it now", keys.json held six, the eighth blamed the disk.
    path = tmp_path / "home" / "keys.json"
    made = _race(*[(_create_after, path)] * 8)
    assert not [m for m in made if m.startswith("error")], made
    assert sorted(read_keys(path)) == sorted(made)
    assert not list(path.parent.glob(".keys.json*"))  # no staging file left behind


def test_a_revocation_racing_creations_is_never_lost(tmp_path):
    # In 31 of 60 rounds the revocation was reported done and was not in keys.json; once the file was broken.
    path = tmp_path / "keys.json"
    for _ in range(6):
        victim = create_key(path, "admin")[1].key_id
        results = _race((_revoke_after, path, victim), *[(_create_after, path)] * 4)
        assert not [r for r in results if isinstance(r, str) and r.startswith("error")], results
        records = read_keys(path)  # valid JSON, every key made is in it
        assert records[victim].revoked_at is not None
        assert {r for r in results if isinstance(r, str)} <= set(records)


def test_revoking_a_revoked_key_changes_nothing(tmp_path):
    path = tmp_path / "keys.json"
    record = create_key(path, "service")[1]
    first, revoked = revoke_key(path, record.key_id)
    before = path.read_bytes()
    again, revoked_again = revoke_key(path, record.key_id)
    assert (revoked, revoked_again) == (True, False)
    assert again.revoked_at == first.revoked_at and path.read_bytes() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another account")
def test_root_keeps_the_keys_file_and_the_audit_log_the_service_accounts(tmp_path):
    # `sudo gridrisk keys create` left keys.json root:root 600: the service (as nobody) got 503s for every key
    home = tmp_path / "home"
    home.mkdir()
    path = home / "keys.json"
    create_key(path, "service")
    os.chown(home, 65534, 65534)
    os.chown(path, 65534, 65534)
    create_key(path, "admin")
    revoke_key(path, next(iter(read_keys(path))))
    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534) and path.stat().st_mode & 0o777 == 0o600
    lock = home / "keys.json.lock"
    assert lock.stat().st_uid == 65534
    log = AuditLog(home / "audit.log")
    log.key_event("key_created", read_keys(path)[next(iter(read_keys(path)))], "root")
    assert (home / "audit.log").stat().st_uid == 65534


def test_a_new_audit_log_is_not_world_readable(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    log.key_event("key_created", create_key(tmp_path / "keys.json", "service")[1], "me")
    assert (tmp_path / "audit.log").stat().st_mode & 0o007 == 0
