"""Experiment configs: the TOML a data scientist edits (`experiments/configs/<task>.toml`), strictly checked.

Unknown keys are errors, so a typo never silently trains with a default. The resolved config is logged to
the MLflow run; `default_config(task)` is what `gridrisk train --task T` uses without a file.
"""

from __future__ import annotations

import math
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from features.sample import SEED_LIMIT
from training.tasks import Task, TrainingError, task_spec

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")  # "2022-13" would pass \d{2} and fail mid-run


class Strict(BaseModel):
    # inf and nan are refused: `lambda_l2 = inf` trained a constant model (ROC-AUC 0.5) and registered it.
    # Strict types: `num_leaves = "31"` and `enabled = "yes"` were coerced, so a quoted number or a word
    # for a switch trained as something the file does not say; a whole number is still a number
    # (`learning_rate = 1`).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class AsOfRange(Strict):
    """Month-end as-of dates from `start` to `end` (inclusive) every `step_months` months.

    `start = "auto"` (the default) is the month end `history_months` after the warehouse's first billing
    month, so every as-of date has that much bill history behind it whatever span the warehouse covers.
    `end = "latest"` means the latest month end whose label window the warehouse fully observes.
    `max_dates` keeps the latest N of them (36 by default), so a warehouse with a long tail of old bills does
    not stack a decade of months into one training set.
    """

    start: str = "auto"
    history_months: int = Field(default=6, ge=1, le=60)
    end: str = "latest"
    step_months: int = Field(default=1, ge=1, le=12)
    max_dates: int | None = Field(default=36, ge=1, description="keep only the latest N dates; none: all")
    # The day of the month the dates fall on. A model learns what its dates show: at a month end every bill
    # issued that month is past due, on the 10th most are not yet. Scored on another day, it meets customers
    # unlike those it learned from (an outside audit: 27 % of latest bills past due on a data end of the 10th,
    # 100 % at every month end), so train on the day you score on.
    day: int | Literal["end"] = "end"

    @field_validator("day")
    @classmethod
    def _day_in_every_month(cls, v: int | str) -> int | str:
        if v != "end" and not (isinstance(v, int) and 1 <= v <= 28):
            raise ValueError(f"as_of.day must be 1 to 28 (a day every month has) or 'end', got {v!r}")
        return v

    @property
    def day_of_month(self) -> int | None:
        return None if self.day == "end" else int(self.day)

    @field_validator("start")
    @classmethod
    def _start_is_month(cls, v: str) -> str:
        if v != "auto" and not MONTH.match(v):
            raise ValueError(f"as_of.start must be YYYY-MM or 'auto', got {v!r}")
        return v

    @field_validator("end")
    @classmethod
    def _end_is_month(cls, v: str) -> str:
        if v != "latest" and not MONTH.match(v):
            raise ValueError(f"as_of.end must be YYYY-MM or 'latest', got {v!r}")
        return v


class SplitConfig(Strict):
    """By as-of date, never randomly. Test takes the latest `test_dates` as-of dates. `scheme = "holdout"`:
    validation takes the latest `validation_dates` whose label windows end before the first test date, train
    everything whose label windows end before the first validation date. `scheme = "purged_kfold"`: every date
    whose label window ends before the test is for development, in `folds` contiguous validation blocks
    (training/split.py). `gap_days` defaults to the task's label window."""

    scheme: Literal["holdout", "purged_kfold"] = "holdout"
    validation_dates: int = Field(default=3, ge=1, description="holdout only")
    folds: int = Field(default=3, ge=2, le=12, description="purged_kfold only")
    test_dates: int = Field(default=3, ge=1)
    gap_days: int | None = Field(default=None, ge=0, le=3650)  # ten years; more overflows the date arithmetic


class LightGBMConfig(Strict):
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=15, ge=2, le=131072)  # LightGBM's own ceiling
    max_depth: int = Field(default=5, ge=-1, description="-1 = unlimited")
    min_child_samples: int = Field(default=40, ge=1)
    feature_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_freq: int = Field(default=1, ge=0)
    lambda_l2: float = Field(default=1.0, ge=0)
    min_gain_to_split: float = Field(default=0.0, ge=0)
    scale_pos_weight: float = Field(
        default=1.0, gt=0, description="1 = no reweighting (keeps probabilities honest)"
    )
    num_boost_round: int = Field(default=400, ge=1)
    early_stopping_rounds: int = Field(default=40, ge=1)
    # 100,000 threads crashed the process (a segfault) and left its MLflow run RUNNING for good.
    num_threads: int = Field(
        default=2, ge=1, le=1024, description="fixed so results do not depend on the machine"
    )
    # LightGBM's seeds are C ints, and the logistic baseline's may not be negative.
    seed: int = Field(default=42, ge=0, le=2**31 - 1)

    @field_validator("max_depth")
    @classmethod
    def _depth_zero_is_not_a_depth(cls, v: int) -> int:
        if v == 0:  # LightGBM reads any depth <= 0 as no limit, which a 0 does not say
            raise ValueError(
                "max_depth = 0 would grow trees without a depth limit; write -1 for unlimited, or a depth of "
                "1 or more"
            )
        return v


