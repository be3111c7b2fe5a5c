"""CLI for the features stage: `gridrisk features --task T --as-of D … | --as-of-range A:B --out FILE`.

The work happens in `features/training_set.py`; this module parses options, shows progress and prints a
summary.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer


def month_ends(spec: str) -> list:
    """`2022-01:2023-12` → every month end from January 2022 to December 2023."""
    import pandas as pd

    parts = [part.strip() for part in spec.split(":")]
    try:
        if len(parts) != 2 or not all(re.fullmatch(r"\d{4}-\d{2}", part) for part in parts):
            raise ValueError(spec)  # pd.Period("") is NaT, not an error
        first, last = (pd.Period(part, "M") for part in parts)
    except ValueError as exc:
        raise typer.BadParameter(
            f"--as-of-range {spec!r} must look like 2022-01:2023-12 (YYYY-MM:YYYY-MM)"
        ) from exc
    if last < first:
        raise typer.BadParameter(
            f"--as-of-range {spec!r} ends before it starts; write the earlier month first"
        )
    return [p.to_timestamp(how="end").normalize() for p in pd.period_range(first, last, freq="M")]


def features_command(
    task: str = typer.Option(..., "--task", "-t", help="arrears | suspension | theft"),
    as_of: list[str] = typer.Option(None, "--as-of", help="an as-of date (YYYY-MM-DD); repeat for several"),
    as_of_range: str | None = typer.Option(
        None,
        "--as-of-range",
        help="every month end in a range, e.g. 2022-01:2023-12 (clipped to labelable dates)",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Parquet file to write (a .meta.json is written beside it)"
    ),
    warehouse: Path | None = typer.Option(
        None,
        "--warehouse",
        "-w",
        help="warehouse folder (default: $GRIDRISK_WAREHOUSE or $GRIDRISK_HOME/warehouse)",
    ),
    engine: str = typer.Option("local", "--engine", help="local (process pool) | spark (applyInPandas)"),
    scoring: bool = typer.Option(
        False, "--scoring", help="write a scoring frame (no label) for one --as-of instead of a training set"
    ),
    sample: float = typer.Option(
        1.0,
        "--sample",
        help="keep this share of the customers (a stable hash of the id) before the --whole-dates",
    ),
    whole_dates: int = typer.Option(
        3, "--whole-dates", min=0, help="with --sample: the latest N as-of dates (the test) keep everyone"
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, help="with --sample: another seed draws other customers (below 100,000,000)"
    ),
) -> None:
    """Build a point-in-time training set (features as of each date, label over the horizon after it)."""
    import datetime as dt
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from features.labels import first_bill_issued, latest_labelable_as_of
    from features.point_in_time import as_of_days
    from features.sample import SEED_LIMIT, sample_for
    from features.training_set import (
        TrainingSetError,
        build_scoring_frame,
        build_training_set,
        write_training_set,
    )
    from gridrisk.commands import clear_of_stores, data_errors, writable_output
    from gridrisk.settings import load_settings

    console = Console()
    errors = Console(stderr=True, soft_wrap=True)
    if not 0 < sample <= 1:
        raise typer.BadParameter(
            f"{sample} is not a share in (0, 1]; e.g. 0.25 keeps a quarter of the customers",
            param_hint="--sample",
        )
    if seed >= SEED_LIMIT:
        raise typer.BadParameter(f"{seed} is not below {SEED_LIMIT:,}", param_hint="--seed")
    writable_output(out, folder=False)
    settings = load_settings()
    target = warehouse if warehouse is not None else settings.warehouse_path
    if not Path(target).is_dir():
        raise typer.BadParameter(
            f"warehouse {target} does not exist or is not a folder; pass --warehouse DIR (or set "
            "GRIDRISK_WAREHOUSE) to a folder written by `gridrisk ingest` or `gridrisk generate`",
            param_hint="--warehouse",
        )
    clear_of_stores(out, warehouse=target, settings=settings)
    dates: list = list(as_of or [])
    try:
        if as_of_range:
            wanted = month_ends(as_of_range)
            if not scoring:
                latest = latest_labelable_as_of(target, task)
                kept = [d for d in wanted if d <= latest]
                if wanted and not kept:
                    last_month = (latest + dt.timedelta(days=1)).to_period("M") - 1  # its month end <= latest
                    raise TrainingSetError(
                        f"every month end of --as-of-range {as_of_range} is after {latest.date()}, the "
                        f"latest as-of whose {task} label window this warehouse fully observes: end the "
                        f"range by {last_month}, or load newer data"
                    )
                if len(kept) < len(wanted):
                    console.print(
                        f"{len(wanted) - len(kept)} month ends after {latest.date()} dropped: their {task} "
                        "label windows are not fully observed in this warehouse"
                    )
                wanted = kept
            first = first_bill_issued(target)  # a range is clipped at its start as at its end
            early = [d for d in wanted if first is not None and d.normalize() < first.normalize()]
            if early and len(early) < len(wanted):
                console.print(
                    f"{len(early)} month end{'s' if len(early) > 1 else ''} before {first.date()} dropped: "
                    "the warehouse's first bill was issued then: no customer has a billing history before it"
                )
                wanted = [d for d in wanted if d not in early]
            dates += wanted
        if not dates:
            raise TrainingSetError(
                "no as-of dates: pass --as-of YYYY-MM-DD (repeatable) or --as-of-range A:B"
            )
        started = time.perf_counter()
        if scoring:
            if len(dates) != 1:
                raise TrainingSetError(f"--scoring takes exactly one --as-of, got {len(dates)}")
            frame = build_scoring_frame(target, task, dates[0], engine=engine)
            out.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(out, index=False)
        else:
            with Progress(
                TextColumn(f"features {task}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,  # the summary follows; a refusal is not preceded by a stopped bar
                disable=not console.is_terminal,  # a log gets the summary, not a blank line
            ) as bar:
                job = bar.add_task("partitions", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(job, completed=done, total=total)

                days = as_of_days(dates)  # "2023-06-30 12:00" is the as-of day 2023-06-30, as in the build
                cut = sample_for(days, sample, seed, whole_dates)
                frame = build_training_set(target, task, dates, engine=engine, progress=progress, sample=cut)
            write_training_set(frame, out, task=task, warehouse=target)
        seconds = time.perf_counter() - started
    except data_errors() as exc:
        errors.print(f"[red]features refused:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    _print_summary(console, frame, out, seconds)


def _print_summary(console, frame, out: Path, seconds: float) -> None:
    from rich.table import Table

    console.print(f"wrote {out} ({len(frame):,} rows, {seconds:.1f} s) and {out.name}.meta.json")
    table = Table()
    table.add_column("as_of")
    table.add_column("rows", justify="right")
    if "label" in frame:
        table.add_column("positives", justify="right")
        table.add_column("label rate", justify="right")
        for as_of, group in frame.groupby("as_of"):
            table.add_row(
                str(as_of.date()),
                f"{len(group):,}",
                f"{int(group['label'].sum()):,}",
                f"{group['label'].mean():.2%}",
            )
    else:
        for as_of, group in frame.groupby("as_of"):
            table.add_row(str(as_of.date()), f"{len(group):,}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("features")(features_command)
