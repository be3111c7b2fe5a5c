"""The promotion rule on numbers: beat the champion's primary metric by the margin without losing AUC."""

from __future__ import annotations

import pytest

from training import registry
from training.config import GateConfig
from training.registry import (
    CHALLENGER,
    CHAMPION,
    GateDecision,
    GateScores,
    apply_decision,
    client_for,
    decide,
    is_local_store,
    model_name,
    promote,
    register_challenger,
)

GATE = GateConfig(primary_margin=0.01, auc_tolerance=0.005)


def test_first_model_becomes_champion() -> None:
    decision = decide(GateScores("1", 0.3, 0.8), None, GATE, "precision_at_5pct", task="arrears")
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
        # A tie on the primary metric is no win: it cannot make up for a worse list overall. On a small
        # utility both lists can hold no hit (0.0000 vs 0.0000), and a model at ROC-AUC 0.08 was served.
        (GateScores("1", 0.10, 0.644), False),
        (GateScores("1", 0.10, 0.5), False),
        (GateScores("1", 0.09, 0.653), False),  # a worse top, and level (within the tolerance) overall
        (GateScores("1", 0.30, 0.49), False),  # a better top, but the list ranks worse than chance
        (GateScores("1", 0.10, 0.656), True),  # a tie on the top, a better list overall
    ],
)
def test_without_a_champion_the_rule_is_the_floor(challenger: GateScores, promote: bool) -> None:
    # A first model is served when it loses to the rule the teams use today on neither number, or wins on the
    # other (same window); never when it ranks worse than chance.
    rule = GateScores("rule", 0.10, 0.65)
    decision = decide(challenger, None, GATE, "precision_at_5pct", rule, task="suspension")
    assert decision.promote is promote
    assert decision.reason.startswith("no champion yet") and "vs the rule 0.1000" in decision.reason
    if challenger.primary == 0.10 and not promote:
        assert "ties the rule baseline on precision_at_5pct" in decision.reason
    assert decision.tags()["gate.champion_version"] == "none"
    assert (
        decision.metrics()["gate_rule_primary"] == 0.10 and "gate_champion_primary" not in decision.metrics()
    )
    override = '`gridrisk promote --task suspension --version 1 --reason "…"`'
    assert (override in decision.reason) is not promote  # the way to serve it anyway
    if promote:
        both = challenger.primary >= 0.10 and challenger.roc_auc >= 0.645
        assert ("as good as the rule baseline or better:" in decision.reason) is both
        assert ("better than the rule baseline on " in decision.reason) is not both


