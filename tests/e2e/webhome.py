"""A small gridrisk home for the web page's browser test: five stations in two supply units with Chinese
names, an archive with PII, two years of bills and payments, three tasks' models registered in a SQLite
MLflow store (arrears with a champion and a refused challenger, suspension's v2 promoted by hand over v1),
this month's and last month's snapshots,
and one key per role."""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from tinymodel import AS_OF, scoring_frame, train_package
from webdata import write_history

from features.feature_sets import FEATURE_DOCS
from features.sources import write_table
from serving.access import create_key
from serving.model import FeatureSpec, PackagedModel, ReasonText, pyfunc_class
from serving.schemas import ModelRef
from serving.settings import ServingSettings
from serving.settlement import OPEN_BILLS, OUTSTANDING, open_bills, parse_open
from serving.snapshot import score_frame, write_snapshot
from training.registry import promote

STATIONS = {
    "城东供电所": "市区供电公司",
    "城西供电所": "市区供电公司",
    "高新供电所": "市区供电公司",
    "湖滨供电所": "东湖县供电公司",
    "青山供电所": "东湖县供电公司",
}
CUSTOMERS = 400
PREVIOUS_AS_OF = dt.date(2023, 5, 31)
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高")
GIVEN = ["建国", "秀英", "志强", "丽娟", "海燕", "永红", "伟", "芳", "磊", "静", "军", "敏", "涛", "娜", "勇"]


@dataclass
class WebHome:
    home: Path
    tracking_uri: str
    population: pd.DataFrame
    keys: dict[str, str]
    collector_station: str
    versions: dict[str, list[str]]
    names: dict[str, str]  # customer id -> name in the archive


# tinymodel's features under the names the feature catalogue gives them (features.feature_sets.FEATURE_DOCS),
# so this model's reasons are the catalogue's sentences: the README's screenshots come from it, and under
# tinymodel's own names they read `usage_category = agricultural` where served models say 用电类别：农业生产.
CATALOGUE_NAMES = {
    "bills_kwh_yoy_change_pct_90d": "bills_kwh_yoy_change_pct_3m",
    "payments_days_late_max_365d": "payments_days_late_max_365d",
    "contract_capacity_kva": "archive_capacity_kva",
    "usage_category": "archive_usage_category",
}
LOWEST_CHANGE_PCT = -95.0  # tinymodel draws kWh changes from N(0, 40); a fall of 122 % is no reading


def catalogue_package(seed: int, task: str, trees: int = 30) -> PackagedModel:
    """tinymodel's package with its inputs renamed to the catalogue's names and the catalogue's sentences. The
    booster reads its matrix by position, so the names are the spec's and the reasons' only."""
    package = train_package(seed=seed, trees=trees, task=task)
    spec = package.spec
    names = [CATALOGUE_NAMES[n] for n in spec.names]
    levels = {CATALOGUE_NAMES[n]: values for n, values in spec.categorical.items()}
    reasons = {n: ReasonText.from_doc(FEATURE_DOCS[n]) for n in names}
    return replace(package, spec=FeatureSpec(names, levels), reasons=reasons)


def population(seed: int = 3) -> pd.DataFrame:
    """Customers with tinymodel's features, also under their catalogue names (the archive and the snapshot's
    segments keep reading `usage_category` and `contract_capacity_kva`)."""
    frame = scoring_frame(n=CUSTOMERS, seed=seed)
    change = "bills_kwh_yoy_change_pct_90d"
    frame[change] = frame[change].clip(lower=LOWEST_CHANGE_PCT)
    for name, catalogued in CATALOGUE_NAMES.items():
        frame[catalogued] = frame[name]
    names = list(STATIONS)
    frame["station"] = [names[i % len(names)] for i in range(len(frame))]
    frame["supply_unit"] = frame["station"].map(STATIONS)
    return frame


