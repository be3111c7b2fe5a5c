"""The promotion rule on numbers: beat the champion's primary metric by the margin without losing AUC."""

from __future__ import annotations

import pytest

from training.config import GateConfig
from training.registry import GateScores, decide, is_local_store

GATE = GateConfig(primary_margin=0.01, auc_tolerance=0.005)


def test_first_model_becomes_champion() -> None:
    decision = decide(GateScores("1", 0.3, 0.8), None, GATE, "precision_at_5pct")
    assert decision.promote and decision.reason == "no champion yet"


@pytest.mark.parametrize(
    "challenger, promote",
    [
        (GateScores("1", 0.12, 0.70), True),  # better on both
        (GateScores("1", 0.09, 0.80), True),  # a worse top of the list, a better list overall
        (GateScores("1", 0.20, 0.60), True),  # a worse list overall, a better top
        (GateScores("1", 0.10, 0.645), True),  # level on the primary metric, AUC just within the tolerance
        (GateScores("1", 0.099, 0.644), False),  # worse on both
        (GateScores("1", 0.04, 0.38), False),  # worse than chance and than the rule
    ],
)
def test_without_a_champion_the_rule_is_the_floor(challenger: GateScores, promote: bool) -> None:
    # A first model is served unless the rule the teams use today beats it on both numbers (same window).
    rule = GateScores("rule", 0.10, 0.65)
    decision = decide(challenger, None, GATE, "precision_at_5pct", rule, "suspension")
    assert decision.promote is promote
    assert decision.reason.startswith("no champion yet") and "vs the rule 0.1000" in decision.reason
    assert decision.tags()["gate.champion_version"] == "none"
    assert (
        decision.metrics()["gate_rule_primary"] == 0.10 and "gate_champion_primary" not in decision.metrics()
    )
    override = '`gridrisk promote --task suspension --version 1 --reason "…"`'
    assert (override in decision.reason) is not promote  # the way to serve it anyway
    if promote:
        both = challenger.primary >= 0.10 and challenger.roc_auc >= 0.645
        assert ("as good as the rule baseline or better:" in decision.reason) is both
        assert ("as good as the rule baseline or better on " in decision.reason) is not both


def test_a_number_the_rule_lacks_is_not_lost_on() -> None:
    # A rule that ranks nobody apart (all ties) can have an undefined metric.
    nan = float("nan")
    weak = GateScores("1", 0.01, 0.51)
    assert decide(weak, None, GATE, "precision_at_5pct", GateScores("rule", nan, 0.9)).promote
    assert decide(weak, None, GATE, "precision_at_5pct", GateScores("rule", 0.5, nan)).promote
    assert not decide(weak, None, GATE, "precision_at_5pct", GateScores("rule", 0.5, 0.9)).promote
    # The first model's own undefined number is not "as good as the rule": it cannot be compared.
    undefined = decide(
        GateScores("1", nan, nan), None, GATE, "precision_at_5pct", GateScores("rule", 0.1, 0.6)
    )
    assert not undefined.promote and "cannot be compared" in undefined.reason


@pytest.mark.parametrize(
    "challenger, promote, why",
    [
        (GateScores("2", 0.32, 0.80), True, "beats"),  # +0.02 primary, same AUC
        (GateScores("2", 0.309, 0.85), False, "margin"),  # +0.009 primary is inside the margin
        (GateScores("2", 0.31, 0.795), True, "beats"),  # exactly the margin, AUC drop exactly the tolerance
        (GateScores("2", 0.40, 0.79), False, "ROC-AUC"),  # much better list, but AUC falls by 0.01
        (GateScores("2", 0.30, 0.80), False, "margin"),  # a retrain that changes nothing is not promoted
    ],
)
def test_challenger_against_champion(challenger: GateScores, promote: bool, why: str) -> None:
    champion = GateScores("1", 0.30, 0.80)
    decision = decide(challenger, champion, GATE, "precision_at_5pct")
    assert decision.promote is promote
    assert why in decision.reason
    assert "champion v1" in decision.reason  # the numbers and the version compared are in the logged reason
    assert decision.tags()["gate.decision"] == ("promoted" if promote else "refused")
    assert decision.metrics()["gate_champion_primary"] == 0.30


def test_local_store_detection() -> None:
    assert is_local_store("sqlite:////tmp/x/mlflow.db")
    assert is_local_store("/tmp/mlruns")
    assert not is_local_store("http://127.0.0.1:5000")
