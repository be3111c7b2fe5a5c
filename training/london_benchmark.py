"""The London theft benchmark: real curves → injected theft → theft features → normal fit → held-out homes.

Imports and injects with `features/london.py`, builds features with `features.training_set`, fits with
`training.fit.TaskModel`, judges with `training.evaluate`, logs one MLflow run per seed. Protocol and
results: experiments/reports/london_theft.md.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import london
from features.london import InjectionProtocol, LondonData
from training.evaluate import pr_auc, roc_auc, top_k_share

logger = logging.getLogger(__name__)

EXPERIMENT = "gridrisk-london-theft"
TEST_SHARE = 0.30  # households held out when no --test folder is given
VALIDATION_SHARE = 0.20  # of the training households: early stopping and calibration
AS_OF_START = "2012-06"  # first month-end as-of date; the earliest onsets fall in mid-2012
MAP_K = 100
TOP_FRACTION = 0.05
FIGURE_KEYS = ("roc_auc", "pr_auc", "map_at_100", "precision_at_5pct", "baseline_roc_auc")
EXTRA_KEYS = ("recall_at_5pct", "roc_auc_pooled", "control_no_kwh_roc_auc")
CONTROL_FAMILIES = ("archive", "events", "payments")


class BenchmarkError(Exception):
    """The benchmark's inputs break a rule (overlapping households, no thieves on a side, …)."""


@dataclass
class Side:
    """One side of the benchmark (train or test): its injected data and the warehouse written from it."""

    name: str
    data: LondonData
    warehouse: Path


@dataclass
class BenchmarkResult:
    seed: int
    mode: str  # "split" (70/30 of --train) or "test" (--test folder)
    overall: dict[str, float]
    by_attack: dict[str, dict[str, float]]
    counts: dict[str, Any]
    as_of: list[str]
    seconds: float
    protocol: dict[str, Any] = field(default_factory=dict)
    breakdown: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None

    def figures(self) -> dict[str, Any]:
        """The --json document: headline keys, `by_attack` (one object per type) and what they rest on."""
        doc: dict[str, Any] = {k: self.overall[k] for k in (*FIGURE_KEYS, *EXTRA_KEYS)}
        doc["by_attack"] = self.by_attack
        doc["roc_auc_mean_over_attacks"] = float(np.nanmean([v["roc_auc"] for v in self.by_attack.values()]))
        doc.update(
            seed=self.seed,
            mode=self.mode,
            counts=self.counts,
            as_of=[self.as_of[0], self.as_of[-1]] if self.as_of else [],
            seconds=round(self.seconds, 1),
            protocol=self.protocol,
            breakdown=self.breakdown,
            mlflow_run_id=self.run_id,
        )
        return doc


Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    logger.info(msg)


# --- households and sides ---


def split_households(ids: Sequence[str], seed: int, share: float = TEST_SHARE) -> tuple[list[str], list[str]]:
    """Households → (train, test) by seed; every household lands on exactly one side."""
    ids = sorted(ids)
    rng = np.random.default_rng([seed, 11])
    n_test = round(share * len(ids))
    test = set(rng.choice(len(ids), size=n_test, replace=False).tolist())
    return [h for i, h in enumerate(ids) if i not in test], [h for i, h in enumerate(ids) if i in test]


def build_side(
    name: str,
    src: Path,
    households: Sequence[str],
    *,
    side_seed: int,
    workdir: Path,
    protocol: InjectionProtocol,
) -> Side:
    """Import one side's households alone (own 台区 and line loss), inject theft, write its warehouse."""
    data = london.import_frames(
        london.read_source(src, households),
        london.read_households(src),
        seed=side_seed,
        trial_end=london.source_last_day(src),
    )
    data = london.inject_theft(data, seed=side_seed, protocol=protocol)
    if not data.truth["is_thief"].any():
        raise BenchmarkError(
            f"the {name} side ({len(households)} households, {int(data.truth['is_eligible'].sum())} with "
            f"≥ {protocol.min_history_days} days) got no thief; give it more households"
        )
    warehouse = workdir / name
    london.write_warehouse(data, warehouse, side_seed)
    logger.info(
        "%s side: %d of %d households written to %s, %d source rows quarantined (%s/quarantine)",
        name, len(data.customers), len(households), warehouse, len(data.quarantine), warehouse,
    )  # fmt: skip
    return Side(name=name, data=data, warehouse=warehouse)


