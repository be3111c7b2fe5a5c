"""CLI commands for the serving stage: `gridrisk score` (snapshots), `gridrisk serve` (API), `gridrisk keys`.

Heavy imports (pandas, LightGBM, MLflow, uvicorn) happen inside the commands so `gridrisk --help` stays fast.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

TASKS = ("arrears", "suspension", "theft")

keys_app = typer.Typer(
    help="API keys: create (shown once), list, revoke. Only hashes are stored.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")


def _serving_settings(warehouse: Path | None = None):  # type: ignore[no-untyped-def]
    from gridrisk.settings import load_settings  # exit 2 naming a bad GRIDRISK_* variable

    settings = load_settings()
    return settings.model_copy(update={"warehouse": warehouse}) if warehouse is not None else settings


def _as_of_date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is not a calendar date; write it as YYYY-MM-DD, e.g. 2023-12-31", param_hint="--as-of"
        ) from exc


def score(
    task: str = typer.Option(..., "--task", help="arrears | suspension | theft | all"),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="YYYY-MM-DD; default: the latest date on the model's day of the month (month ends) up to the "
        "warehouse's data end",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="default: $GRIDRISK_HOME/snapshots/<task>/<as_of>.parquet"
    ),
    warehouse: Path | None = typer.Option(None, "--warehouse", help="default: $GRIDRISK_WAREHOUSE"),
    engine: str = typer.Option("local", "--engine", help="feature engine: local | spark"),
    make_latest: bool = typer.Option(
        False,
        "--make-latest",
        help="serve this snapshot even when the service serves a later as-of date (a deliberate rollback)",
    ),
) -> None:
    """Score every customer of the population with the champion and write the snapshot the service serves."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from gridrisk.commands import clear_of_stores, data_errors, writable_output
    from serving.batch import score_population, scoring_as_of
    from serving.errors import AsOfOutOfRange, ServingError
    from serving.snapshot import served_path, stored_as_of

    console = Console()
    errors = Console(stderr=True, soft_wrap=True)
    tasks = TASKS if task == "all" else (task,)
    if any(t not in TASKS for t in tasks):
        raise typer.BadParameter(
            f"task {task!r} is not one of {', '.join(TASKS)} or all", param_hint="--task"
        )
    if out is not None and len(tasks) > 1:
        raise typer.BadParameter("--out names one file; score one task at a time with it", param_hint="--out")
    day = _as_of_date(as_of)
    settings = _serving_settings(warehouse)
    _same_account(settings)
    if not settings.warehouse_path.is_dir():
        raise typer.BadParameter(
            f"warehouse {settings.warehouse_path} does not exist; pass --warehouse DIR or set "
            "GRIDRISK_WAREHOUSE to a folder written by `gridrisk ingest`",
            param_hint="--warehouse",
        )
    if out is not None:  # checked before the features are built, not when the snapshot is written
        writable_output(out, folder=False)
        clear_of_stores(out, warehouse=settings.warehouse_path, settings=settings, task=tasks[0])
    refusals = data_errors()  # the input errors that refuse a warehouse, not bugs
    try:  # the date and the warehouse's data are checked before any model loads
        checked = scoring_as_of(settings.warehouse_path, day)
        day = checked if day is not None else None  # none given: each task's model picks its day of month
    except AsOfOutOfRange as exc:
        raise typer.BadParameter(str(exc), param_hint="--as-of") from exc
    except refusals as exc:
        errors.print(f"[red]score refused:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    table = Table("task", "as of", "model", "rows", "features s", "score+reasons s", "ms/row", "snapshot")
    failed: list[str] = []
    exports: list[tuple[str, Path]] = []
    with Progress(console=console, transient=True) as bar:
        for name in tasks:
            job = bar.add_task(f"{name}: scoring", total=None)
            try:
                report = score_population(
                    settings,
                    name,
                    day,
                    out,
                    engine,
                    progress=lambda _s, d, n, j=job: bar.update(j, completed=d, total=n),
                    make_latest=make_latest,
                )
            except (ServingError, *refusals) as exc:
                # One task without a champion (say, not trainable on this archive) does not stop the others.
                console.print(f"[red]{name}: {escape(str(exc))}[/red]", soft_wrap=True)
                failed.append(name)
                continue
            table.add_row(
                name,
                report.as_of.isoformat(),
                f"{report.model} v{report.version} ({report.source})",
                f"{report.rows:,}",
                f"{report.seconds['features']:.1f}",
                f"{report.seconds['score']:.2f}",
                f"{report.explain_ms_per_row:.4f}",
                str(report.path),
            )
            if not report.served:
                exports.append((name, report.path))
            for said in (report.skew, report.day_skew):
                if said is not None:
                    console.print(f"[yellow]{name}: {escape(said)}[/yellow]", highlight=False)
    if table.row_count:
        console.print(table)
    for name, path in exports:
        served = served_path(settings.snapshots_path, name)[0]
        if served is not None and path.resolve().parent == served.parent:
            # An earlier as-of scored again: the service keeps the later month it serves.
            message = (
                f"{name}: {path} written; the service keeps serving its later {stored_as_of(served)} "
                "snapshot (--make-latest serves this one)"
            )
        else:  # --out outside $GRIDRISK_HOME/snapshots/<task>/ is an export; the service keeps its snapshot.
            message = (
                f"{name}: {path} written as a file only; the service's latest {name} snapshot is unchanged"
            )
        console.print(escape(message), highlight=False)
    if failed:
        console.print(f"[red]not scored:[/red] {', '.join(failed)} (errors above)")
        raise typer.Exit(2)


WORKER_TIMEOUT = 120  # s: a worker took 5-19 s to start at load 1-7 and about 60 s at load 10
# Set by `serve` for its workers (spawned processes inherit the environment): how many there are, so each
# knows whether SIGHUP is its own to handle or its supervisor's.
WORKERS_VARIABLE = "GRIDRISK_SERVE_WORKERS"


def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(1, "--workers", min=1, help="uvicorn worker processes (1 or more)"),
    forwarded_allow_ips: str | None = typer.Option(
        None,
        "--forwarded-allow-ips",
        help="comma-separated addresses of proxies whose X-Forwarded-For and -Proto are trusted (the client "
        "address in the audit log); default: uvicorn's, $FORWARDED_ALLOW_IPS or 127.0.0.1",
    ),
    worker_timeout: int = typer.Option(
        WORKER_TIMEOUT,
        "--worker-timeout",
        min=1,
        help="seconds a worker may take to answer uvicorn's health check before it is killed and replaced",
    ),
) -> None:
    """Run the scoring API (uvicorn, app factory); models and snapshots load at start-up.

    SIGTERM and SIGINT stop it gracefully (requests in flight finish; exit code 0); SIGHUP reloads models,
    snapshots and the customer archive in every worker, as POST /v1/admin/reload does."""
    import logging

    import uvicorn

    from gridrisk import logs
    from gridrisk.commands import port_free_or_exit
    from serving.access import KeyStore
    from serving.errors import KeyStoreError

    settings = _serving_settings()
    try:
        # The workers read them again; a bad GRIDRISK_API_KEYS or keys.json should stop here, not in each.
        KeyStore(settings.keys_path, settings.api_keys).record("")
    except KeyStoreError as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(2) from exc
    _web_settings_or_exit()
    # Before the models load: a second instance on the port announced itself, loaded them, then failed.
    port_free_or_exit(host, port, "gridrisk serve", "stop what holds it, or choose another with --port N")
    if workers > 1:
        open_local_store_once(settings.tracking_uri)
    typer.echo(f"gridrisk API on http://{host}:{port} (docs at /docs)")
    os.environ[WORKERS_VARIABLE] = str(workers)
    # No per-request access log: /metrics counts requests by route and status, the audit log callers.
    config = uvicorn.Config(
        "gridrisk.commands.serving:service_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logs.dict_config(logging.getLogger().getEffectiveLevel()),  # `-v` reaches the workers
        access_log=False,
        timeout_worker_healthcheck=worker_timeout,
        **({"forwarded_allow_ips": forwarded_allow_ips} if forwarded_allow_ips is not None else {}),
    )
    with shared_metrics(workers):
        if workers > 1:
            _supervise(config, [config.bind_socket()])
            return
        # uvicorn re-raises the SIGTERM it stopped on once it has: the process died of it (exit 143), where
        # with several workers the parent exits 0. Raised here after a graceful stop, it is an exit 0.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        server = uvicorn.Server(config)
        server.run()
        if not server.started:
            raise typer.Exit(3)  # uvicorn's STARTUP_FAILURE: the log above says why


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def service_app() -> Any:
    """The app each worker runs (uvicorn's factory), with SIGHUP as a reload. Alone (`--workers 1`) the
    process publishes the reload itself; under a supervisor (several workers) the supervisor does, once for
    all, and a worker ignores SIGHUP: a terminal's hang-up reaches the whole process group, and a worker it
    killed dropped its requests in flight."""
    from serving.main import create_app

    alone = os.environ.get(WORKERS_VARIABLE, "1") == "1"
    if threading.current_thread() is threading.main_thread():  # signals are set in the main thread only
        signal.signal(signal.SIGHUP, _publish_reload if alone else signal.SIG_IGN)
    return create_app()


