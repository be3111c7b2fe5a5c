"""CLI commands for the serving stage: `gridrisk score` (snapshots), `gridrisk serve` (API), `gridrisk keys`.

Heavy imports (pandas, LightGBM, MLflow, uvicorn) happen inside the commands so `gridrisk --help` stays fast.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

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
    from serving.settings import ServingSettings

    settings = ServingSettings()
    return settings.model_copy(update={"warehouse": warehouse}) if warehouse is not None else settings


def score(
    task: str = typer.Option(..., "--task", help="arrears | suspension | theft | all"),
    as_of: str | None = typer.Option(None, "--as-of", help="YYYY-MM-DD; default: the warehouse's data end"),
    out: Path | None = typer.Option(
        None, "--out", help="default: $GRIDRISK_HOME/snapshots/<task>/<as_of>.parquet"
    ),
    warehouse: Path | None = typer.Option(None, "--warehouse", help="default: $GRIDRISK_WAREHOUSE"),
    engine: str = typer.Option("local", "--engine", help="feature engine: local | spark"),
) -> None:
    """Score every customer of the population with the champion and write the snapshot the service serves."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from serving.batch import score_population
    from serving.errors import ServingError

    console = Console()
    settings = _serving_settings(warehouse)
    tasks = TASKS if task == "all" else (task,)
    if any(t not in TASKS for t in tasks):
        raise typer.BadParameter(
            f"task {task!r} is not one of {', '.join(TASKS)} or all", param_hint="--task"
        )
    if out is not None and len(tasks) > 1:
        raise typer.BadParameter("--out names one file; score one task at a time with it", param_hint="--out")
    day = dt.date.fromisoformat(as_of) if as_of else None
    table = Table("task", "as of", "model", "rows", "features s", "score+reasons s", "ms/row", "snapshot")
    failed = []
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
                )
            except ServingError as exc:
                # One task without a champion (say, not trainable on this archive) does not stop the others.
                console.print(f"[red]{name}: {escape(str(exc))}[/red]")
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
    if table.row_count:
        console.print(table)
    if failed:
        console.print(f"[red]not scored:[/red] {', '.join(failed)} (errors above)")
        raise typer.Exit(2)


def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(1, "--workers", help="uvicorn worker processes"),
) -> None:
    """Run the scoring API (uvicorn, app factory); models and snapshots load at start-up."""
    import uvicorn

    typer.echo(f"gridrisk API on http://{host}:{port} (docs at /docs)")
    # No per-request access log: /metrics counts requests by route and status, the audit log records callers.
    uvicorn.run(
        "serving.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="service | collector | analyst | admin"),
    station: list[str] = typer.Option([], "--station", help="collector scope; repeat for several stations"),
    supply_unit: list[str] = typer.Option([], "--supply-unit", help="collector scope; repeatable"),
    note: str = typer.Option("", "--note", help="who or what the key is for"),
) -> None:
    """Create a key and print it once; only its SHA-256 is stored."""
    from serving.access import Role, create_key
    from serving.errors import KeyStoreError

    if role not in {r.value for r in Role}:
        raise typer.BadParameter(
            f"{role!r} is not one of {', '.join(r.value for r in Role)}", param_hint="--role"
        )
    settings = _serving_settings()
    try:
        plaintext, record = create_key(settings.keys_path, role, station, supply_unit, note)
    except KeyStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    scope = ", ".join(record.stations + record.supply_units) or "all stations"
    typer.echo(f"key id {record.key_id} ({record.role.value}; {scope}) — shown once, store it now:", err=True)
    typer.echo(plaintext)


@keys_app.command("list")
def keys_list() -> None:
    """Key ids, roles, scopes and states (never the keys)."""
    from rich.console import Console
    from rich.table import Table

    from serving.access import read_keys

    table = Table("key id", "role", "stations", "supply units", "note", "created", "revoked")
    for r in read_keys(_serving_settings().keys_path).values():
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
    from serving.errors import KeyStoreError

    try:
        record = revoke_key(_serving_settings().keys_path, key_id)
    except KeyStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"revoked {record.key_id} at {record.revoked_at}")