def as_of_dates(sides: Sequence[Side], start: str = AS_OF_START) -> list[pd.Timestamp]:
    """Month ends from `start` to the last one both warehouses can label and read (readings end the trial)."""
    from features.labels import latest_labelable_as_of
    from training.split import month_ends

    ends = []
    for side in sides:
        ends.append(pd.Timestamp(latest_labelable_as_of(side.warehouse, "theft")))
        ends.append(side.data.days[-1])
    end = min(ends)
    return [d for d in month_ends(start, f"{end:%Y-%m}") if d <= end]


def population(frame: pd.DataFrame, side: Side) -> pd.DataFrame:
    """The rows the benchmark learns from and judges: homes the protocol could attack, with their attack kind.

    Homes with under a year of data can never be thieves; keeping them would let a model score "short history"
    instead of theft, so both sides drop them (they still count in their 台区's supply and line loss).
    """
    truth = side.data.truth.set_index("customer_id")
    eligible = truth.index[truth["is_eligible"]]
    out = frame[frame["customer_id"].isin(eligible)].reset_index(drop=True)
    # Truth rides along only to slice the evaluation; the model reads its feature list, never these columns.
    t = truth.reindex(out["customer_id"])
    out["attack"] = t["attack"].to_numpy()
    out["truth_onset"] = t["onset_date"].to_numpy()
    out["truth_factor"] = t["factor"].to_numpy()
    out["truth_zero_end"] = (t["onset_date"] + pd.to_timedelta(t["zero_window_days"], unit="D")).to_numpy()
    return out


# --- metrics ---

ALPHA_BINS = (
    (0.1, 0.1 + 0.7 / 3),
    (0.1 + 0.7 / 3, 0.1 + 1.4 / 3),
    (0.1 + 1.4 / 3, 0.8),
)  # thirds of U(0.1, 0.8)


def average_precision_at_k(y: np.ndarray, score: np.ndarray, k: int = MAP_K) -> float:
    """AP@k of one ranked list: mean of precision@i over the hits i ≤ k, divided by min(k, positives)."""
    y = np.asarray(y, dtype=bool)
    positives = int(y.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")[:k]
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / min(k, positives))


def map_at_k(y: np.ndarray, score: np.ndarray, as_of: np.ndarray, k: int = MAP_K) -> float:
    """MAP@k: the mean over as-of dates of AP@k of that date's list (dates without a positive are skipped)."""
    values = []
    for date in np.unique(as_of):
        at = as_of == date
        if y[at].any():
            values.append(average_precision_at_k(y[at], score[at], k))
    return float(np.mean(values)) if values else float("nan")


def precision_at_fraction(y: np.ndarray, score: np.ndarray, as_of: np.ndarray, fraction: float) -> float:
    """Hit rate if the top `fraction` of each as-of date's list were inspected (as training.evaluate does)."""
    share = top_k_share(score, as_of, fraction=fraction)
    return float(share[y.astype(bool)].sum() / share.sum()) if share.any() else float("nan")


def recall_at_fraction(y: np.ndarray, score: np.ndarray, as_of: np.ndarray, fraction: float) -> float:
    """Share of the positive rows that the top `fraction` of their as-of date's list catches."""
    share = top_k_share(score, as_of, fraction=fraction)
    return float(share[y.astype(bool)].sum() / y.sum()) if y.any() else float("nan")


def within_date_roc_auc(y: np.ndarray, score: np.ndarray, as_of: np.ndarray) -> float:
    """ROC-AUC over (positive, negative) pairs of the SAME as-of date: each date's AUC weighted by its pairs.

    Thieves exist only late in the trial (onsets fall in the second half of each history), so a pooled AUC
    would also reward knowing the date; an inspection list is drawn per date, and this compares rows that
    compete for it.
    """
    num = den = 0.0
    for date in np.unique(as_of):
        at = as_of == date
        pos = float(y[at].sum())
        pairs = pos * (at.sum() - pos)
        if pairs > 0:
            num += roc_auc(y[at], score[at]) * pairs
            den += pairs
    return float(num / den) if den else float("nan")


def within_date_pr_auc(y: np.ndarray, score: np.ndarray, as_of: np.ndarray) -> float:
    """Average precision of each as-of date's list, weighted by the date's positives."""
    num = den = 0.0
    for date in np.unique(as_of):
        at = as_of == date
        pos = float(y[at].sum())
        if 0 < pos < at.sum():
            num += pr_auc(y[at], score[at]) * pos
            den += pos
    return float(num / den) if den else float("nan")


