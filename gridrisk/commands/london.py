"""CLI for real London smart-meter data: `gridrisk import london` and `gridrisk benchmark london-theft`.

The importer lives in `features/london.py`, the benchmark in `training/london_benchmark.py`; both load lazily.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

import_app = typer.Typer(help="Import real exports into a warehouse.", no_args_is_help=True)
benchmark_app = typer.Typer(help="Benchmarks on real data.", no_args_is_help=True)


@import_app.command("london")
def import_london_command(
    src: Path = typer.Argument(..., help="folder laid out like shared/data/london-smart-meters (read only)"),
    out: Path = typer.Option(..., "--out", help="warehouse folder to write the contract tables into"),
    seed: int = typer.Option(0, "--seed", help="seed of the synthetic 台区 grouping and technical losses"),
) -> None:
    """Turn the Low Carbon London daily files into contract tables (no theft injected)."""
    from rich.console import Console
    from rich.table import Table

    from features.london import LondonError, import_london

    console = Console()
    try:
        with console.status(f"importing {src}"):
            summary = import_london(src, out, seed=seed)
    except LondonError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    table = Table(title=f"London import → {out}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.as_dict().items():
        if key in ("thieves", "inspections"):
            continue
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)


@benchmark_app.command("london-theft")
def benchmark_london_theft_command(
    train: Path = typer.Option(
        ..., "--train", help="London source folder to train on (70 % of it without --test)"
    ),
    test: Path | None = typer.Option(None, "--test", help="a different London source folder to evaluate on"),
    seed: int = typer.Option(0, "--seed", help="seed of the split, the injection and the model"),
    json_out: Path | None = typer.Option(None, "--json", help="write the figures to this JSON file"),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="keep the injected warehouses here (default: temp)"
    ),
    experiment: str = typer.Option("gridrisk-london-theft", "--experiment", help="MLflow experiment name"),
) -> None:
    """Import, inject theft, build theft features, train, evaluate on held-out households, log to MLflow."""
    from rich.console import Console

    from features.london import LondonError
    from gridrisk.settings import load_settings
    from training.london_benchmark import BenchmarkError, render_result, run_benchmark

    console = Console()
    settings = load_settings()
    try:
        result = run_benchmark(
            train,
            test,
            seed=seed,
            workdir=workdir,
            tracking_uri=settings.tracking_uri,
            artifact_root=settings.artifact_root,
            experiment=experiment,
            progress=lambda msg: console.log(msg),
        )
    except (LondonError, BenchmarkError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    console.print(render_result(result))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.figures(), indent=1))
        console.print(f"figures written to {json_out}")


@benchmark_app.command("london-theft-summary")
def benchmark_london_theft_summary_command(
    files: list[Path] = typer.Argument(..., help="--json files of `benchmark london-theft`, one per seed"),
) -> None:
    """Mean ± sd over seeds of the London theft figures, as a Markdown table (for the report)."""
    from training.london_benchmark import breakdown_markdown, load_documents, summary_markdown

    documents = load_documents(files)
    typer.echo(summary_markdown(documents))
    hard = breakdown_markdown(documents)
    if hard:
        typer.echo("\n" + hard)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
    app.add_typer(benchmark_app, name="benchmark")