def test_a_number_the_rule_lacks_is_not_lost_on() -> None:
    # A rule that ranks nobody apart (all ties) can have an undefined metric.
    nan = float("nan")
    weak = GateScores("1", 0.01, 0.51)
    assert decide(weak, None, GATE, "precision_at_5pct", GateScores("rule", nan, 0.9), task="arrears").promote
    assert decide(weak, None, GATE, "precision_at_5pct", GateScores("rule", 0.5, nan), task="arrears").promote
    assert not decide(
        weak, None, GATE, "precision_at_5pct", GateScores("rule", 0.5, 0.9), task="arrears"
    ).promote
    # The first model's own undefined number is not "as good as the rule": it cannot be compared.
    undefined = decide(
        GateScores("1", nan, nan),
        None,
        GATE,
        "precision_at_5pct",
        GateScores("rule", 0.1, 0.6),
        task="arrears",
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
    decision = decide(challenger, champion, GATE, "precision_at_5pct", task="arrears")
    assert decision.promote is promote
    assert why in decision.reason
    assert "champion v1" in decision.reason  # the numbers and the version compared are in the logged reason
    assert decision.tags()["gate.decision"] == ("promoted" if promote else "refused")
    assert decision.metrics()["gate_champion_primary"] == 0.30


def test_with_no_margin_a_tie_does_not_beat_the_champion() -> None:
    # A tester's bit-identical retrain under primary_margin = 0 "beat the champion" (0.9175 vs 0.9175, needs
    # >= 0.9175) and replaced it; the first-model rule already says a tie makes up for nothing.
    no_margin = GateConfig(primary_margin=0.0, auc_tolerance=0.005)
    champion = GateScores("1", 0.9175, 0.8520)
    metric = "amount_recall_at_5pct"
    tie = decide(GateScores("2", 0.9175, 0.8520), champion, no_margin, metric, task="arrears")
    assert not tie.promote
    assert tie.reason.startswith("ties the champion on its primary metric, and a tie makes up for nothing")
    assert "(needs > 0.9175)" in tie.reason
    better = decide(GateScores("2", 0.9176, 0.85), champion, no_margin, metric, task="arrears")
    assert better.promote and better.reason.startswith("beats the champion")
    # With a margin, a tie is named as one too.
    same = GateScores("1", 0.30, 0.80)
    kept = decide(GateScores("2", 0.30, 0.80), same, GATE, "precision_at_5pct", task="arrears")
    assert not kept.promote and kept.reason.startswith("ties the champion")
    assert "short of the margin" in kept.reason and "(needs >= 0.3100)" in kept.reason


@pytest.mark.parametrize("rule", [None, GateScores("rule", 0.10, 0.30)])
def test_below_chance_is_never_promoted(rule: GateScores | None) -> None:
    # A reviewer's cases: with no rule to compare, or against a champion it beats on both numbers, a model at
    # ROC-AUC 0.08 or 0.45 was served.
    first = decide(GateScores("1", 0.3, 0.08), None, GATE, "precision_at_5pct", rule, task="suspension")
    assert not first.promote and first.reason.startswith(
        "no champion yet, and it ranks the test window worse"
    )
    champion = GateScores("1", 0.2, 0.44)
    later = decide(GateScores("2", 0.3, 0.45), champion, GATE, "precision_at_5pct", rule, task="suspension")
    assert not later.promote and "worse than chance (ROC-AUC 0.4500 below 0.5)" in later.reason
    assert "champion v1 0.2000" in later.reason and "--version 2" in later.reason


def test_local_store_detection() -> None:
    assert is_local_store("sqlite:////tmp/x/mlflow.db")
    assert is_local_store("/tmp/mlruns")
    assert not is_local_store("http://127.0.0.1:5000")


# -- the registry after the gate and after overrides (a SQLite store, versions without models) --------------


def registry_with_versions(uri: str, root, count: int):
    """`gridrisk-arrears` with `count` versions, each given alias `challenger` as training does."""
    client = client_for(uri)
    client.create_registered_model(model_name("arrears"))
    for _ in range(count):
        add_version(client, root)
    return client


def add_version(client, root) -> str:
    """A new version (no model behind it, a training run with no data) holding `challenger`, as
    `register_challenger` leaves it."""
    name = model_name("arrears")
    count = len(client.search_model_versions(f"name = '{name}'"))
    experiment = client.get_experiment_by_name(name) or client.get_experiment(client.create_experiment(name))
    run = client.create_run(experiment.experiment_id)
    version = str(
        client.create_model_version(name, (root / f"v{count + 1}").as_uri(), run.info.run_id).version
    )
    client.set_registered_model_alias(name, CHALLENGER, version)
    return version


def aliases(client) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(model_name("arrears")).aliases.items()}


def test_the_gate_tags_the_champion_it_replaces(tracking, tmp_path) -> None:
    uri, _ = tracking
    client = registry_with_versions(uri, tmp_path, 1)
    apply_decision(
        client, "arrears", decide(GateScores("1", 0.3, 0.8), None, GATE, "precision_at_5pct", task="arrears")
    )
    assert aliases(client) == {CHAMPION: "1", CHALLENGER: "1"}  # the newest version holds both
    assert add_version(client, tmp_path) == "2"
    better = decide(
        GateScores("2", 0.4, 0.8), GateScores("1", 0.3, 0.8), GATE, "precision_at_5pct", task="arrears"
    )
    apply_decision(client, "arrears", better)
    assert aliases(client) == {CHAMPION: "2", CHALLENGER: "2"}
    v1 = client.get_model_version(model_name("arrears"), "1").tags
    assert v1["champion.replaced_by"] == "2" and v1["champion.replaced_how"] == "gate"
    assert v1["champion.replaced_reason"].startswith("beats the champion") and v1["champion.until"]


