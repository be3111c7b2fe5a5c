"""Test material for the serving tests (unit and e2e): a tiny LightGBM package trained on random data, a fake
registry, a hand-made scoring population and a customer archive with PII."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd

from serving.access import create_key
from serving.model import Calibrator, FeatureSpec, PackagedModel, ReasonText
from serving.model_store import RegistryError
from serving.schemas import ModelRef, RegistryVersion
from serving.settings import ServingSettings

FEATURES = [
    "bills_kwh_yoy_change_pct_90d",
    "payments_days_late_max_365d",
    "contract_capacity_kva",
    "usage_category",
]
CATEGORIES = ["agricultural", "general_commercial", "large_industrial", "residential"]
STATIONS = ["S01", "S02", "S03"]
AS_OF = dt.date(2023, 6, 30)


def feature_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "bills_kwh_yoy_change_pct_90d": rng.normal(0, 40, n),
            "payments_days_late_max_365d": rng.exponential(10, n),
            "contract_capacity_kva": rng.choice([8.0, 50.0, 400.0, 1250.0], n),
            "usage_category": rng.choice(CATEGORIES, n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "payments_days_late_max_365d"] = np.nan  # missing values reach the model
    return frame


def train_package(seed: int = 0, trees: int = 30, task: str = "arrears") -> PackagedModel:
    frame = feature_frame(3000, seed)
    logit = (
        -0.04 * frame["bills_kwh_yoy_change_pct_90d"]
        + 0.15 * frame["payments_days_late_max_365d"].fillna(0)
        - 2
    )
    logit += np.where(frame["usage_category"] == "general_commercial", 1.0, 0.0)
    y = (np.random.default_rng(seed + 1).random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)
    spec = FeatureSpec.from_frame(frame, FEATURES)
    X = spec.matrix(frame)
    booster = lightgbm.train(
        {
            "objective": "binary",
            "num_leaves": 15,
            "max_depth": 5,
            "learning_rate": 0.1,
            "verbose": -1,
            "seed": seed,
            # One thread: on a shared 2-core machine OpenMP's spinning threads made this 30-tree fit take
            # 18 s instead of 0.04 s (measured under load while other jobs ran).
            "num_threads": 1,
        },
        lightgbm.Dataset(X, y, feature_name=FEATURES, categorical_feature=spec.categorical_indices),
        num_boost_round=trees,
    )
    raw = booster.predict(X)
    return PackagedModel(
        task=task,
        booster=booster,
        spec=spec,
        calibrator=Calibrator(method="platt", a=1.0, b=0.0),
        reasons={
            "bills_kwh_yoy_change_pct_90d": ReasonText(
                zh="近3个月电量较去年同期{dir_zh}{abs_value:.0f}%",
                en="kWh over the last 3 months {dir_en} {abs_value:.0f} % on the same months last year",
            ),
            "payments_days_late_max_365d": ReasonText(
                zh="近一年最长逾期{value:.0f}天", en="paid up to {value:.0f} days late in the last year"
            ),
        },
        bands={"high": 0.5, "medium": 0.2},
        score_quantiles=np.quantile(raw, np.linspace(0, 1, 101)).tolist(),
        metrics={"test_roc_auc": 0.8},
        info={"seed": seed},
    )


def scoring_frame(n: int = 60, seed: int = 3) -> pd.DataFrame:
    """A population like build_scoring_frame's: ids, as_of, segments, features, amount at stake."""
    frame = feature_frame(n, seed)
    frame.insert(0, "customer_id", [f"C{i:07d}" for i in range(n)])
    frame.insert(1, "as_of", pd.Timestamp(AS_OF))
    frame["station"] = [STATIONS[i % 3] for i in range(n)]
    frame["supply_unit"] = ["U1" if s != "S03" else "U2" for s in frame["station"]]
    frame["amount_at_stake"] = np.linspace(100.0, 6000.0, n)
    frame.loc[5, "amount_at_stake"] = (
        np.nan
    )  # a customer with no open bill: expected value unknown, sorts last
    return frame


@dataclass
class FakeRegistry:
    """A registry in memory: versions per name, aliases, and a switch that makes it unreachable."""

    uri: str = "fake://registry"
    models: dict[str, dict[str, PackagedModel]] = field(default_factory=dict)
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    down: str | None = None
    loads: int = 0

    def register(self, name: str, package: PackagedModel, alias: str | None = "champion") -> str:
        versions = self.models.setdefault(name, {})
        version = str(len(versions) + 1)
        versions[version] = package
        if alias:
            self.aliases[(name, alias)] = version
        return version

    def probe(self) -> str | None:
        return self.down

    def alias_version(self, name: str, alias: str) -> str | None:
        if self.down:
            raise RegistryError(self.down)
        return self.aliases.get((name, alias))

    def load(self, name: str, version: str, dst: Path) -> PackagedModel:
        self.loads += 1
        return self.models[name][version]

    def versions(self, name: str) -> list[RegistryVersion]:
        return [
            RegistryVersion(
                version=v,
                aliases=[a for (n, a), ver in self.aliases.items() if n == name and ver == v],
                run_id=None,
                created_at=None,
            )
            for v in self.models.get(name, {})
        ]


def write_population_snapshot(
    package: PackagedModel,
    settings: ServingSettings,
    version: str = "1",
    task: str = "arrears",
    frame: pd.DataFrame | None = None,
) -> pd.DataFrame:
    from serving.snapshot import score_frame, write_snapshot

    frame = scoring_frame() if frame is None else frame
    scores = score_frame(package, frame, ModelRef(name=f"gridrisk-{task}", version=version))
    write_snapshot(scores, settings.snapshots_path, task, AS_OF)
    return frame


def create_test_keys(keys_path: Path) -> dict[str, str]:
    """One key per role the tests use: a collector of station S01 and one of supply unit U2."""
    return {
        "service": create_key(keys_path, "service")[0],
        "analyst": create_key(keys_path, "analyst")[0],
        "admin": create_key(keys_path, "admin")[0],
        "collector": create_key(keys_path, "collector", stations=["S01"])[0],
        "unit_collector": create_key(keys_path, "collector", supply_units=["U2"])[0],
    }


def write_customers(settings: ServingSettings, frame: pd.DataFrame, names: list[str] | None = None) -> None:
    from features.sources import write_table

    n = len(frame)
    customers = pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "usage_category": frame["usage_category"],
            "industry_code": None,
            "voltage_kv": 0.4,
            "contract_capacity_kva": frame["contract_capacity_kva"],
            "tariff": "single",
            "payment_method": "counter",
            "supply_unit": frame["supply_unit"],
            "station": frame["station"],
            "area_id": "A1",
            "open_date": pd.Timestamp("2015-01-01"),
            "name": names if names is not None else [f"王小{i}" for i in range(n)],
            "phone": [f"1380000{i:04d}" for i in range(n)],
            "address": "某路1号",
        }
    )
    write_table(settings.warehouse_path, "customers", customers)
