"""CLI for the ingest stage: `gridrisk ingest SOURCE --warehouse WH [--column-map FILE] [--now WHEN]
[--timezone ZONE]`.

The work happens in `features/ingest.py`; this module parses options and prints the summary."""

from __future__ import annotations

from pathlib import Path

import typer


def ingest_command(
    source: Path | None = typer.Argument(
        None, help="an export file (bills.csv, 电费账单.xlsx, …) or a folder of them"
    ),
    warehouse: Path | None = typer.Option(
        None,
        "--warehouse",
        "-w",
        help="warehouse folder (default: $GRIDRISK_WAREHOUSE or $GRIDRISK_HOME/warehouse)",
    ),
    column_map: Path | None = typer.Option(
        None,
        "--column-map",
        help="TOML mapping of file names, headers and values, added on top of the default",
    ),
    now: str | None = typer.Option(
        None,
        "--now",
        help="the moment of the ingest, YYYY-MM-DD[THH:MM:SS] UTC (default: the clock); dates of things that "
        "have happened may not be later (+1 day). Set it to re-ingest an archive as of its export day",
    ),
    timezone: str | None = typer.Option(
        None,
        "--timezone",
        help="the warehouse's local time zone (IANA name): a time written with a UTC offset (…+08:00, …Z) or "
        "a Parquet timestamp with a zone is stored as this zone's wall clock; times without one are local. "
        "Recorded at the warehouse's first ingest (WH/timezone.txt) and the default after it; another zone "
        "is refused [default: the warehouse's, else Asia/Shanghai]",
    ),
    contract: bool = typer.Option(
        False, "--contract", help="print the data contract with the default Chinese headers, then exit"
    ),
) -> None:
    """Validate exports against the data contract and upsert them; rejected rows go to WH/quarantine/.

    Exit code 2 when a file is unusable as a whole (missing required column, unreadable, wrong encoding), or
    the warehouse's own table is (not the contract's schema, a primary key stored twice).
    """
    from rich.console import Console
    from rich.markup import escape

    from features.column_maps.mapping import ColumnMap
    from features.ingest import contract_markdown, ingest
    from features.sources import WarehouseError
    from features.validation import ContractError
    from gridrisk.settings import load_settings

    console = Console()
    errors = Console(stderr=True, soft_wrap=True)
    try:
        if contract:
            typer.echo(contract_markdown(ColumnMap.load(column_map)))
            return
        if source is None:
            raise ContractError("no SOURCE given; pass an export file or a folder of them")
        target = warehouse if warehouse is not None else load_settings().warehouse_path
        with console.status(f"ingesting {source} into {target}") as status:
            report = ingest(
                source, target, column_map=column_map, now=now, progress=status.update, timezone=timezone
            )
    except (ContractError, WarehouseError) as exc:
        errors.print(f"[red]ingest refused:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    _print_report(console, report)


# Ignored columns named in the summary, in file order; the rest are counted.
IGNORED_SHOWN = 20


def _print_report(console, report) -> None:
    """Counts per table, quarantined rows per rule, and notes; file names and messages print verbatim."""
    from rich.markup import escape
    from rich.table import Table

    from features.validation import FUTURE_TOLERANCE

    table = Table(title=escape(f"ingest {report.source} → {report.warehouse}"))
    table.add_column("table")
    for name in ("read", "accepted", "new", "updated", "unchanged", "quarantined"):
        table.add_column(name, justify="right")
    for part in report.tables.values():
        table.add_row(
            part.table,
            *(f"{n:,}" for n in (part.rows_read, part.accepted, part.new, part.updated, part.unchanged)),
            f"[yellow]{part.quarantined:,}[/yellow]" if part.quarantined else "0",
        )
    console.print(table)
    if report.now_declared:
        console.print(
            f"ingest moment {report.now:%Y-%m-%d}: the day after the generated export's own export_at "
            "(truth/manifest.json), later than the clock; --now overrides"
        )
    if report.timezone_recorded:
        console.print(
            f"times are {report.timezone} wall clock, recorded in "
            + escape(str(report.warehouse / "timezone.txt"))
        )
    mark = "[green]✓[/green]" if report.balanced else "[red]✗[/red]"
    console.print(
        f"{mark} {report.rows_read:,} rows read = {report.accepted:,} accepted + "
        f"{report.quarantined:,} quarantined"
    )
    if report.skipped_files:
        # Said here, not at the end: a file left out is a table's rows missing if its name was mistyped.
        console.print(
            escape(
                f"⚠ {len(report.skipped_files)} file(s) in {report.source} not read (no contract table in "
                f"the name, or a type not read): {', '.join(report.skipped_files)}"
            ),
            style="yellow",
        )
    if report.quarantined:
        rules = Table(title="quarantined rows by rule")
        for name, justify in (
            ("table", "left"),
            ("rule", "left"),
            ("rows", "right"),
            ("where (first rows)", "left"),
            ("first message", "left"),
        ):
            rules.add_column(name, justify=justify)
        for part in report.tables.values():
            for rule, n in sorted(part.by_rule.items()):
                where = _where(part.where.get(rule, []), n)
                rules.add_row(part.table, rule, f"{n:,}", escape(where), escape(part.examples.get(rule, "")))
        console.print(rules)
        if any(part.by_rule.get("future") for part in report.tables.values()):
            console.print(
                f"future: dated after {report.now + FUTURE_TOLERANCE:%Y-%m-%d %H:%M} (the ingest moment "
                f"{report.now:%Y-%m-%d %H:%M} UTC + {FUTURE_TOLERANCE.days} day; --now sets the moment)"
            )
        added = sum(p.quarantine_added for p in report.tables.values())
        console.print(
            escape(f"quarantine: {report.warehouse / 'quarantine'}/<table>.parquet")
            + f" — {added:,} new record(s); each keeps the original values and names its file (_source), "
            "row (_row), column, rule and the run that first quarantined it (_ingested_at)"
        )
    console.print(escape(f"files read: {', '.join(_files_read(report))}"), style="dim")
    for part in report.tables.values():
        if part.extra_columns:
            # A wide export (5,000 indicator columns) printed 60 kB of names here.
            shown = ", ".join(part.extra_columns[:IGNORED_SHOWN])
            more = len(part.extra_columns) - IGNORED_SHOWN
            console.print(
                escape(
                    f"{part.table}: ignored columns not in the contract: {shown}"
                    + (f" … and {more:,} more" if more > 0 else "")
                )
            )
        for note in part.notes:
            console.print(escape(f"{part.table}: {note}"), style="yellow")
    if report.truth_files:
        console.print(
            escape(f"copied {report.truth_files} ground-truth file(s) to {report.warehouse / 'truth'}")
        )


def _where(shown: list[str], rows: int) -> str:
    """A rule's first rows in one cell: 电费账单.csv line 5: kwh '-7'; lines 6, 9 … A later row on another
    column than the first names it (line 6: amount_due); rows on one column share it (lines 6, 9: amount_due).
    """
    first, *rest = shown or [""]
    # "line 6: amount_due" -> ("line 6", ": ", "amount_due"); "line 9" -> ("line 9", "", "")
    places = [entry.partition(": ") for entry in rest]
    kinds = {(place.split(" ", 1)[0], column) for place, _, column in places}
    if len(rest) > 1 and len(kinds) == 1 and next(iter(kinds))[0] in {"row", "line"}:
        unit, column = kinds.pop()
        rows_named = ", ".join(place.split(" ", 1)[1] for place, _, _ in places)
        rest = [f"{unit}s {rows_named}" + (f": {column}" if column else "")]
    return "; ".join([first, *rest]) + (" …" if rows > len(shown) else "")


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_command)


def _files_read(report) -> list[str]:  # type: ignore[no-untyped-def]
    """The files read, a table folder's parts as one entry (`bills/ (83 Parquet parts)`): a Spark export of
    36 months holds hundreds of them, and quarantine records name each by its path."""
    shown: dict[str, int] = {}
    for part in report.tables.values():
        for name in part.files:
            folder = name.split("/", 1)[0] + "/" if "/" in name else name
            shown[folder] = shown.get(folder, 0) + 1
    return [
        f"{name} ({count:,} Parquet part{'s' if count > 1 else ''})" if name.endswith("/") else name
        for name, count in shown.items()
    ]
