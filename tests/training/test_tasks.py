"""Tasks as data: the rule baselines' lexicographic ranking and task lookup."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.tasks import TASKS, RuleKey, Task, TrainingError, lexicographic_scores, task_spec


def test_first_key_decides_and_second_breaks_ties() -> None:
    frame = pd.DataFrame(
        {
            "owed": [500.0, 100.0, 100.0, 0.0],  # row 0 owes most -> first; rows 1 and 2 tie on amount
            "late": [
                0.0,
                1.0,
                4.0,
                9.0,
            ],  # row 2 breaks the tie with more late payments; row 3's count is moot
        }
    )
    s = lexicographic_scores(frame, (RuleKey("owed"), RuleKey("late")))
    assert list(np.argsort(-s)) == [0, 2, 1, 3]


def test_lower_is_riskier_and_missing_ranks_last() -> None:
    frame = pd.DataFrame(
        {"change_pct": [-60.0, 5.0, np.nan, -10.0]}
    )  # a 60 % drop is riskiest; NaN says nothing
    s = lexicographic_scores(frame, (RuleKey("change_pct", higher_is_riskier=False),))
    assert list(np.argsort(-s)) == [0, 3, 1, 2]


def test_full_ties_share_one_score() -> None:
    frame = pd.DataFrame({"x": [1.0, 1.0, 2.0]})  # rows 0 and 1 are indistinguishable to the rule
    s = lexicographic_scores(frame, (RuleKey("x"),))
    assert s[0] == s[1] < s[2]


def test_rule_names_missing_column() -> None:
    with pytest.raises(TrainingError, match="payments_outstanding_yuan"):
        TASKS[Task.ARREARS].rule_scores(pd.DataFrame({"other": [1.0]}))


def test_unknown_task() -> None:
    with pytest.raises(TrainingError, match="unknown task 'fraud'"):
        task_spec("fraud")
    assert task_spec("theft").primary_metric == "precision_at_5pct"


def test_label_window_covers_the_arrears_grace() -> None:
    from features.labels import HORIZON_DAYS

    assert task_spec("arrears").label_window_days == HORIZON_DAYS["arrears"] + 30
    assert task_spec("theft").label_window_days == HORIZON_DAYS["theft"]


@pytest.mark.parametrize("task", list(Task))
def test_the_service_lists_each_task_in_the_order_its_model_is_judged_on(task: Task) -> None:
    from serving.schemas import WORK_LIST_ORDER, SortKey
    from serving.schemas import Task as ServedTask

    by_value = task_spec(task).rank_by_expected_value
    assert WORK_LIST_ORDER[ServedTask(task.value)] == (
        SortKey.EXPECTED_VALUE if by_value else SortKey.PROBABILITY
    )
