"""The three tasks as data: label horizon, primary business metric, work-list order, rule baseline.

Every other training module reads a `TaskSpec` from `TASKS`; adding a task is a row here, not a new script.
Feature lists and label definitions live in `features/` (one definition each); this module points at them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd


class Task(StrEnum):
    ARREARS = "arrears"
    SUSPENSION = "suspension"
    THEFT = "theft"


class TrainingError(Exception):
    """A training input (task, config, frame, split, registry) breaks a rule; the message says the fix."""


@dataclass(frozen=True)
class RuleKey:
    """One sort key of a rule baseline: a feature column and whether larger values mean more risk."""

    feature: str
    higher_is_riskier: bool = True


@dataclass(frozen=True)
class TaskSpec:
    task: Task
    title: str
    label: str  # human description of the label, logged as a run tag
    primary_metric: str  # a key of `training.evaluate.score_metrics` output (without the test_ prefix)
    primary_metric_doc: str
    rank_by_expected_value: bool  # the default work list sorts by probability x amount at stake
    rule_name: str
    rule_keys: tuple[RuleKey, ...]  # lexicographic: first key decides, later keys break ties

    @property
    def horizon_days(self) -> int:
        from features.labels import HORIZON_DAYS

        return int(HORIZON_DAYS[self.task.value])

    @property
    def label_window_days(self) -> int:
        """Days after an as-of date that its label reads: the horizon plus, for arrears, the 30-day grace
        (payments up to 30 days after each due date count), so a split gap must cover both."""
        from features.labels import label_observable_until

        return int(label_observable_until(self.task.value).days)

    @property
    def features(self) -> list[str]:
        from features.feature_sets import TASK_FEATURES

        return list(TASK_FEATURES[self.task.value])

    def rule_scores(self, frame: pd.DataFrame) -> np.ndarray:
        """The rule baseline's ranking as a score in (0, 1] (higher = visit first); missing ranks last."""
        missing = [k.feature for k in self.rule_keys if k.feature not in frame.columns]
        if missing:
            raise TrainingError(
                f"rule baseline {self.rule_name!r} of task {self.task} needs columns {missing} the frame "
                f"lacks; keep them in features/feature_sets.py or change the rule in training/tasks.py"
            )
        return lexicographic_scores(frame, self.rule_keys)


def lexicographic_scores(frame: pd.DataFrame, keys: tuple[RuleKey, ...]) -> np.ndarray:
    """Rank rows by the keys in order (first key most important), mapped to (0, 1]; NaN is least risky."""
    n = len(frame)
    if n == 0:
        return np.empty(0)
    columns = []
    for key in keys:
        values = pd.to_numeric(frame[key.feature], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        values = values if key.higher_is_riskier else -values
        columns.append(np.where(np.isnan(values), -np.inf, values))
    # np.lexsort sorts by the LAST key first, so the most important key goes last.
    order = np.lexsort(tuple(reversed(columns)))
    scores = np.empty(n, dtype=np.float64)
    scores[order] = (np.arange(n) + 1) / n
    # Rows tied on every key share the same score, so a rule never pretends to rank ties.
    stacked = np.column_stack(columns)[order]
    same_as_prev = np.r_[False, np.all(stacked[1:] == stacked[:-1], axis=1)]
    group = np.cumsum(~same_as_prev) - 1
    group_max = pd.Series(scores[order]).groupby(group).transform("max").to_numpy()
    scores[order] = group_max
    return scores


TASKS: dict[Task, TaskSpec] = {
    Task.ARREARS: TaskSpec(
        task=Task.ARREARS,
        title="Arrears (电费回收风险)",
        label="a bill due in (T, T+90d] is still unpaid 30 days after its due date",
        primary_metric="amount_recall_at_5pct",
        primary_metric_doc="share of the yuan at stake of customers who fall into arrears captured by the "
        "top 5 % "
        "of each as-of date's list (sorted by expected value = probability x amount at stake)",
        rank_by_expected_value=True,
        rule_name="amount overdue, then late count",
        rule_keys=(
            RuleKey("payments_outstanding_yuan"),
            RuleKey("payments_late_count_365d"),
        ),
    ),
    Task.SUSPENSION: TaskSpec(
        task=Task.SUSPENSION,
        title="Suspension / capacity reduction (暂停/减容)",
        label="applies for a suspension or capacity reduction in (T, T+180d]",
        primary_metric="precision_at_5pct",
        primary_metric_doc="share of the top 5 % of each as-of date's list who apply within the horizon",
        rank_by_expected_value=False,
        # Utilization = kWh / (capacity x hours): at contracted capacity its change is the kWh change, on
        # the same months last year so seasonal industries do not look like a drop; ties: lowest utilization.
        rule_name="utilization drop",
        rule_keys=(
            RuleKey("bills_kwh_yoy_change_pct_3m", higher_is_riskier=False),
            RuleKey("bills_utilization_pct_3m", higher_is_riskier=False),
        ),
    ),
    Task.THEFT: TaskSpec(
        task=Task.THEFT,
        title="Electricity theft (窃电)",
        label="an inspection in (T, T+180d] finds theft",
        primary_metric="precision_at_5pct",
        primary_metric_doc="inspection hit rate if the top 5 % of each as-of date's list were inspected",
        rank_by_expected_value=False,
        rule_name="consumption drop vs own history",
        rule_keys=(
            RuleKey("bills_kwh_yoy_change_pct_3m", higher_is_riskier=False),
            RuleKey("bills_kwh_change_pct_3m_vs_prev_3m", higher_is_riskier=False),
        ),
    ),
}


def task_spec(task: str | Task) -> TaskSpec:
    try:
        return TASKS[Task(task)]
    except ValueError:
        raise TrainingError(f"unknown task {task!r}; the tasks are {[t.value for t in Task]}") from None
