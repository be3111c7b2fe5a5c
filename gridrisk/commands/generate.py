"""CLI for the synthetic utility: `gridrisk generate --customers N --out DIR [...]`.

The work happens in `features/synthetic/`; this module parses options, shows progress and prints the summary.
"""

from __future__ import annotations

from pathlib import Path

import typer


def generate_command(
    customers: int = typer.Option(50_000, "--customers", "-n", help="number of customer accounts"),
    start: str = typer.Option("2021-01", "--start", help="first billing month, YYYY-MM"),
    months: int = typer.Option(36, "--months", help="number of billing months"),
    seed: int = typer.Option(0, "--seed", help="random seed; the same seed gives byte-identical files"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="output folder (default: $GRIDRISK_WAREHOUSE or $GRIDRISK_HOME/warehouse)"
    ),
    daily_days: int | None = typer.Option(
        None, "--daily-days", help="daily meter readings for the last D days of the span (default: none)"
    ),
    faults: bool = typer.Option(
        False, "--faults", help="inject data-quality faults, listed row by row in OUT/truth/faults.parquet"
    ),
) -> None:
    """Write a synthetic utility: the contract tables as Parquet plus truth/ (true theft, latent stress and
    the per-month event probabilities, for oracle ceilings). The folder is usable directly as a warehouse."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from features.synthetic import GeneratorConfig, GeneratorError, generate
    from gridrisk.commands import writable_output
    from gridrisk.settings import load_settings

    console = Console()
    try:
        config = GeneratorConfig(
            customers=customers, start=start, months=months, seed=seed, daily_days=daily_days, faults=faults
        ).validated()
    except GeneratorError as exc:
        Console(stderr=True).print(f"[red]generate refused:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    # After the settings: a refused run leaves no empty warehouse folder behind.
    target = writable_output(out if out is not None else load_settings().warehouse_path, folder=True)
    with Progress(
        TextColumn("generating customers"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("generate", total=customers)
        summary = generate(config, target, progress=lambda done, total: bar.update(task, completed=done))
    _print_summary(console, summary, config)


def _print_summary(console, summary, config) -> None:
    from rich.table import Table

    rows = Table(title=f"gridrisk generate → {summary.out}")
    rows.add_column("table")
    rows.add_column("rows", justify="right")
    for name, n in summary.rows.items():
        rows.add_row(name, f"{n:,}")
    console.print(rows)
    facts = summary.facts
    console.print(
        f"{config.customers:,} customers × {config.months} months from {config.start}, seed {config.seed}: "
        f"{int(facts.get('two_part_customers', 0)):,} two-part, {int(facts.get('suspension_spells', 0)):,} "
        f"suspensions/reductions, {int(facts.get('thieves', 0)):,} thieves of whom "
        f"{int(facts.get('thieves_found', 0)):,} found in {int(facts.get('inspections', 0)):,} inspections"
    )
    if summary.faults:
        faults = Table(title="injected faults (truth/faults.parquet)")
        faults.add_column("kind")
        faults.add_column("rows", justify="right")
        for kind, n in summary.faults.items():
            faults.add_row(kind, f"{n:,}")
        console.print(faults)
    console.print(f"done in {summary.seconds:.1f} s")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)
