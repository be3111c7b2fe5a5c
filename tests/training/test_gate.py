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