def test_promote_and_roll_back_the_challenger(tracking, tmp_path) -> None:
    uri, _ = tracking
    client = registry_with_versions(uri, tmp_path, 1)
    apply_decision(
        client, "arrears", decide(GateScores("1", 0.3, 0.8), None, GATE, "precision_at_5pct", task="arrears")
    )
    assert add_version(client, tmp_path) == "2"
    kept = decide(
        GateScores("2", 0.3, 0.8), GateScores("1", 0.3, 0.8), GATE, "precision_at_5pct", task="arrears"
    )
    apply_decision(client, "arrears", kept)
    assert aliases(client) == {CHAMPION: "1", CHALLENGER: "2"}

    # The challenger itself is promoted: it holds both aliases (the page shows it once).
    promote(uri, "arrears", "2", "use November's model", user="ops")
    assert aliases(client) == {CHAMPION: "2", CHALLENGER: "2"}
    v2 = client.get_model_version(model_name("arrears"), "2").tags
    assert v2["promotion.reason"] == "use November's model" and v2["promotion.previous_champion"] == "1"
    assert v2["gate.decision"] == "refused"  # the gate's own verdict is kept
    v1 = client.get_model_version(model_name("arrears"), "1").tags
    assert (v1["champion.replaced_by"], v1["champion.replaced_how"]) == ("2", "override")
    assert v1["champion.replaced_reason"] == "use November's model"
    assert v1["champion.until"] == v2["promotion.at"]

    # Rolled back: the newest version is still the challenger, and says how its time as champion ended.
    promote(uri, "arrears", "1", "rollback", user="ops")
    assert aliases(client) == {CHAMPION: "1", CHALLENGER: "2"}
    v2 = client.get_model_version(model_name("arrears"), "2").tags
    assert (v2["champion.replaced_by"], v2["champion.replaced_reason"]) == ("1", "rollback")
    assert v2["promotion.reason"] == "use November's model"  # who, when and why it was promoted stay
    v1 = client.get_model_version(model_name("arrears"), "1").tags
    assert not any(key.startswith("champion.") for key in v1)  # champion again: its old ending is gone
    # The training runs say so too: v2's "champion since …" has ended (it kept saying so after a rollback).
    run_tag = {
        v: client.get_run(client.get_model_version(model_name("arrears"), v).run_id).data.tags[
            "promotion.override"
        ]
        for v in ("1", "2")
    }
    assert run_tag["1"] == f"champion since {v1['promotion.at']}: rollback"
    assert run_tag["2"] == (
        f"champion from {v2['promotion.at']} until {v2['champion.until']} (use November's model); "
        "replaced by v1 (override)"
    )
    assert v1["promotion.previous_champion"] == "2" and v1["promotion.reason"] == "rollback"
    runs = client.search_runs(
        [client.get_experiment_by_name("gridrisk-arrears").experiment_id],
        "tags.`gridrisk.kind` = 'promotion-override'",
    )
    assert sorted(r.data.tags["promotion.reason"] for r in runs) == ["rollback", "use November's model"]


def test_a_champion_fitted_on_the_test_window_is_named() -> None:
    # A challenger trained with an earlier as_of.end is tested on the champion's own validation dates: the
    # champion had seen those outcomes and won, with no word that the comparison favoured it.
    import pandas as pd

    from training.experiment import fitted_into

    test = pd.DataFrame({"as_of": pd.to_datetime(["2022-06-30", "2022-07-31", "2022-08-31"])})
    holdout = {"as_of_train": ["2021-07-31", "2022-02-28"], "as_of_validation": ["2022-06-30", "2022-08-31"]}
    said = fitted_into(holdout, test, 120)
    assert said is not None and "as-of dates up to 2022-08-31" in said and "start 2022-06-30" in said
    purged = {
        "as_of_train": ["2021-07-31", "2022-02-28"],
        "as_of_validation": "purged 3-fold over as_of_train",
    }
    assert fitted_into(purged, test, 120) is None  # its labels end 2022-06-28, before the window
    assert fitted_into({}, test, 120) is None  # a package from before these records
    # As-of dates before the window whose labels reach into it count too: validated up to 2022-06-30, the
    # arrears labels (120 days) read bills due until late October, inside a window starting 2022-07-31.
    later = test.assign(as_of=test["as_of"] + pd.offsets.MonthEnd(1))
    assert fitted_into({"as_of_validation": ["2022-04-30", "2022-06-30"]}, later, 120) is not None