def ranking_metrics(
    y: np.ndarray, score: np.ndarray, baseline: np.ndarray, as_of: np.ndarray
) -> dict[str, float]:
    return {
        "roc_auc": within_date_roc_auc(y, score, as_of),
        "pr_auc": within_date_pr_auc(y, score, as_of),
        "map_at_100": map_at_k(y, score, as_of),
        "precision_at_5pct": precision_at_fraction(y, score, as_of, TOP_FRACTION),
        "recall_at_5pct": recall_at_fraction(y, score, as_of, TOP_FRACTION),
        "baseline_roc_auc": within_date_roc_auc(y, baseline, as_of),
        "baseline_pr_auc": within_date_pr_auc(y, baseline, as_of),
        "roc_auc_pooled": roc_auc(y, score),
        "rows": float(len(y)),
        "positives": float(y.sum()),
    }


def breakdown(rows: pd.DataFrame, score: np.ndarray) -> dict[str, dict[str, dict[str, float]]]:
    """Where detection is hard: within-date ROC-AUC of slices of the positive rows against all negatives."""
    y = rows["label"].to_numpy().astype(bool)
    as_of = rows["as_of"].to_numpy()
    days = (pd.to_datetime(rows["as_of"]) - pd.to_datetime(rows["truth_onset"])).dt.days.to_numpy()
    kind = rows["attack"].astype("string").fillna("").to_numpy(dtype=object)
    factor = rows["truth_factor"].to_numpy(dtype=np.float64)
    zero_on = as_of < rows["truth_zero_end"].to_numpy()
    slices = {
        "days_since_onset": {"0-29": days < 30, "30-89": (days >= 30) & (days < 90), "90+": days >= 90},
        "h1_alpha": {
            f"{lo:.2f}-{hi:.2f}": (kind == "h1") & (factor >= lo) & (factor < hi) for lo, hi in ALPHA_BINS
        },
        "h2_zero_window": {"ongoing": (kind == "h2") & zero_on, "ended": (kind == "h2") & ~zero_on},
    }
    out: dict[str, dict[str, dict[str, float]]] = {}
    for group, parts in slices.items():
        out[group] = {}
        for name, mask in parts.items():
            keep = ~y | (y & mask)
            out[group][name] = {
                "roc_auc": within_date_roc_auc(y[keep], score[keep], as_of[keep]),
                "positives": float((y & mask).sum()),
            }
    return out