def _publish_reload(signum: int = signal.SIGHUP, frame: Any = None) -> None:
    """SIGHUP: a new reload generation in the home, as POST /v1/admin/reload writes; every worker refreshes
    its models, snapshots and customer archive before its next request (keys.json is re-read whenever it
    changes; GRIDRISK_API_KEYS only at start-up)."""
    import logging

    from serving.errors import HomeUnwritable
    from serving.service import ReloadSignal
    from serving.settings import ServingSettings

    logger = logging.getLogger("serving.signals")
    path = ServingSettings().reload_path  # the variables were checked at start
    try:
        generation = ReloadSignal(path).publish()
    except HomeUnwritable as exc:
        logger.error("SIGHUP: %s", exc)
        return
    logger.info("SIGHUP: reload %s published; every worker refreshes before its next request", generation)


def _web_settings_or_exit() -> None:
    """GRIDRISK_WEB_* are read when the first page is served: a bad one started the service, /ready said
    ready, and every page was a 500 with a traceback. Checked here, one line and exit 2, as the others."""
    from gridrisk.settings import settings_or_exit
    from serving.web.settings import WebSettings

    settings_or_exit(WebSettings, "GRIDRISK_WEB_")


def _supervise(config: Any, sockets: list[Any]) -> None:
    """Run several workers under uvicorn's supervisor, with SIGHUP as a reload. uvicorn's own SIGHUP restarts
    each worker and gives the new one `timeout_worker_healthcheck` (5 s) to be ready; a gridrisk worker loads
    its models and snapshots first and took 5-60 s, so the restart was always abandoned, reloading nothing."""
    import logging

    from uvicorn.supervisors.multiprocess import Multiprocess

    class Supervisor(Multiprocess):
        def handle_hup(self) -> None:
            logging.getLogger("uvicorn.error").info("Received SIGHUP, publishing a reload to the workers.")
            _publish_reload()

    Supervisor(config, sockets).run()


