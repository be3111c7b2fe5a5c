"""The models page against a real (SQLite) MLflow registry moved by the gate and by `gridrisk promote`:
at every step it shows the champion as promoted and any other version with the gate's own verdict on it."""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tinymodel import FakeRegistry
from webdata import WebService, web_service

from serving.settings import ServingSettings
from serving.web import pages
from serving.web.model_board import MlflowAliases
from training.config import GateConfig
from training.registry import (
    CHALLENGER,
    CHAMPION,
    GateScores,
    apply_decision,
    client_for,
    decide,
    model_name,
    promote,
)

NAME = model_name("arrears")
GATE = GateConfig(primary_margin=0.01, auc_tolerance=0.005)
REFUSED = "ties the champion on its primary metric, short of the margin"  # both fixture models score 0.30


class Store:
    """`gridrisk-arrears` in a SQLite store; each version has an ended run with test-window metrics."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = client_for(self.uri)
        self.experiment = self.client.create_experiment("gridrisk-arrears", (root / "art").as_uri())
        self.client.create_registered_model(NAME)

    def train(self, primary: float, roc_auc: float) -> str:
        """Register a version as training does, then let the gate decide against the champion."""
        run = self.client.create_run(self.experiment)
        self.client.log_metric(run.info.run_id, "test_precision_at_5pct", primary)
        self.client.log_metric(run.info.run_id, "test_roc_auc", roc_auc)
        self.client.set_terminated(run.info.run_id)
        version = str(
            self.client.create_model_version(NAME, (self.root / "m").as_uri(), run.info.run_id).version
        )
        self.client.set_registered_model_alias(NAME, CHALLENGER, version)
        champion = None
        aliases = self.client.get_registered_model(NAME).aliases
        if CHAMPION in aliases:
            run_id = self.client.get_model_version(NAME, str(aliases[CHAMPION])).run_id
            held = self.client.get_run(run_id).data.metrics
            champion = GateScores(
                str(aliases[CHAMPION]), held["test_precision_at_5pct"], held["test_roc_auc"]
            )
        decision = decide(
            GateScores(version, primary, roc_auc), champion, GATE, "precision_at_5pct", task="arrears"
        )
        apply_decision(self.client, "arrears", decision)
        return version


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "registry")


@pytest.fixture
def web(
    settings: ServingSettings, registry: FakeRegistry, store: Store, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WebService]:
    # The service serves the fake registry's package; the page reads the aliases from the SQLite store.
    monkeypatch.setattr(pages, "alias_source", lambda models: MlflowAliases(store.uri))
    with web_service(settings, registry) as service:
        r = service.client.post("/login", data={"api_key": service.keys["admin"], "next": "/list"})
        assert r.status_code == 200, r.text[:500]
        yield service


def board(web: WebService) -> dict[str, list[str]]:
    """The models table of the English page: row header -> [champion cell, challenger cell, and the cell of
    the version the champion replaced when that is not the challenger] as text."""
    r = web.client.get("/models", params={"lang": "en"})
    assert r.status_code == 200, r.text[:2000]
    table = r.text.split('<table class="models">', 1)[1].split("</table>", 1)[0]
    out = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], flags=re.S):
        cells = [
            " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", c)).split())
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)
        ]
        out[cells[0]] = cells[1:]
    return out


def test_promote_then_roll_back_tells_the_truth_at_every_step(web: WebService, store: Store) -> None:
    assert store.train(0.30, 0.80) == "1"
    page = board(web)
    # The newest version is the champion: it holds `challenger` too, and is shown once.
    assert page["Version"] == ["v1", "the champion (the newest version was promoted)"]
    assert page["Promoted"][0].endswith("(passed the gate, at the end of its training run)")
    assert "no champion yet" in page["Decision"][0]

    assert store.train(0.30, 0.80) == "2"  # a retrain that changes nothing: refused
    page = board(web)
    assert page["Version"] == ["v1", "v2"]
    assert page["Promoted"][1] == "—" and REFUSED in page["Decision"][1]

    promote(store.uri, "arrears", "2", "use November's model", user="ops")
    promoted = board(web)
    # v2 shown once; v1, the gate's choice it replaced, keeps a column of its own (it vanished from the page)
    assert promoted["Version"] == ["v2", "the champion (the newest version was promoted)", "v1"]
    assert promoted["Promoted"][0].endswith("(manual promotion, replacing v1)")
    assert promoted["Promoted"][2].endswith("replaced by v2 (manual promotion): use November's model")
    assert promoted["Decision"][0].startswith("use November's model")

    promote(store.uri, "arrears", "1", "rollback", user="ops")
    page = board(web)
    assert page["Version"] == ["v1", "v2"]  # the version it replaced is the challenger: shown once
    assert page["Promoted"][0].endswith("(manual promotion, replacing v2)")
    assert page["Decision"][0].startswith("rollback")
    # v2 is not promoted any more: how its time as champion ended, and the gate's verdict on it.
    v2 = store.client.get_model_version(NAME, "2").tags
    since, until = (v2[k][:16].replace("T", " ") for k in ("promotion.at", "champion.until"))
    assert page["Promoted"][1] == (
        f"Was champion from {since} UTC until {until} UTC, replaced by v1 (manual promotion): rollback"
    )
    assert "use November's model" not in page["Decision"][1]
    assert page["Decision"][1].startswith(f"Gate: kept as challenger — {REFUSED}")
    # A champion promoted by hand shows the reason given and, below it, what the gate had said.
    assert promoted["Decision"][0].startswith(f"use November's model Gate: kept as challenger — {REFUSED}")


def test_a_rolled_back_version_the_gate_had_promoted_keeps_its_verdict(web: WebService, store: Store) -> None:
    store.train(0.30, 0.80)
    assert store.train(0.40, 0.80) == "2"  # beats v1: the gate makes it champion
    gated = board(web)
    assert gated["Version"] == ["v2", "the champion (the newest version was promoted)", "v1"]
    assert gated["Promoted"][0].endswith("(passed the gate, replacing v1, at the end of its training run)")
    promote(store.uri, "arrears", "1", "v2 lists hit a closed station")
    page = board(web)
    assert page["Version"] == ["v1", "v2"]
    assert page["Promoted"][1].startswith("Was champion from ")  # from the end of its training run
    assert page["Promoted"][1].endswith("replaced by v1 (manual promotion): v2 lists hit a closed station")
    assert page["Decision"][1].startswith("Gate: promoted — beats the champion")


def test_registries_tagged_before_the_fix_are_read_honestly(web: WebService, store: Store) -> None:
    # As the old `promote` left them: v2 promoted by hand, then v1 by hand, no `champion.*` tags, and
    # `challenger` still on v2 -- and, while v2 was champion, on the champion itself.
    store.train(0.30, 0.80)
    store.train(0.30, 0.80)
    client = store.client
    client.set_model_version_tag(NAME, "2", "promotion.at", "2026-11-02T09:00:00+00:00")
    client.set_model_version_tag(NAME, "2", "promotion.reason", "use November's model")
    client.set_registered_model_alias(NAME, CHAMPION, "2")
    client.set_registered_model_alias(NAME, CHALLENGER, "2")
    assert board(web)["Version"] == ["v2", "the champion (the newest version was promoted)"]  # shown once

    client.set_registered_model_alias(NAME, CHAMPION, "1")
    page = board(web)
    assert page["Version"] == ["v1", "v2"]
    assert page["Promoted"][1] == (
        "Promoted by hand on 2026-11-02 09:00 UTC (use November's model); no longer the champion"
    )
    assert page["Decision"][1].startswith(f"Gate: kept as challenger — {REFUSED}")


def test_the_page_names_the_challenger_in_chinese_too(web: WebService, store: Store) -> None:
    store.train(0.30, 0.80)
    store.train(0.30, 0.80)
    promote(store.uri, "arrears", "2", "十一月的模型")
    promote(store.uri, "arrears", "1", "回滚")
    html = web.client.get("/models", params={"lang": "zh"}).text
    assert "被 v1（人工晋升）取代：回滚" in html and "门槛评审：未通过，保留为候选" in html
