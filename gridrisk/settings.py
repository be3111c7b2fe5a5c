"""Runtime settings for every entry point, read from GRIDRISK_* variables (and MLflow's own).

One settings class: the service's (`serving.settings.ServingSettings`: home, warehouse, tracking URI,
snapshots, keys) plus what only the front door needs. Built in the entry points, never at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic_settings import BaseSettings

from serving.settings import ServingSettings


class Settings(ServingSettings):
    @property
    def artifact_root(self) -> Path:
        """Where the embedded MLflow store keeps run artifacts and models."""
        return (self.home / "mlartifacts").resolve()


def load_settings() -> Settings:
    """The settings, or exit code 2 naming the bad GRIDRISK_* variable (as `gridrisk score` does), the model
    name prefix included: `serve` and `score` started with `GRIDRISK_MODEL_PREFIX="Bad Prefix!"` and looked
    for `gridrisk-Bad Prefix!-arrears`."""
    import typer

    from training.registry import model_prefix_error

    settings = settings_or_exit(Settings, "GRIDRISK_")
    wrong = model_prefix_error()
    if wrong is not None:
        typer.echo(f"invalid GRIDRISK_MODEL_PREFIX in the environment: {wrong}", err=True)
        raise typer.Exit(2)
    return settings


S = TypeVar("S", bound=BaseSettings)


def settings_or_exit(kind: type[S], prefix: str) -> S:
    """`kind` built from the environment, or one line per bad variable (`prefix` + its field name) and exit
    code 2, without pydantic's error types and help links."""
    import typer
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return kind()
    except ValidationError as exc:
        for error in exc.errors():
            name = prefix + "_".join(str(part) for part in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            typer.echo(f"invalid {name} in the environment: {message}", err=True)
        raise typer.Exit(2) from exc
    except SettingsError as exc:
        typer.echo(f"invalid {prefix}* setting in the environment: {exc}", err=True)
        raise typer.Exit(2) from exc