def open_local_store_once(uri: str) -> None:
    """Open a local SQLite tracking store here, before the workers do: MLflow makes or upgrades its schema on
    first use, and two workers doing that at once on a new mlflow.db failed one's start-up (alembic: "Online
    migration expected to match one row"). A store that cannot be read is left to the workers, which serve
    their cached champions and say why."""
    if not uri.startswith("sqlite:///"):
        return
    from serving.model_store import MISSING_STORE, MlflowRegistry, RegistryError

    registry = MlflowRegistry(uri)
    if registry.missing_store is not None:  # the workers find the file made here: tell them it was missing
        os.environ[MISSING_STORE] = str(registry.missing_store)
    with contextlib.suppress(RegistryError):
        registry.alias_version("gridrisk-arrears", "champion")


@contextlib.contextmanager
def shared_metrics(workers: int) -> Iterator[None]:
    """With several workers, a folder of their own for this run's metrics (PROMETHEUS_MULTIPROC_DIR, read by
    the workers when they import prometheus_client), so `/metrics` answers for all of them; removed at exit,
    as counts left from an earlier run would be added to this one's. A folder the operator set is theirs."""
    from serving.metrics import MULTIPROC_DIR

    if workers <= 1 or os.environ.get(MULTIPROC_DIR):
        yield
        return
    folder = tempfile.mkdtemp(prefix="gridrisk-metrics-")
    os.environ[MULTIPROC_DIR] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROC_DIR]
        shutil.rmtree(folder, ignore_errors=True)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="service | collector | analyst | admin"),
    station: list[str] = typer.Option([], "--station", help="collector scope; repeat for several stations"),
    supply_unit: list[str] = typer.Option([], "--supply-unit", help="collector scope; repeatable"),
    note: str = typer.Option("", "--note", help="who or what the key is for"),
) -> None:
    """Create a key and print it once; only its SHA-256 is stored."""
    from serving.access import Role, create_key
    from serving.errors import HomeUnwritable, KeyStoreError

    if role not in {r.value for r in Role}:
        raise typer.BadParameter(
            f"{role!r} is not one of {', '.join(r.value for r in Role)}", param_hint="--role"
        )
    settings = _serving_settings()
    _same_account(settings)
    areas = _warehouse_areas(settings.warehouse_path) if station or supply_unit else None
    try:
        supply_unit = _pinned_supply_units(areas, settings.warehouse_path, station, supply_unit)
        plaintext, record = create_key(settings.keys_path, role, station, supply_unit, note)
    except (KeyStoreError, HomeUnwritable) as exc:  # a read-only or full home: no traceback
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    _audit_key(settings, "key_created", record)
    scope = ", ".join(record.stations + record.supply_units) or "all stations"
    typer.echo(f"key id {record.key_id} ({record.role.value}; {scope}) — shown once, store it now:", err=True)
    typer.echo(plaintext)
    for warning in _unknown_scope(areas, settings.warehouse_path, record.stations, record.supply_units):
        typer.echo(f"warning: {warning}", err=True)
    _keys_from_env(settings, f"key {record.key_id} is refused by a service started with it")


