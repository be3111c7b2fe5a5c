"""The gridrisk CLI commands, one module per stage."""

from __future__ import annotations


def data_errors() -> tuple[type[Exception], ...]:
    """The errors that mean a warehouse or training set cannot feed the command (missing, empty, or breaking
    the as-of rule): a command prints them as a refusal, never as a traceback."""
    from features.labels import LabelError
    from features.point_in_time import PointInTimeError
    from features.sources import WarehouseError
    from features.training_set import TrainingSetError

    return (TrainingSetError, LabelError, WarehouseError, PointInTimeError)
