"""The `gridrisk` command: one Typer app fronting ingest, features, training and serving.

Each command lives in `gridrisk/commands/` and imports its heavy stage lazily,
so `gridrisk --help` stays fast.
"""

from __future__ import annotations

import logging

import typer

from gridrisk.commands import demo, features, generate, ingest, london, serving, training

app = typer.Typer(
    name="gridrisk",
    help="Calibrated, explained arrears, suspension and theft risk for power supply companies.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("mlflow", "alembic", "urllib3", "py4j", "httpx", "numba", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


for module in (generate, ingest, features, training, serving, london, demo):
    module.register(app)