def _warehouse_areas(warehouse: Path) -> Any:
    """The warehouse's areas (station, supply unit), or None before there is any data."""
    from features.sources import has_table, read_table

    if not has_table(warehouse, "areas"):
        return None
    return read_table(warehouse, "areas", columns=["station", "supply_unit"])


def _pinned_supply_units(
    areas: Any, warehouse: Path, stations: list[str], supply_units: list[str]
) -> list[str]:
    """The supply units a key scoped by station name covers. A station name is not unique in a province
    (many counties have a 城关供电所), and a key by name alone would see every county's station of that name,
    names and phones included: a name the warehouse has in several supply units needs --supply-unit, and a
    name in one is pinned to that unit, so a same-named station added later stays outside the key."""
    from serving.errors import KeyStoreError

    if stations and len(supply_units) > 1:  # each station in each unit: a same-named one of the other too
        raise KeyStoreError(
            f"a key with stations covers one supply unit, not {len(supply_units)}: it would cover each of "
            "its stations in each unit (a 城关供电所 in both counties); make one key per supply unit"
        )
    if not stations or supply_units or not all(s.strip() for s in stations):
        return supply_units  # no station to pin, or a blank one, which create_key refuses by name
    units = _units_of_stations(areas)
    known = [s for s in stations if s in units.index]
    if not known:  # nothing to pin to: unpinned, the key would see a same-named station of any unit
        where = (
            f"warehouse {warehouse} has no areas yet"
            if areas is None
            else (f"warehouse {warehouse} has no station {' or '.join(map(repr, stations))}")
        )
        raise KeyStoreError(
            f"{where}, so the key cannot be tied to a supply unit; a key by station name alone would see "
            "every station of that name in any supply unit, names and phones included. Add --supply-unit U "
            "with the collector's own supply unit (or create the key after `gridrisk ingest`)"
        )
    shared = [s for s in known if len(units[s]) > 1]
    if shared:
        named = "; ".join(f"{s!r} is in {', '.join(units[s])}" for s in shared)
        raise KeyStoreError(
            f"station names are not unique in warehouse {warehouse}: {named}. A key by station name alone "
            "would see each of them; add --supply-unit U with the collector's own supply unit"
        )
    pinned = sorted({u for s in known for u in units[s]})
    if len(pinned) > 1:  # a key covers every station it names in every unit it names
        named = "; ".join(f"{s!r} in {units[s][0]}" for s in known)
        raise KeyStoreError(
            f"the stations are in different supply units ({named}): a key covers each of its stations in "
            "each of its supply units, so a same-named station of another of them would be inside it; make "
            "one key per supply unit"
        )
    return pinned


def _units_of_stations(areas: Any) -> Any:
    """Each station name's supply units (sorted), from the warehouse's areas (empty before any data)."""
    import pandas as pd

    if areas is None:
        return pd.Series(dtype=object)
    return areas.dropna().astype(str).groupby("station")["supply_unit"].agg(lambda u: sorted(set(u)))


def _unknown_scope(areas: Any, warehouse: Path, stations: list[str], supply_units: list[str]) -> list[str]:
    """A scope the warehouse's areas do not know (ST001 typed for ST0001): the key is made, since keys may
    come before the data, but its lists would be empty without a word."""
    if not (stations or supply_units) or areas is None:
        return []
    out = []
    for kind, asked, column in (
        ("station", stations, "station"),
        ("supply unit", supply_units, "supply_unit"),
    ):
        known = sorted(set(areas[column].dropna().astype(str)))
        for value in asked:
            if value not in known:
                listed = ", ".join(known[:8]) + (", …" if len(known) > 8 else "")
                out.append(
                    f"{kind} {value!r} is not in warehouse {warehouse} (its {kind}s: {listed}); the key's "
                    "lists stay empty until it is (a typo? revoke the key and create one with the name)"
                )
    units = _units_of_stations(areas)
    for station in stations:
        if supply_units and station in units.index and not set(units[station]) & set(supply_units):
            out.append(
                f"station {station!r} is in {', '.join(units[station])}, not in "
                f"{', '.join(supply_units)}: the key's lists stay empty (revoke it and name the station's "
                "own supply unit)"
            )
    return out