def test_a_moved_home_writes_new_runs_under_the_current_home(tmp_path, caplog) -> None:
    # After `mv home home_moved` a tester's new run and model version were written into the old home's
    # folder (the experiment's artifact location, fixed at its creation), which MLflow silently recreated.
    import mlflow

    from training.registry import ensure_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    old_root, new_root = tmp_path / "old" / "mlartifacts", tmp_path / "new" / "mlartifacts"
    first = ensure_experiment(uri, "gridrisk-theft", old_root)
    client = client_for(uri)
    earlier = client.create_run(first).info.run_id
    assert ensure_experiment(uri, "gridrisk-theft", old_root) == first  # the same home: the same experiment
    with caplog.at_level("WARNING", logger="training.registry"):
        second = ensure_experiment(uri, "gridrisk-theft", new_root)
    assert second != first
    assert client.get_experiment(second).name == "gridrisk-theft"
    assert client.get_experiment(second).artifact_location == (new_root / "gridrisk-theft").resolve().as_uri()
    kept = client.get_experiment(first)
    assert kept.name == f"gridrisk-theft (artifacts in {(old_root / 'gridrisk-theft').resolve()})"
    assert client.get_run(earlier).info.experiment_id == first  # the old runs stay, under the kept name
    assert "outside this gridrisk home's" in caplog.text and "renamed it" in caplog.text
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=second) as run:
        mlflow.log_text("x", "note.txt")
    assert run.info.artifact_uri.startswith(new_root.resolve().as_uri())
    assert not old_root.exists()  # nothing written into the old home
    assert ensure_experiment(uri, "gridrisk-theft", new_root) == second
    assert ensure_experiment(uri, "gridrisk-theft", None) == second  # promote logs no artifacts: left alone


# -- two trainings against one server: the alias moves are compare-and-set ----------------------------------


def test_a_champion_promoted_meanwhile_is_not_overwritten(tracking, tmp_path) -> None:
    """Two `gridrisk train` at once: both gates read "no champion"; v2 promotes first, then v1 found the
    alias taken and had overwritten it "because there was no champion". Without a way to gate again, v1 is
    refused and says why."""
    uri, _ = tracking
    client = registry_with_versions(uri, tmp_path, 2)
    first = decide(GateScores("1", 0.3, 0.8), None, GATE, "precision_at_5pct", task="arrears")
    assert first.promote
    # The other training, between this one's read of the champion and its move:
    client.set_registered_model_alias(model_name("arrears"), CHAMPION, "2")
    final = apply_decision(client, "arrears", first)
    assert aliases(client) == {CHAMPION: "2", CHALLENGER: "2"}
    assert not final.promote and "champion moved from no champion to v2" in final.reason
    v1 = client.get_model_version(model_name("arrears"), "1").tags
    assert v1["gate.decision"] == "refused" and "v2" in v1["gate.reason"]
    assert "champion.replaced_by" not in client.get_model_version(model_name("arrears"), "2").tags


