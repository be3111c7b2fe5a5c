"""`gridrisk demo`: the whole job end to end on a fresh machine, through the same commands a user runs.

generate → ingest → features (three training sets) → train + register (config files naming those sets)
→ score (snapshots) → keys → serve.
"""

from __future__ import annotations

from pathlib import Path

import typer

TASKS = ("arrears", "suspension", "theft")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def _run(args: list[str]) -> None:
    """Run one gridrisk command exactly as the shell would, so the demo prints what each command prints."""
    from rich.console import Console

    from gridrisk.cli import app

    Console().rule(f"[bold]gridrisk {' '.join(args)}")
    command = typer.main.get_command(app)
    try:
        # Without standalone mode click returns a command's exit code instead of exiting with it, and hands
        # usage errors (BadParameter …) back to the caller instead of printing them.
        code = command.main(args=args, prog_name="gridrisk", standalone_mode=False)
    except typer.TyperException as exc:  # typer's public base of click's usage errors (BadParameter …)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        code = getattr(exc, "exit_code", 1)
    except typer.Exit as exc:
        code = exc.exit_code
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, int) and code:
        stopped = f"`gridrisk {' '.join(args)}` exited with {code}"
        Console(stderr=True).print(f"[red]gridrisk demo stopped:[/red] {stopped}")
        raise typer.Exit(code)