@keys_app.command("list")
def keys_list() -> None:
    """Key ids, roles, scopes and states (never the keys)."""
    from rich.console import Console
    from rich.table import Table

    from serving.access import parse_env_keys, read_keys
    from serving.errors import KeyStoreError

    settings = _serving_settings()
    try:
        if settings.api_keys:
            records = parse_env_keys(settings.api_keys)
            typer.echo(
                f"keys from GRIDRISK_API_KEYS, which a service started with it serves instead of "
                f"{settings.keys_path} (unset the variable to list that file):",
                err=True,
            )
        else:
            records = read_keys(settings.keys_path)
    except KeyStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    table = Table("key id", "role", "stations", "supply units", "note", "created", "revoked")
    for r in records.values():
        table.add_row(
            r.key_id,
            r.role.value,
            ",".join(r.stations),
            ",".join(r.supply_units),
            r.note,
            r.created_at,
            r.revoked_at or "",
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the id shown by `gridrisk keys list`")) -> None:
    """Revoke a key; a running service refuses it from its next request."""
    from serving.access import revoke_key
    from serving.errors import HomeUnwritable, KeyStoreError

    settings = _serving_settings()
    _same_account(settings)
    try:
        record, revoked = revoke_key(settings.keys_path, key_id)
    except (KeyStoreError, HomeUnwritable) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if not revoked:  # nothing changed: no second `key_revoked` line
        typer.echo(f"{record.key_id} was already revoked at {record.revoked_at}; nothing changed")
    else:
        _audit_key(settings, "key_revoked", record)
        typer.echo(f"revoked {record.key_id} at {record.revoked_at}")
    _keys_from_env(settings, f"key {record.key_id} is still accepted by a service started with it")


def _keys_from_env(settings: Any, effect: str) -> None:
    """`keys create` and `revoke` change keys.json; a service started with GRIDRISK_API_KEYS reads its keys
    from that variable, once at start-up, and never the file. A tester revoked a key this way, was told
    "revoked", and the key kept answering 200. The file is still changed (it may be what the variable is set
    from), and the command says what it did not change."""
    if settings.api_keys:
        typer.echo(
            f"warning: GRIDRISK_API_KEYS is set, and a service started with it reads its keys from that "
            f"variable (at start-up only), not from {settings.keys_path}, which this command changed: "
            f"{effect}. Set the variable from the file again and restart the service",
            err=True,
        )


def _same_account(settings: Any) -> None:
    """Warn when this command runs as another account than the one owning GRIDRISK_HOME. Run as root, `keys`
    gave keys.json and audit.log to root, mode 600, and the service's own account could no longer read its
    keys (now root gives them back to their owner); other files a command writes there (a snapshot) would
    still be root's."""
    import pwd

    home = settings.home
    try:
        owner = home.stat().st_uid
    except OSError:
        return  # not made yet: this command makes it, as this account
    if owner == os.geteuid():
        return

    def user(uid: int) -> str:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:  # no passwd entry (a container's numeric user)
            return f"#{uid}"

    typer.echo(
        f"warning: GRIDRISK_HOME {home} belongs to {user(owner)} (uid {owner}), but this command runs as "
        f"{user(os.geteuid())} (uid {os.geteuid()}): run gridrisk commands as the service's account "
        f"(sudo -u {user(owner)} gridrisk …), or the service may not read or replace what they write",
        err=True,
    )


def _audit_key(settings: Any, action: str, record: Any) -> None:
    """A line in the home's audit log for a key made or revoked, naming the account that ran the command. The
    key is made or revoked first (a revocation must not wait on the log, and a made key is shown only once),
    so a log that cannot be written is a warning, not a refusal."""
    import getpass

    from serving.access import AuditLog

    try:
        by = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        by = f"uid {os.getuid()}"
    try:
        AuditLog(settings.audit_path).key_event(action, record, by)
    except OSError as exc:
        typer.echo(f"warning: the audit log {settings.audit_path} did not record this ({exc})", err=True)