def test_the_gate_runs_again_against_a_champion_that_moved(tracking, tmp_path, monkeypatch) -> None:
    """The other training promotes between the gate's read and the move (the hook): the challenger is gated
    again against the new champion, and moves the alias only if it beats that one."""
    uri, _ = tracking
    client = registry_with_versions(uri, tmp_path, 3)
    client.set_registered_model_alias(model_name("arrears"), CHAMPION, "1")
    raced = []

    def other_training(name: str, alias: str) -> None:
        if not raced:
            raced.append(alias)
            client.set_registered_model_alias(name, alias, "2")

    monkeypatch.setattr(registry, "_before_alias_move", other_training)
    against = []

    def regate(champion, score: float) -> GateDecision:
        against.append(str(champion.version))
        return decide(
            GateScores("3", score, 0.8),
            GateScores(str(champion.version), 0.5, 0.8),
            GATE,
            "precision_at_5pct",
            task="arrears",
        )

    beats_v1 = decide(
        GateScores("3", 0.45, 0.8), GateScores("1", 0.3, 0.8), GATE, "precision_at_5pct", task="arrears"
    )
    final = apply_decision(client, "arrears", beats_v1, lambda c: regate(c, 0.45))
    assert against == ["2"] and not final.promote  # 0.45 beats v1's 0.3, not v2's 0.5
    assert aliases(client)[CHAMPION] == "2"
    assert client.get_model_version(model_name("arrears"), "3").tags["gate.champion_version"] == "2"

    raced.clear()
    against.clear()
    client.set_registered_model_alias(model_name("arrears"), CHAMPION, "1")
    final = apply_decision(client, "arrears", beats_v1, lambda c: regate(c, 0.6))
    assert against == ["2"] and final.promote and aliases(client)[CHAMPION] == "3"
    v2 = client.get_model_version(model_name("arrears"), "2").tags
    assert v2["champion.replaced_by"] == "3" and "vs champion v2" in v2["champion.replaced_reason"]


def test_challenger_stays_on_the_newest_version_when_two_register_at_once(tracking, tmp_path, monkeypatch):
    """v2 was registered and took `challenger` while v1's registration was in flight: v1's run had then
    pointed `challenger` back at the older version."""
    import mlflow

    uri, _ = tracking
    client = registry_with_versions(uri, tmp_path, 0)
    name = model_name("arrears")

    def register_model(model_uri, registered_name, tags=None):
        ours = client.create_model_version(registered_name, (tmp_path / "ours").as_uri())
        add_version(client, tmp_path)  # the other training: v2, and its challenger alias
        return ours

    monkeypatch.setattr(mlflow, "register_model", register_model)
    version = register_challenger(client, "arrears", "runs:/x/model", "run", tags={})
    assert str(version.version) == "1"
    assert aliases(client) == {CHALLENGER: "2"}
    assert client.get_registered_model(name).description


def test_a_model_prefix_keeps_two_utilities_apart_on_one_server(tracking, tmp_path, monkeypatch) -> None:
    """One server, two utilities: the second one's model was gated against the first one's champion, and its
    service loaded both. GRIDRISK_MODEL_PREFIX names each one's models; the service reads the same name."""
    from serving.settings import registered_name
    from training.registry import experiment_name, model_prefix_error, version_by_alias

    uri, _ = tracking
    monkeypatch.setenv("GRIDRISK_MODEL_PREFIX", "east")
    assert model_name("arrears") == registered_name("arrears") == "gridrisk-east-arrears"
    assert experiment_name("arrears") == "gridrisk-east-arrears"
    client = registry_with_versions(uri, tmp_path, 1)
    first = decide(GateScores("1", 0.3, 0.8), None, GATE, "precision_at_5pct", task="arrears")
    apply_decision(client, "arrears", first)
    assert str(version_by_alias(client, "arrears", CHAMPION).version) == "1"
    monkeypatch.setenv("GRIDRISK_MODEL_PREFIX", "west")
    assert (
        version_by_alias(client, "arrears", CHAMPION) is None
    )  # west's first model meets the rule, not east's
    monkeypatch.delenv("GRIDRISK_MODEL_PREFIX")
    assert (
        model_name("arrears") == "gridrisk-arrears" and version_by_alias(client, "arrears", CHAMPION) is None
    )
    monkeypatch.setenv("GRIDRISK_MODEL_PREFIX", "East Grid")
    assert "cannot name models" in model_prefix_error()
