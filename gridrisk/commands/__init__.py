"""The gridrisk CLI commands, one module per stage."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer


def data_errors() -> tuple[type[Exception], ...]:
    """The errors that mean a warehouse or training set cannot feed the command (missing, empty, or breaking
    the as-of rule): a command prints them as a refusal, never as a traceback."""
    from features.labels import LabelError
    from features.point_in_time import PointInTimeError
    from features.sources import WarehouseError
    from features.training_set import TrainingSetError

    return (TrainingSetError, LabelError, WarehouseError, PointInTimeError)


def writable_output(path: Path, *, folder: bool, option: str = "--out") -> Path:
    """Check `--out` before any work is done: a file may not be a folder (nor a folder a file), and its
    folder must be creatable and writable. Creates nothing, so a run refused later leaves no empty folder
    behind; the command makes the folder when it writes. A bad path is a usage error (exit 2)."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} is a file; name a folder to write into", param_hint=option)
    if not folder and path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; name the file to write", param_hint=option)
    parent = path if folder else path.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise typer.BadParameter(f"cannot create {parent}: {existing} is a file", param_hint=option)
    try:  # try it: permission bits say little to root or on special file systems such as /proc
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise typer.BadParameter(f"cannot write into {existing}: {exc.strerror}", param_hint=option) from exc
    return path


def clear_of_stores(
    path: Path, *, warehouse: Path, settings: Any, option: str = "--out", task: str | None = None
) -> None:
    """Refuse an `--out` inside the warehouse (a file there is read as a table) or over what gridrisk keeps in
    its home: the MLflow store and its artifacts, the API keys, the audit log, the model cache, and the
    snapshot folders of tasks other than `task` (the service would serve them as that task's scores), or a
    `latest` pointer. A usage error (exit 2), checked before any work; `task`'s own snapshots and training
    sets may live in the home."""
    from serving.snapshot import LATEST

    target = Path(path).resolve()
    snapshots = Path(settings.snapshots_path).resolve()
    if snapshots in target.parents:
        folder = target.relative_to(snapshots).parts[0]
        if target.name == LATEST:
            raise typer.BadParameter(
                f"{path} is the pointer to the service's newest {folder} snapshot; write the file elsewhere",
                param_hint=option,
            )
        if folder != task:
            raise typer.BadParameter(
                f"{path} is inside {Path(settings.snapshots_path) / folder}, the service's {folder} "
                f"snapshots, where a file is served as {folder} scores; write it elsewhere",
                param_hint=option,
            )
    store = Path(warehouse).resolve()
    if target == store or store in target.parents:
        raise typer.BadParameter(
            f"{path} is inside warehouse {warehouse}, where a file is read as a table; write it elsewhere",
            param_hint=option,
        )
    home = Path(settings.home)
    kept = (
        home / "mlflow.db",
        *local_tracking_store(settings.tracking_uri),
        home / "mlartifacts",
        settings.keys_path,
        settings.audit_path,
        settings.reload_path,
        settings.model_cache_path,
    )
    for kept_path in kept:
        resolved = Path(kept_path).resolve()
        if target == resolved or resolved in target.parents:
            where = "in its home" if home.resolve() in resolved.parents else "as its MLflow store"
            what = (
                f"is a file gridrisk keeps ({Path(kept_path).name}) {where}"
                if target == resolved
                else f"is inside {kept_path}, which gridrisk keeps {where}"
            )
            raise typer.BadParameter(f"{path} {what}; write it elsewhere", param_hint=option)


def local_tracking_store(uri: str) -> tuple[Path, ...]:
    """The file or folder a local MLflow tracking URI (MLFLOW_TRACKING_URI) keeps its runs in: a SQLite
    database or a file store; none for a server."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":  # sqlite:///relative.db, sqlite:////absolute.db
        name = unquote(parsed.path)[1:]
        return (Path(name),) if name and name != ":memory:" else ()
    if parsed.scheme == "file":
        return (Path(unquote(parsed.path)),)
    if parsed.scheme == "" and uri != "databricks":  # a bare path is a file store
        return (Path(uri),)
    return ()


def tracking_server_or_exit(settings: Any) -> None:
    """Refuse at once a tracking server that does not answer (exit 2): MLflow's client retries for minutes
    before it gives up (4 min against a closed port, measured), and `train` would build the training set
    first. Only a refused connection, a timeout or an unknown host count: a server that answers at all (401
    from a proxy, a certificate MLflow's own TLS settings accept) is left to MLflow's client. Credentials in
    the URI are sent as Basic auth and never printed."""
    import socket
    import urllib.error
    import urllib.request

    from serving.model_store import health_request
    from serving.settings import uri_without_credentials

    uri = settings.tracking_uri
    if not uri.startswith(("http://", "https://")):
        return
    shown = uri_without_credentials(uri)
    request = health_request(uri)
    timeout = settings.registry_timeout_seconds
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except urllib.error.URLError as exc:
        reason = exc.reason
        if not isinstance(reason, ConnectionRefusedError | TimeoutError | socket.gaierror):
            return  # TLS and the rest: MLflow's client, with its own settings, decides
    except (ConnectionRefusedError, TimeoutError, socket.gaierror) as exc:
        reason = exc
    except OSError:
        return
    typer.echo(
        f"error: the MLflow tracking server {shown} (MLFLOW_TRACKING_URI) does not answer ({reason}); start "
        f"it, fix the variable, or unset it to use the embedded store in {settings.home}. A server slower "
        f"than {timeout:g} s needs GRIDRISK_REGISTRY_TIMEOUT_SECONDS raised",
        err=True,
    )
    raise typer.Exit(2)


def port_free_or_exit(host: str, port: int, command: str, hint: str) -> None:
    """Exit 2 when the service could not listen on host:port because another process holds it: found before
    any work, not after loading every model (`serve`) or minutes of training (`demo`). Binds as uvicorn does
    (SO_REUSEADDR): a port whose last connections linger in TIME_WAIT is free to serve on."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            from rich.console import Console

            Console(stderr=True).print(
                f"[red]{command}:[/red] port {port} on {host} cannot be used ({exc.strerror}); {hint}"
            )
            raise typer.Exit(2) from None