class SearchConfig(Strict):
    """Optional Optuna search; each trial is a nested MLflow run, scored by validation ROC-AUC."""

    enabled: bool = False
    n_trials: int = Field(default=20, ge=1)
    timeout_seconds: float | None = Field(default=None, gt=0)


class CalibrationConfig(Strict):
    method: Literal["isotonic", "platt", "none"] = "isotonic"


PRIMARY_FRACTION = 0.05  # every task's primary metric and its gate read the top 5 % (training/tasks.py)


class EvaluationConfig(Strict):
    station_capacity: int = Field(default=10, ge=1, description="visits per station per as-of list")
    top_fractions: tuple[float, ...] = Field(default=(0.01, 0.05), strict=False)  # a TOML array is a list
    min_segment_rows: int = Field(default=50, ge=1, description="smaller segments are not scored")

    @field_validator("top_fractions")
    @classmethod
    def _fractions_of_the_list(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        outside = [f for f in v if not 0 < f <= 1]
        if outside:
            raise ValueError(f"each top fraction is a share in (0, 1], got {outside}; e.g. [0.01, 0.05]")
        if PRIMARY_FRACTION not in v:
            raise ValueError(
                f"top_fractions {list(v)} lacks {PRIMARY_FRACTION}: the primary metric and the gate read the "
                f"top 5 %; keep {PRIMARY_FRACTION} in the list, e.g. [0.01, 0.05]"
            )
        return v


AUC_TOLERANCE_LIMIT = 0.5  # a ROC-AUC drop of half the scale leaves no floor above chance


class GateConfig(Strict):
    """Challenger -> champion only if primary >= champion's + margin (> when the margin is 0) and
    AUC >= champion's - tolerance."""

    # Both metrics are shares: a margin above 1 could never be met, so no challenger would ever be promoted.
    primary_margin: float = Field(default=0.005, ge=0, le=1)
    auc_tolerance: float = Field(default=0.005, ge=0, le=1)

    @field_validator("auc_tolerance")
    @classmethod
    def _tolerance_keeps_a_floor(cls, v: float) -> float:
        # 1.0 was accepted and gave a floor of -0.148: no floor at all. A challenger below chance (0.5) is
        # never promoted, so a tolerance of 0.5 or more would let any ranking through.
        if v >= AUC_TOLERANCE_LIMIT:
            raise ValueError(
                f"gate.auc_tolerance = {v:g} would let the challenger's ROC-AUC fall {v:g} below the "
                f"champion's, to a floor at or below chance; keep it under {AUC_TOLERANCE_LIMIT:g} "
                "(default 0.005)"
            )
        return v


class SampleConfig(Strict):
    """Train on a share of the customers when the full training set would not fit in memory."""

    customers: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="share of customers kept before the test dates (all of them at the test dates)",
    )
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT, description="another seed draws other customers")


def gap_message(gap: int, task: str, window: int) -> str:
    return (
        f"split.gap_days = {gap} is shorter than the {task} label window ({window} days): training labels "
        "would overlap the next part's as-of dates; remove gap_days or raise it"
    )


class ExperimentConfig(Strict):
    # A TOML file gives these as strings: the task's name and paths.
    task: Task = Field(strict=False)
    warehouse: Path | None = Field(default=None, strict=False, description="default: GRIDRISK_WAREHOUSE")
    training_set: Path | None = Field(
        default=None, strict=False, description="a prebuilt `gridrisk features` Parquet"
    )
    as_of: AsOfRange = AsOfRange()
    split: SplitConfig = SplitConfig()
    lightgbm: LightGBMConfig = LightGBMConfig()
    search: SearchConfig = SearchConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    gate: GateConfig = GateConfig()
    sample: SampleConfig = SampleConfig()
    register_model: bool = Field(default=True, description="register the model and run the gate")
    # The config before the command line changed it (`with_overrides`), and what it changed: a run logs the
    # first as `config/as_written.json` and the second as `config/overrides.json`.
    _written: dict[str, Any] | None = PrivateAttr(default=None)
    _overrides: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _range_ordered(self) -> ExperimentConfig:
        fixed = self.as_of.end != "latest" and self.as_of.start != "auto"
        if fixed and self.as_of.end < self.as_of.start:
            raise ValueError(f"as_of.end {self.as_of.end} is before as_of.start {self.as_of.start}")
        return self

    @model_validator(mode="after")
    def _gap_covers_the_label(self) -> ExperimentConfig:
        """Checked here, before a training set is built, and again where the split is made."""
        window = task_spec(self.task).label_window_days
        if self.split.gap_days is not None and self.split.gap_days < window:
            raise ValueError(gap_message(self.split.gap_days, self.task.value, window))
        return self

    def resolved(self) -> dict[str, Any]:
        """A plain dict (paths as strings) for logging to MLflow."""
        return self.model_dump(mode="json")

    def as_written(self) -> dict[str, Any]:
        """The config as the file (or the task's defaults) gave it, before any command-line override."""
        return self._written if self._written is not None else self.resolved()

    def overrides(self) -> dict[str, Any]:
        """What the command line changed (`--warehouse`, `--search`, `--trials`, `--sample`), by key."""
        return dict(self._overrides)