def demo(
    customers: int = typer.Option(20_000, "--customers", help="size of the synthetic utility"),
    start: str = typer.Option("2023-11", "--start", help="first billing month"),
    months: int = typer.Option(36, "--months"),
    seed: int = typer.Option(42, "--seed"),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="end with the service running"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """Generate a synthetic utility, ingest it, build training sets, train and register the three models,
    score every customer and start the service."""
    import pandas as pd

    from gridrisk.commands import port_free_or_exit, tracking_server_or_exit
    from gridrisk.settings import load_settings

    settings = load_settings()
    tracking_server_or_exit(settings)  # before minutes of generating and building
    if serve:
        # Likewise: a busy port was found only after the whole run.
        port_free_or_exit(
            "127.0.0.1", port, "gridrisk demo", "choose another with --port N, or run with --no-serve"
        )
    home = settings.home
    warehouse = settings.warehouse_path
    export = home / "export"
    sets = home / "sets"
    configs = home / "configs"
    for folder in (export, sets, configs):
        folder.mkdir(parents=True, exist_ok=True)

    _run(
        [
            "generate",
            "--customers",
            str(customers),
            "--start",
            start,
            "--months",
            str(months),
            "--seed",
            str(seed),
            "--daily-days",
            "180",
            "--out",
            str(export),
        ]
    )
    _run(["ingest", str(export), "--warehouse", str(warehouse)])

    from rich.console import Console

    from training.config import load_config
    from training.experiment import resolve_as_of_dates
    from training.tasks import TrainingError

    for task in TASKS:
        out = sets / f"{task}.parquet"
        shipped = Path("experiments/configs") / f"{task}.toml"
        config = configs / f"{task}.toml"
        body = shipped.read_text(encoding="utf-8") if shipped.exists() else default_config_toml(task)
        config.write_text(_with_paths(body, warehouse, out), encoding="utf-8")
        # The config's own as-of dates, so `gridrisk train --task all` later rebuilds exactly this set.
        try:
            dates = resolve_as_of_dates(load_config(config), warehouse)
        except TrainingError as exc:  # e.g. a utility too short for the task's label window
            Console(stderr=True).print(f"[red]gridrisk demo stopped ({task}):[/red] {exc}", highlight=False)
            raise typer.Exit(1) from exc
        where = ["--warehouse", str(warehouse), "--out", str(out)]
        _run(["features", "--task", task, *_as_of_args(dates), *where])
        _run(["train", str(config)])

    served = _with_champion(settings.tracking_uri)
    if not served:
        Console(stderr=True).print("[red]gridrisk demo stopped:[/red] no task has a champion to score with")
        raise typer.Exit(1)
    for task in ["all"] if len(served) == len(TASKS) else served:
        _run(["score", "--task", task, "--warehouse", str(warehouse)])
    done = (
        "Everything is trained and scored."
        if len(served) == len(TASKS)
        else f"Every task is trained; scored: {', '.join(served)} (the others wait for a champion, above)."
    )

    station = pd.read_parquet(warehouse / "customers.parquet", columns=["station"])["station"].mode().iloc[0]
    _run(["keys", "create", "--role", "admin", "--note", "demo admin"])
    _run(
        [
            "keys",
            "create",
            "--role",
            "collector",
            "--station",
            str(station),
            "--note",
            f"demo collector {station}",
        ]
    )
    sign_in = (
        f"http://127.0.0.1:{port}/ and sign in with one of the keys above "
        f"(the collector key sees station {station} only)"
    )
    if serve:
        typer.echo(f"\nOpen {sign_in}. API docs: http://127.0.0.1:{port}/docs")
        _run(["serve", "--port", str(port)])
    else:
        typer.echo(f"\n{done} Start the service with `gridrisk serve --port {port}`, then open {sign_in}.")


def _with_champion(tracking_uri: str) -> list[str]:
    """The tasks whose model the gate promoted; for each other, what it kept and how to serve it anyway."""
    from rich.console import Console
    from rich.markup import escape

    from training.registry import CHALLENGER, CHAMPION, client_for, version_by_alias

    client, served = client_for(tracking_uri), []
    for task in TASKS:
        if version_by_alias(client, task, CHAMPION) is not None:
            served.append(task)
            continue
        challenger = version_by_alias(client, task, CHALLENGER)
        version = challenger.version if challenger is not None else "N"
        reason = (challenger.tags or {}).get("gate.reason", "") if challenger is not None else ""
        promote = f'(`gridrisk promote --task {task} --version {version} --reason "…"`) '  # unless said
        Console(stderr=True).print(
            f"[yellow]{task} is not scored:[/yellow] the gate kept version {version} as challenger "
            f"({escape(reason)}); its list and API answer 503 until it is promoted "
            f"{'' if 'gridrisk promote' in reason else promote}and scored (`gridrisk score --task {task}`)",
            highlight=False,
        )
    return served


def _as_of_args(dates: list) -> list[str]:
    """`features` options naming exactly these month ends: a range when they are consecutive months."""
    from itertools import pairwise

    import pandas as pd

    months = [pd.Timestamp(d).to_period("M") for d in dates]
    if all(b.ordinal - a.ordinal == 1 for a, b in pairwise(months)):
        return ["--as-of-range", f"{months[0]}:{months[-1]}"]
    return [arg for d in dates for arg in ("--as-of", f"{pd.Timestamp(d):%Y-%m-%d}")]


def default_config_toml(task: str) -> str:
    """`gridrisk train --task T`'s settings as a TOML file, for a demo run away from experiments/configs/."""
    import json

    from training.config import TASK_DEFAULTS

    lines = [f"task = {json.dumps(task)}"]
    for table, values in TASK_DEFAULTS.get(task, {}).items():
        lines += ["", f"[{table}]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    return "\n".join(lines) + "\n"


def _with_paths(config_text: str, warehouse: Path, training_set: Path) -> str:
    """The shipped experiment config, pointed at the demo's warehouse and prebuilt training set."""
    import tomllib

    lines = [
        line
        for line in config_text.splitlines()
        if line.split("=")[0].strip() not in ("warehouse", "training_set")
    ]
    head = [f'warehouse = "{warehouse.resolve()}"', f'training_set = "{training_set.resolve()}"']
    # top-level keys must precede the first [table]; insert after the leading comments and task line
    first_table = next((i for i, line in enumerate(lines) if line.startswith("[")), len(lines))
    text = "\n".join(lines[:first_table] + head + lines[first_table:]) + "\n"
    tomllib.loads(text)  # fail here, not in train, if the shipped config changed shape
    return text