def evaluate_rows(
    frame: pd.DataFrame, score: np.ndarray, baseline: np.ndarray, kinds: Sequence[str]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Overall metrics, and per attack kind on the negatives plus that kind's positives."""
    y = frame["label"].to_numpy().astype(bool)
    as_of = frame["as_of"].to_numpy()
    overall = ranking_metrics(y, score, baseline, as_of)
    kind = frame["attack"].astype("string").fillna("").to_numpy(dtype=object)
    by_attack = {}
    for k in kinds:
        keep = ~y | (kind == k)
        by_attack[k] = {"attack": k, **ranking_metrics(y[keep], score[keep], baseline[keep], as_of[keep])}
    return overall, by_attack


# --- the run ---


def run_benchmark(
    train_src: Path,
    test_src: Path | None = None,
    *,
    seed: int = 0,
    workdir: Path | None = None,
    tracking_uri: str | None = None,
    artifact_root: Path | None = None,
    experiment: str = EXPERIMENT,
    protocol: InjectionProtocol | None = None,
    households: Sequence[str] | None = None,
    as_of_start: str = AS_OF_START,
    progress: Progress = _quiet,
) -> BenchmarkResult:
    """Import → inject → features → fit → evaluate on held-out homes → MLflow (when `tracking_uri` is set).

    Without `test_src` the households of `train_src` (or `households`, a subset of it) are split 70/30 by
    seed; with it, every household of `train_src` trains and every household of `test_src` is judged, and the
    two must not share a household. Each side is imported alone, so no 台区, line loss or peer statistic
    mixes them.
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="london-theft-") as tmp:
            return run_benchmark(
                train_src, test_src, seed=seed, workdir=Path(tmp), tracking_uri=tracking_uri,
                artifact_root=artifact_root, experiment=experiment, protocol=protocol, households=households,
                as_of_start=as_of_start, progress=progress,
            )  # fmt: skip
    started = time.perf_counter()
    protocol = protocol or InjectionProtocol()
    workdir = Path(workdir)
    ids_a = sorted(households) if households is not None else london.source_households(train_src)
    if test_src is None:
        mode = "split"
        train_ids, test_ids = split_households(ids_a, seed)
        test_src = train_src
    else:
        mode = "test"
        train_ids, test_ids = ids_a, london.source_households(test_src)
        shared = sorted(set(train_ids) & set(test_ids))
        if shared:
            raise BenchmarkError(
                f"--train and --test share {len(shared)} households (e.g. {shared[:3]}); a household's own "
                "history must never be both learned and judged — give --test a disjoint set (features.london."
                "write_source_subset makes one)"
            )
    progress(f"importing and injecting: {len(train_ids)} training and {len(test_ids)} test households")
    train = build_side("train", train_src, train_ids, side_seed=seed * 2, workdir=workdir, protocol=protocol)
    test = build_side("test", test_src, test_ids, side_seed=seed * 2 + 1, workdir=workdir, protocol=protocol)
    dates = as_of_dates([train, test], as_of_start)
    if not dates:
        raise BenchmarkError(f"no month-end as-of date from {as_of_start} can be labelled in both warehouses")

    from features.training_set import build_training_set

    progress(f"building theft features at {len(dates)} as-of dates ({dates[0]:%Y-%m} … {dates[-1]:%Y-%m})")
    train_rows = population(build_training_set(train.warehouse, "theft", dates), train)
    test_rows = population(build_training_set(test.warehouse, "theft", dates), test)
    for name, rows in (("training", train_rows), ("test", test_rows)):
        if rows["label"].nunique() < 2:
            raise BenchmarkError(
                f"the {name} rows have one label class only ({len(rows)} rows); add households"
            )

    progress(f"fitting on {len(train_rows)} rows ({int(train_rows['label'].sum())} positive)")
    model, features = fit_model(train_rows, seed)
    score = model.raw_probability(test_rows)
    baseline = rule_baseline(test_rows)
    overall, by_attack = evaluate_rows(test_rows, score, baseline, protocol.attack_kinds)
    hard = breakdown(test_rows, score)
    progress("fitting the no-consumption control")
    control, _ = fit_model(train_rows, seed, control_features())
    overall["control_no_kwh_roc_auc"] = within_date_roc_auc(
        test_rows["label"].to_numpy().astype(bool),
        control.raw_probability(test_rows),
        test_rows["as_of"].to_numpy(),
    )

    counts = {
        "households_train": len(train.data.customers),
        "households_test": len(test.data.customers),
        "eligible_train": int(train.data.truth["is_eligible"].sum()),
        "eligible_test": int(test.data.truth["is_eligible"].sum()),
        "thieves_train": int(train.data.truth["is_thief"].sum()),
        "thieves_test": int(test.data.truth["is_thief"].sum()),
        # Source rows each side's import kept out of its readings (README, London section: the rules).
        "quarantined_rows_train": len(train.data.quarantine),
        "quarantined_rows_test": len(test.data.quarantine),
        "rows_train": len(train_rows),
        "rows_test": len(test_rows),
        "positives_train": int(train_rows["label"].sum()),
        "positives_test": int(test_rows["label"].sum()),
        "features": len(features),
        "trees": int(model.best_iteration_),
    }
    result = BenchmarkResult(
        seed=seed,
        mode=mode,
        overall=overall,
        by_attack=by_attack,
        counts=counts,
        as_of=[f"{d:%Y-%m-%d}" for d in dates],
        seconds=time.perf_counter() - started,
        protocol={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(protocol).items()},
        breakdown=hard,
    )
    if tracking_uri is not None:
        progress(f"logging to MLflow experiment {experiment!r}")
        result.run_id = log_run(
            result, tracking_uri, artifact_root, experiment, test_rows, score, model, features
        )
    result.seconds = time.perf_counter() - started
    return result


def theft_features() -> list[str]:
    from features.feature_sets import TASK_FEATURES

    return list(TASK_FEATURES["theft"])


def control_features() -> list[str]:
    """The theft features that read no kWh at all (archive, events, payments): what the protocol alone leaks.

    A model on these should rank thieves barely better than chance within a date; its edge over 0.5 measures
    the protocol's shortcuts (mainly tenure: thieves start in the second half of their history), not theft.
    """
    from features.feature_sets import FEATURE_DOCS

    return [f for f in theft_features() if FEATURE_DOCS[f].family in CONTROL_FAMILIES]


def fit_model(train_rows: pd.DataFrame, seed: int, features: list[str] | None = None):
    """The normal theft fit (`TaskModel`), early-stopped and calibrated on a fifth of the training homes."""
    from training.config import default_config
    from training.fit import TaskModel

    features = theft_features() if features is None else features
    config = default_config("theft")
    params = config.lightgbm.model_copy(update={"seed": seed})
    _, val_ids = split_households(train_rows["customer_id"].unique(), seed + 1000, VALIDATION_SHARE)
    is_val = train_rows["customer_id"].isin(set(val_ids)).to_numpy()
    model = TaskModel("theft", features, params, calibration=config.calibration.method)
    model.fit(train_rows[~is_val].reset_index(drop=True), train_rows[is_val].reset_index(drop=True))
    return model, features


def rule_baseline(rows: pd.DataFrame) -> np.ndarray:
    """The theft task's rule baseline: consumption drop vs own history (training/tasks.py)."""
    from training.tasks import task_spec

    return task_spec("theft").rule_scores(rows)


# --- MLflow and presentation ---


def log_run(
    result: BenchmarkResult,
    tracking_uri: str,
    artifact_root: Path | None,
    experiment: str,
    test_rows: pd.DataFrame,
    score: np.ndarray,
    model: Any,
    features: list[str],
) -> str:
    import mlflow

    from training.registry import ensure_experiment

    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment, artifact_root)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"london-theft-{result.mode}-seed{result.seed}"
    ) as run:
        mlflow.set_tags({"task": "theft", "benchmark": "london-theft", "mode": result.mode})
        mlflow.log_params(
            {
                "seed": result.seed,
                "mode": result.mode,
                "as_of_first": result.as_of[0],
                "as_of_last": result.as_of[-1],
                **{f"protocol_{k}": v for k, v in result.protocol.items()},
                **{k: v for k, v in result.counts.items() if k != "trees"},
            }
        )
        metrics = {
            f"test_{k}": v for k, v in result.overall.items() if not k.startswith(("baseline_", "control_"))
        }
        metrics["baseline_no_kwh_model_roc_auc"] = result.overall["control_no_kwh_roc_auc"]
        metrics["baseline_consumption_drop_roc_auc"] = result.overall["baseline_roc_auc"]
        metrics["baseline_consumption_drop_pr_auc"] = result.overall["baseline_pr_auc"]
        for kind, m in result.by_attack.items():
            metrics.update(
                {f"test_{k}_{kind}": v for k, v in m.items() if isinstance(v, float) and "baseline" not in k}
            )
            metrics[f"baseline_consumption_drop_roc_auc_{kind}"] = m["baseline_roc_auc"]
        metrics["test_roc_auc_mean_over_attacks"] = result.figures()["roc_auc_mean_over_attacks"]
        metrics["trees"] = float(result.counts["trees"])
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
        mlflow.log_dict(result.figures(), "london_theft.json")
        importance = pd.DataFrame(
            {"feature": features, "gain": model.booster_.feature_importance(importance_type="gain")}
        ).sort_values("gain", ascending=False)
        mlflow.log_text(importance.to_csv(index=False), "feature_importance.csv")
        with tempfile.TemporaryDirectory() as tmp:
            path = plot_roc_by_attack(test_rows, score, Path(tmp) / "roc_by_attack.png")
            mlflow.log_artifact(str(path))
        return run.info.run_id