def with_overrides(config: ExperimentConfig, **changes: Any) -> ExperimentConfig:
    """`config` with command-line values in place of its own, checked by the config's rules; a section's keys
    are merged into it (`search={"n_trials": 5}`), a None value changes nothing. The config as written and
    every override so far are kept (`as_written`, `overrides`)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return config
    raw = config.model_dump(mode="json")
    for key, value in changes.items():
        section = isinstance(value, dict) and isinstance(raw.get(key), dict)
        raw[key] = {**raw[key], **value} if section else value
    out = _validate(raw, "with the command-line options")
    out._written = config.as_written()
    done = {**config._overrides}
    for key, value in changes.items():
        if isinstance(value, dict):
            done.update({f"{key}.{k}": _plain(v) for k, v in value.items()})
        else:
            done[key] = _plain(value)
    out._overrides = done
    return out


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def load_config(path: Path, **overrides: Any) -> ExperimentConfig:
    """Read and validate an experiment TOML; `overrides` (e.g. warehouse=...) replace top-level keys."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainingError(f"experiment config {path} does not exist; see experiments/configs/") from None
    except IsADirectoryError:
        raise TrainingError(
            f"experiment config {path} is a folder; name a TOML file in it, e.g. "
            "experiments/configs/arrears.toml"
        ) from None
    except UnicodeDecodeError as exc:
        raise TrainingError(
            f"experiment config {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise TrainingError(f"cannot read experiment config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TrainingError(f"experiment config {path} is not valid TOML: {exc}") from exc
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return _validate(raw, str(path))


# Where a task's shipped config departs from the class defaults, `--task T` without a file departs too.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    # see experiments/configs/suspension.toml
    "suspension": {"as_of": {"history_months": 3}, "split": {"scheme": "purged_kfold"}},
    "theft": {"split": {"scheme": "purged_kfold"}},  # see experiments/configs/theft.toml
}


def default_config(task: str | Task, **overrides: Any) -> ExperimentConfig:
    try:
        name = str(Task(task))
    except ValueError:
        tasks = ", ".join(t.value for t in Task)
        raise TrainingError(f"task {task!r} is unknown; the tasks are {tasks}") from None
    raw: dict[str, Any] = {"task": name, **TASK_DEFAULTS.get(name, {})}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return _validate(raw, f"defaults for {task}")


def config_from_dict(raw: dict[str, Any], where: str) -> ExperimentConfig:
    """A config from its logged JSON (`config/resolved.json` of a run), checked as a file is."""
    return _validate(dict(raw), where)


def _validate(raw: dict[str, Any], where: str) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        # A check across keys has no location and names its keys itself; pydantic's "Value error, " says
        # nothing to the reader.
        problems = "; ".join(
            (f"{'.'.join(str(p) for p in e['loc'])}: " if e["loc"] else "") + _problem(e)
            for e in exc.errors()
        )
        raise TrainingError(f"experiment config {where} is invalid: {problems}") from exc


def _problem(error: Any) -> str:
    """What is wrong with one value, in the TOML's words rather than pydantic's ("Input should be a valid
    tuple", "instance of LightGBMConfig")."""
    value, kind, where = error.get("input"), error["type"], tuple(error["loc"])
    if isinstance(value, date):  # TOML reads an unquoted 2023-01-01 as a date
        if where[:1] == ("as_of",):
            return f'{value} is a TOML date; write the month as a quoted string, "{value:%Y-%m}"'
        return f"{value} is a TOML date, which this key does not take"
    if kind in ("model_type", "dict_type"):
        return f"must be a table of keys ([{where[-1]}] and the keys under it), got {value!r}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list in square brackets, e.g. [{value}], got {value!r}"
    if kind in ("int_type", "float_type", "bool_type", "string_type"):
        what = {
            "int_type": "a whole number",
            "float_type": "a number",
            "bool_type": "true or false",
            "string_type": "a quoted string",
        }[kind]
        if not isinstance(value, str):
            return f"must be {what}, got {value!r}"
        unquoted = kind != "string_type" and _reads_as(value.strip(), kind)
        return f'must be {what}, got "{value}"' + (" (in quotes: write it without them)" if unquoted else "")
    return error["msg"].removeprefix("Value error, ")


def _reads_as(text: str, kind: str) -> bool:
    """Whether `text`, written without its quotes, would be the value the key takes."""
    if kind == "bool_type":
        return text in ("true", "false")
    try:
        number = float(text) if kind == "float_type" else int(text)
    except ValueError:
        return False
    return math.isfinite(number)  # "inf" and "nan" are refused unquoted too
