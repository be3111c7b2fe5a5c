"""The `gridrisk` command: one Typer app fronting ingest, features, training and serving.

Each command lives in `gridrisk/commands/` and imports its heavy stage lazily,
so `gridrisk --help` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from gridrisk import logs
from gridrisk.commands import demo, features, generate, ingest, london, serving, training

LOG_COLUMNS = 160  # the widest table (`gridrisk backtest`, four scorers) fits

app = typer.Typer(
    name="gridrisk",
    help="Calibrated, explained arrears, suspension and theft risk for power supply companies.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logs.configure(logging.DEBUG if verbose else logging.INFO)  # `serve` hands the same to its workers
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        # Rich draws 80 columns into a pipe or CI log, which cuts the metric tables to "0.…"; a log file
        # has no width to respect.
        os.environ["COLUMNS"] = str(LOG_COLUMNS)
    # MLflow's per-file tqdm bar ("Downloading artifacts: 11%|█ …") fills a log with carriage-return lines
    # every time a model loads; gridrisk's own progress bars say what is happening. Set it to true to see it.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


for module in (generate, ingest, features, training, serving, london, demo):
    module.register(app)