def plot_roc_by_attack(rows: pd.DataFrame, score: np.ndarray, path: Path) -> Path:
    """ROC curve per attack kind (the negatives plus that kind's positives), all dates' rows pooled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    y = rows["label"].to_numpy().astype(bool)
    kind = rows["attack"].astype("string").fillna("").to_numpy(dtype=object)
    fig, ax = plt.subplots(figsize=(5, 5))
    for k in sorted(set(kind[y])):
        keep = ~y | (kind == k)
        fpr, tpr, _ = roc_curve(y[keep], score[keep])
        ax.plot(fpr, tpr, label=f"{k}  pooled AUC {roc_auc(y[keep], score[keep]):.3f}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="London theft: held-out homes")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_attack_examples(src: Path, household: str, path: Path, seed: int = 0) -> Path:
    """One real home's daily kWh with each attack h1–h5 injected from the same onset, as the protocol does."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from features.attacks import apply_attack

    data = london.import_frames(
        london.read_source(src, [household]), london.read_households(src), seed=seed, trial_end=None
    )
    x = data.true_kwh[0]
    observed = np.flatnonzero(~np.isnan(x))
    first, last = observed[0], observed[-1]
    onset = first + (last - first + 1) * 2 // 3
    rng = np.random.default_rng(seed)
    kinds = InjectionProtocol().attack_kinds
    fig, axes = plt.subplots(len(kinds), 1, figsize=(9, 1.6 * len(kinds)), sharex=True, sharey=True)
    span = slice(first, last + 1)
    for ax, kind in zip(axes, kinds, strict=True):
        params: dict[str, Any] = {"onset": onset}
        if kind == "h2":
            params["window"] = (np.array([onset]), np.array([onset + 60]))
        attacked = apply_attack(kind, x[None, :], rng, **params)[0]
        ax.plot(data.days[span], x[span], color="lightgrey", lw=0.8, label="true use")
        ax.plot(data.days[span], attacked[span], color="tab:red", lw=0.8, label="metered")
        ax.axvline(data.days[onset], color="black", lw=0.6, ls=":")
        ax.set_ylabel(f"{kind}\nkWh/day")
    axes[0].legend(loc="upper left", ncol=2, fontsize=8)
    axes[0].set_title(f"Household {household}: the five attacks from one onset (dotted line)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


TABLE_COLUMNS = (
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("map_at_100", "MAP@100"),
    ("precision_at_5pct", "P@5%"),
    ("recall_at_5pct", "R@5%"),
    ("baseline_roc_auc", "rule AUC"),
)


def render_result(result: BenchmarkResult):
    """A rich table of the headline figures, overall and per attack kind, plus the no-kWh control."""
    from rich.table import Table

    control = result.overall.get("control_no_kwh_roc_auc", float("nan"))
    table = Table(
        title=f"London theft — seed {result.seed}, {result.mode}, {result.seconds:.0f} s",
        caption=f"within-date ROC-AUC; no-kWh control {_fmt(control)}",
    )
    table.add_column("rows")
    for _, label in TABLE_COLUMNS:
        table.add_column(label, justify="right")
    table.add_column("positives", justify="right")
    for label, m in (("all", result.overall), *result.by_attack.items()):
        table.add_row(label, *[_fmt(m[k]) for k, _ in TABLE_COLUMNS], f"{int(m['positives'])}")
    return table


def _fmt(value: float) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.3f}"