def mark_paid_since(settings: ServingSettings, history: dict[str, pd.DataFrame], version: str) -> None:
    """This month's arrears snapshot with what each customer owed at its date, from the history written
    (`serving.settlement`). The late payer C0000004 pays May's bill after it; so do the list's second and
    fourth customers by expected loss, and its sixth pays half of it: the first page shows 已结清 twice and a
    part payment (the README's screenshot)."""
    path = settings.snapshots_path / "arrears" / f"{AS_OF.isoformat()}.parquet"
    scores = pd.read_parquet(path)
    by_loss = scores.sort_values(["expected_value", "rank"], ascending=[False, True])["customer_id"].tolist()
    pays = history["payments"].copy()
    may = pays["period"] == pd.Timestamp(AS_OF).replace(day=1) - pd.DateOffset(months=1)
    for who, share in ((by_loss[1], 1.0), (by_loss[3], 1.0), (by_loss[5], 0.5)):
        row = may & (pays["customer_id"] == who)
        pays.loc[row, "paid_at"] = pd.Timestamp("2023-07-03 10:15")
        pays.loc[row, "amount"] = (pays.loc[row, "amount"] * share).round(2)
    history["payments"] = pays
    write_table(settings.warehouse_path, "payments", pays)
    # What each customer owed at T, bill by bill, read from the warehouse as `gridrisk score` reads it.
    ids = scores["customer_id"]
    opens = open_bills(settings.warehouse_path, ids, np.full(len(ids), 1.0), AS_OF)
    scores[OPEN_BILLS] = opens
    scores[OUTSTANDING] = [round(sum(parse_open(text).values()), 2) for text in opens]
    write_snapshot(
        scores,
        settings.snapshots_path,
        "arrears",
        AS_OF,
        model=ModelRef(name="gridrisk-arrears", version=version),
    )


def write_archive(settings: ServingSettings, frame: pd.DataFrame) -> dict[str, str]:
    n = len(frame)
    rng = np.random.default_rng(5)
    customers = pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "usage_category": frame["usage_category"],
            "industry_code": np.where(frame["usage_category"] == "residential", None, "C34"),
            "voltage_kv": np.where(frame["contract_capacity_kva"] >= 315, 10.0, 0.4),
            "contract_capacity_kva": frame["contract_capacity_kva"],
            "tariff": np.where(frame["contract_capacity_kva"] >= 315, "two_part", "single"),
            "payment_method": rng.choice(["counter", "bank_withholding", "online"], n),
            "supply_unit": frame["supply_unit"],
            "station": frame["station"],
            "area_id": [f"TQ{i % 23:04d}" for i in range(n)],
            "open_date": pd.Timestamp("2012-03-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D"),
            "name": [f"{SURNAMES[i % len(SURNAMES)]}{GIVEN[(i * 7) % len(GIVEN)]}" for i in range(n)],
            "phone": [f"139{(i * 7919) % 10**8:08d}" for i in range(n)],
            "address": [f"东湖市{s[:2]}区建设路{i + 1}号" for i, s in enumerate(frame["station"])],
        }
    )
    write_table(settings.warehouse_path, "customers", customers)
    return dict(zip(customers["customer_id"], customers["name"], strict=True))


def log_refused(
    tracking_uri: str,
    experiment_id: str,
    name: str,
    package: PackagedModel,
    pr_auc: str,
    champion: str,
    workdir: Path,
) -> str:
    """A version the gate kept as challenger against champion v1 on PR-AUC, aliased `challenger`."""
    import mlflow

    refused = {
        "gate.decision": "refused",
        "gate.reason": "does not beat the champion's primary metric by the margin: "
        f"pr_auc {pr_auc} vs champion v1 {champion}",
    }
    version = log_version(tracking_uri, experiment_id, name, package, refused, workdir)
    mlflow.MlflowClient(tracking_uri).set_registered_model_alias(name, "challenger", version)
    return version


