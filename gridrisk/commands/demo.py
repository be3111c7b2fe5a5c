"""CLI commands for the demo stage."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
