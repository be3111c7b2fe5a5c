"""Experiment TOML: the shipped configs load; unknown keys and bad values are refused with the key's path."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import default_config, load_config
from training.tasks import TrainingError

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"


@pytest.mark.parametrize("task", ["arrears", "suspension", "theft"])
def test_shipped_configs_load(task: str) -> None:
    config = load_config(CONFIGS / f"{task}.toml")
    assert config.task.value == task
    assert config.lightgbm.num_threads >= 1


def test_warehouse_override_wins(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "arrears.toml", warehouse=tmp_path)
    assert config.warehouse == tmp_path
    # The shipped configs name no warehouse: the command falls back to GRIDRISK_WAREHOUSE / GRIDRISK_HOME.
    assert load_config(CONFIGS / "arrears.toml", warehouse=None).warehouse is None


@pytest.mark.parametrize(
    "text, where",
    [
        ('task = "arrears"\nlearning_rate = 0.1\n', "learning_rate"),  # a LightGBM key at the top level
        ('task = "arrears"\n[lightgbm]\nnum_leafs = 31\n', "lightgbm.num_leafs"),  # a typo
        ('task = "arrears"\n[split]\ntest_dates = 0\n', "split.test_dates"),  # out of range
        ('task = "fraud"\n', "task"),  # not a task
        ('task = "arrears"\n[as_of]\nstart = "2022/01"\n', "as_of.start"),  # not YYYY-MM
        ('task = "arrears"\n[as_of]\nstart = "2022-13"\n', "as_of.start"),  # no 13th month (was a traceback)
        ('task = "arrears"\n[as_of]\nend = "2023-00"\n', "as_of.end"),
        # Not shares of a list (0 selects nobody); and without 0.05 the primary metric and the gate had no
        # number to read: the whole run trained, then failed on a KeyError at the gate.
        ('task = "arrears"\n[evaluation]\ntop_fractions = [0, 1.5]\n', "evaluation.top_fractions"),
        ('task = "arrears"\n[evaluation]\ntop_fractions = [0.01]\n', "evaluation.top_fractions"),
        ('task = "arrears"\n[calibration]\nmethod = "beta"\n', "calibration.method"),
        ('task = "arrears"\n[sample]\ncustomers = 0\n', "sample.customers"),  # nobody to learn from
        ('task = "arrears"\n[sample]\ncustomers = 1.5\n', "sample.customers"),
        ('task = "arrears"\n[sample]\nseed = 100000000\n', "sample.seed"),  # the hash key takes 8 digits
        # A gap shorter than the label window was found only when the split was made: after the training
        # set had been built, minutes on a province.
        ('task = "theft"\n[split]\ngap_days = 30\n', "split.gap_days = 30 is shorter than the theft label"),
        # Accepted by the config, then a traceback mid-run (the baseline's seed, LightGBM's leaf ceiling, a
        # date overflow) or a segfault that left the MLflow run RUNNING (100,000 threads).
        ('task = "arrears"\n[lightgbm]\nseed = -1\n', "lightgbm.seed"),
        ('task = "arrears"\n[lightgbm]\nseed = 99999999999\n', "lightgbm.seed"),
        ('task = "arrears"\n[lightgbm]\nnum_leaves = 200000\n', "lightgbm.num_leaves"),
        ('task = "arrears"\n[lightgbm]\nnum_threads = 100000\n', "lightgbm.num_threads"),
        ('task = "arrears"\n[split]\ngap_days = 100000\n', "split.gap_days"),
        # A constant model (ROC-AUC 0.5) registered; a margin no metric can reach.
        ('task = "arrears"\n[lightgbm]\nlambda_l2 = inf\n', "lightgbm.lambda_l2"),
        ('task = "arrears"\n[lightgbm]\nscale_pos_weight = nan\n', "lightgbm.scale_pos_weight"),
        ('task = "arrears"\n[gate]\nprimary_margin = 5\n', "gate.primary_margin"),
        # A tolerance of 1 was accepted and gave a ROC-AUC floor of -0.148: no floor at all.
        (
            'task = "arrears"\n[gate]\nauc_tolerance = 1.0\n',
            "gate.auc_tolerance: gate.auc_tolerance = 1 would let the challenger's ROC-AUC fall 1 below",
        ),
        ('task = "arrears"\n[gate]\nauc_tolerance = 0.5\n', "keep it under 0.5"),
        # Coerced, so what trained was not what the file said: a quoted number, a word for a switch, a depth
        # of 0 that LightGBM reads as unlimited (the config's unlimited is -1).
        (
            'task = "arrears"\n[lightgbm]\nnum_leaves = "31"\n',
            'lightgbm.num_leaves: must be a whole number, got "31" (in quotes: write it without them)',
        ),
        (
            'task = "arrears"\n[lightgbm]\nnum_leaves = 31.0\n',
            "lightgbm.num_leaves: must be a whole number, got 31.0",
        ),
        ('task = "arrears"\n[search]\nenabled = "yes"\n', 'search.enabled: must be true or false, got "yes"'),
        ('task = "arrears"\n[search]\nenabled = 1\n', "search.enabled: must be true or false, got 1"),
        ('task = "arrears"\n[lightgbm]\nlearning_rate = "0.1"\n', "lightgbm.learning_rate: must be a number"),
        ('task = "arrears"\nregister_model = "false"\n', "register_model: must be true or false"),
        (
            'task = "arrears"\n[lightgbm]\nmax_depth = 0\n',
            "lightgbm.max_depth: max_depth = 0 would grow trees without a depth limit; write -1 for",
        ),
        ('task = "arrears"\n[as_of]\nday = 31\n', "as_of.day: as_of.day must be 1 to 28"),
        ('task = "arrears"\n[as_of]\nday = "10"\n', "as_of.day"),
        # Pydantic's own words ("Input should be a valid tuple", "instance of LightGBMConfig") said nothing.
        (
            'task = "arrears"\n[evaluation]\ntop_fractions = 0.05\n',
            "evaluation.top_fractions: must be a list in square brackets, e.g. [0.05]",
        ),
        (
            'task = "arrears"\nlightgbm = 5\n',
            "lightgbm: must be a table of keys ([lightgbm] and the keys under it), got 5",
        ),
        (
            'task = "arrears"\n[as_of]\nstart = 2023-01-01\n',
            'as_of.start: 2023-01-01 is a TOML date; write the month as a quoted string, "2023-01"',
        ),
        # A reviewer's: the month hint for a seed, a list of strings suggested.
        ('task = "arrears"\n[sample]\nseed = 2023-01-01\n', "sample.seed: 2023-01-01 is a TOML date, which"),
        (
            'task = "arrears"\n[evaluation]\ntop_fractions = "0.05"\n',
            "evaluation.top_fractions: must be a list in square brackets, e.g. [0.05], got '0.05'",
        ),
    ],
)
def test_bad_configs_name_the_key(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TrainingError) as refused:
        load_config(path)
    assert where in str(refused.value)


def test_a_quoted_infinity_is_not_told_to_drop_its_quotes(tmp_path: Path) -> None:
    # Unquoted, `inf` is refused too (allow_inf_nan=False): the hint sent the reader to another refusal.
    path = tmp_path / "bad.toml"
    path.write_text('task = "arrears"\n[lightgbm]\nlearning_rate = "inf"\n')
    with pytest.raises(TrainingError) as refused:
        load_config(path)
    assert 'must be a number, got "inf"' in str(refused.value) and "in quotes" not in str(refused.value)


def test_whole_numbers_are_numbers_and_paths_and_tasks_are_strings(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(
        'task = "theft"\nwarehouse = "wh"\n[lightgbm]\nlearning_rate = 1\nlambda_l2 = 0\nmax_depth = -1\n'
        "[evaluation]\ntop_fractions = [0.05, 1]\n[gate]\nauc_tolerance = 0\n"
    )
    config = load_config(path)
    assert config.lightgbm.learning_rate == 1.0 and isinstance(config.lightgbm.learning_rate, float)
    assert config.evaluation.top_fractions == (0.05, 1.0) and config.warehouse == Path("wh")
    assert config.lightgbm.max_depth == -1 and config.task.value == "theft"


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "broken.toml").write_text("task = \n")
    with pytest.raises(TrainingError, match="not valid TOML"):
        load_config(tmp_path / "broken.toml")


def test_a_folder_or_a_file_that_is_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="is a folder; name a TOML file"):
        load_config(tmp_path)
    (tmp_path / "gbk.toml").write_bytes('task = "arrears"  # 欠费\n'.encode("gbk"))
    with pytest.raises(TrainingError, match="is not UTF-8 text"):
        load_config(tmp_path / "gbk.toml")


def test_an_unknown_task_without_a_file_names_the_tasks() -> None:
    # `gridrisk train --task fraud` (and backtest, evaluate) printed a ValueError traceback.
    with pytest.raises(
        TrainingError, match="task 'fraud' is unknown; the tasks are arrears, suspension, theft"
    ):
        default_config("fraud")


def test_defaults_and_resolved_dict() -> None:
    config = default_config("theft")
    resolved = config.resolved()
    assert resolved["task"] == "theft" and resolved["calibration"]["method"] == "isotonic"
    assert resolved["warehouse"] is None


def test_auto_start_follows_the_warehouse_not_the_calendar(tmp_path: Path, generated_dir: Path) -> None:
    import pandas as pd

    from training.experiment import first_billing_month, resolve_as_of_dates

    # The generated warehouse bills from 2021-01: six months of history put the first as-of at 2021-07-31.
    assert first_billing_month(generated_dir) == pd.Period("2021-01", "M")
    dates = resolve_as_of_dates(default_config("arrears"), generated_dir)
    assert dates[0] == pd.Timestamp("2021-07-31") and dates[1] == pd.Timestamp("2021-08-31")
    short = default_config("arrears", as_of={"history_months": 3})
    assert resolve_as_of_dates(short, generated_dir)[0] == pd.Timestamp("2021-04-30")
    assert load_config(CONFIGS / "suspension.toml").as_of.history_months == 3
    assert default_config("suspension").as_of.history_months == 3  # `--task suspension` agrees with the file
    capped = default_config("arrears", as_of={"max_dates": 4})
    assert resolve_as_of_dates(capped, generated_dir) == dates[-4:]
    fixed = default_config("arrears", as_of={"start": "2022-06"})
    assert resolve_as_of_dates(fixed, generated_dir)[0] == pd.Timestamp("2022-06-30")
    # A utility that scores on the 10th trains on the 10th; the latest such date is still fully observed.
    tenth = resolve_as_of_dates(default_config("arrears", as_of={"day": 10}), generated_dir)
    assert {d.day for d in tenth} == {10} and tenth[0] == pd.Timestamp("2021-07-10")
    from features.labels import latest_labelable_as_of

    latest = pd.Timestamp(latest_labelable_as_of(generated_dir, "arrears"))
    assert tenth[-1] <= latest < tenth[-1] + pd.DateOffset(months=1)
    # An end before the automatic start is the end's fault (the message said "move as_of.start earlier").
    early = default_config("arrears", as_of={"end": "2012-06"})
    with pytest.raises(
        TrainingError, match=r"as_of.end 2012-06 is before the first as-of month 2021-07 \(the"
    ):
        resolve_as_of_dates(early, generated_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="no bills table"):
        first_billing_month(tmp_path / "empty")


@pytest.mark.parametrize("task", ["arrears", "suspension", "theft"])
def test_task_defaults_are_the_shipped_configs(task: str) -> None:
    """`gridrisk train --task T` (no file) trains what `gridrisk train experiments/configs/T.toml` does."""
    shipped = load_config(CONFIGS / f"{task}.toml").model_dump(exclude={"warehouse"})
    assert default_config(task).model_dump(exclude={"warehouse"}) == shipped


@pytest.mark.parametrize("task", ["arrears", "suspension", "theft"])
def test_demo_away_from_the_repo_writes_the_task_defaults(task: str, tmp_path: Path) -> None:
    """`gridrisk demo` run where experiments/configs/ is absent writes a config equal to the task defaults."""
    from gridrisk.commands.demo import default_config_toml

    path = tmp_path / f"{task}.toml"
    path.write_text(default_config_toml(task), encoding="utf-8")
    assert load_config(path) == default_config(task)