def log_version(
    tracking_uri: str,
    experiment_id: str,
    name: str,
    package: PackagedModel,
    tags: dict[str, str],
    workdir: Path,
) -> str:
    """Log a package as training does (pyfunc + package artifact), with test metrics, and register it."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metrics({f"test_{k}": v for k, v in package.metrics.items()})
        mlflow.log_metric("test_roc_auc_residential", 0.5)  # a segment metric: not on the models page
        path = package.save(Path(tempfile.mkdtemp(dir=workdir)) / "package")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_class()(),
            artifacts={"package": str(path)},
            pip_requirements=["lightgbm", "pandas"],
        )
    version = client.create_model_version(name, info.model_uri, run.info.run_id, tags=tags)
    return str(version.version)


def build(root: Path) -> WebHome:
    import mlflow

    home = root / "home"
    settings = ServingSettings(home=home)
    # The embedded store in the home, where `gridrisk serve` looks when MLFLOW_TRACKING_URI is not set.
    home.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{(home / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("web-e2e", artifact_location=(root / "artifacts").as_uri())

    frame = population()
    previous = population(seed=11)
    previous["as_of"] = pd.Timestamp(PREVIOUS_AS_OF)
    versions: dict[str, list[str]] = {}
    for i, task in enumerate(("arrears", "suspension", "theft")):
        name = f"gridrisk-{task}"
        client.create_registered_model(name)
        package = catalogue_package(seed=i, task=task)
        package.metrics = {"roc_auc": 0.81 - i / 50, "pr_auc": 0.42 - i / 50, "brier": 0.11}
        package.info["primary_metric"] = "pr_auc"
        gate = {"gate.decision": "promoted", "gate.reason": "no champion yet"}
        champion = log_version(tracking_uri, experiment_id, name, package, gate, root)
        client.set_registered_model_alias(name, "champion", champion)
        versions[task] = [champion]
        if task == "arrears":
            challenger = catalogue_package(seed=7, task=task, trees=40)
            challenger.metrics = {"roc_auc": 0.80, "pr_auc": 0.40, "brier": 0.12}
            versions[task].append(
                log_refused(tracking_uri, experiment_id, name, challenger, "0.4000", "0.4200", root)
            )
            old = score_frame(package, previous, ModelRef(name=name, version=champion))
            write_snapshot(old, settings.snapshots_path, task, PREVIOUS_AS_OF)
        if task == "suspension":
            # v2 promoted by hand over the gate's refusal: the models page names the v1 it replaced.
            package = catalogue_package(seed=8, task=task, trees=40)
            package.metrics = {"roc_auc": 0.78, "pr_auc": 0.37, "brier": 0.12}
            package.info["primary_metric"] = "pr_auc"
            versions[task].append(
                log_refused(tracking_uri, experiment_id, name, package, "0.3700", "0.4000", root)
            )
            promote(tracking_uri, task, versions[task][-1], "试点所复核：新版本的走访命中更高", user="e2e")
            champion = versions[task][-1]
        scores = score_frame(package, frame, ModelRef(name=name, version=champion))
        write_snapshot(scores, settings.snapshots_path, task, AS_OF)

    names = write_archive(settings, frame)
    history = write_history(settings, frame)
    # C0000002 stopped paying three months ago; give it a capacity reduction and a violation too, so one
    # customer file shows every section filled (the README's screenshot).
    extra_suspension = pd.DataFrame(
        {
            "application_id": ["A9"],
            "customer_id": ["C0000002"],
            "applied_at": [pd.Timestamp("2023-04-11 10:20")],
            "start_date": [pd.Timestamp("2023-05-01")],
            "end_date": [pd.NaT],
            "capacity_kva": [150.0],
            "kind": ["reduction"],
        }
    )
    extra_inspection = pd.DataFrame(
        {
            "inspection_id": ["I9"],
            "customer_id": ["C0000002"],
            "inspected_at": [pd.Timestamp("2023-05-18 09:40")],
            "result": ["violation"],
            "recovered_kwh": [860.0],
        }
    )
    write_table(settings.warehouse_path, "suspensions", pd.concat([history["suspensions"], extra_suspension]))
    write_table(settings.warehouse_path, "inspections", pd.concat([history["inspections"], extra_inspection]))
    mark_paid_since(settings, history, versions["arrears"][0])
    station = next(iter(STATIONS))
    keys = {
        "admin": create_key(settings.keys_path, "admin", note="e2e")[0],
        "analyst": create_key(settings.keys_path, "analyst", note="e2e")[0],
        "collector": create_key(settings.keys_path, "collector", stations=[station], note="e2e")[0],
        "service": create_key(settings.keys_path, "service", note="e2e")[0],
    }
    return WebHome(home, tracking_uri, frame, keys, station, versions, names)