def summarise_seeds(documents: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Mean and sd over seeds of each headline figure, overall and per attack kind (rows), for the report."""
    records = []
    for doc in documents:
        records.append({"scope": "all", **{k: doc.get(k, np.nan) for k in (*FIGURE_KEYS, *EXTRA_KEYS)}})
        records.extend(
            {"scope": k, **{f: v.get(f, np.nan) for f in (*FIGURE_KEYS, "recall_at_5pct")}}
            for k, v in doc["by_attack"].items()
        )
        records.append({"scope": "mean over attacks", "roc_auc": doc["roc_auc_mean_over_attacks"]})
    frame = pd.DataFrame(records)
    grouped = frame.groupby("scope", sort=False)
    return grouped.mean().join(grouped.std(ddof=1), rsuffix="_sd").join(grouped.size().rename("seeds"))


def summary_markdown(documents: Sequence[dict[str, Any]]) -> str:
    table = summarise_seeds(documents)
    keys = [k for k in (*FIGURE_KEYS, *EXTRA_KEYS) if k in table.columns]
    head = "| scope | " + " | ".join(keys) + " |"
    lines = [head, "|" + " --- |" * (len(keys) + 1)]
    for scope, row in table.iterrows():
        cells = []
        for k in keys:
            mean, sd = row[k], row[f"{k}_sd"]
            cells.append("—" if not np.isfinite(mean) else f"{mean:.3f} ± {sd:.3f}")
        lines.append(f"| {scope} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def breakdown_markdown(documents: Sequence[dict[str, Any]]) -> str:
    """Mean ± sd over seeds of the within-date ROC-AUC of each hard slice, with its mean positive rows."""
    records = [
        {"slice": f"{group}: {name}", "roc_auc": v["roc_auc"], "positives": v["positives"]}
        for doc in documents
        for group, parts in doc.get("breakdown", {}).items()
        for name, v in parts.items()
    ]
    if not records:
        return ""
    frame = pd.DataFrame(records).groupby("slice", sort=False)
    lines = ["| positive rows in the slice | roc_auc | positives per seed |", "| --- | --- | --- |"]
    for name, g in frame:
        auc = g["roc_auc"]
        lines.append(f"| {name} | {auc.mean():.3f} ± {auc.std(ddof=1):.3f} | {g['positives'].mean():.0f} |")
    return "\n".join(lines)


def load_documents(paths: Sequence[Path]) -> list[dict[str, Any]]:
    return [json.loads(Path(p).read_text()) for p in paths]
