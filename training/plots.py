"""Pictures of a test evaluation, written as PNG files that `training/experiment.py` logs as MLflow artifacts.

ROC, precision-recall, calibration, gain/lift (model against its baselines), SHAP summary and importance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from training.evaluate import Scored, lift_by_decile


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def write_plots(
    out_dir: Path,
    frame: pd.DataFrame,
    scorers: list[Scored],
    *,
    contributions: np.ndarray,
    X: np.ndarray,
    feature_names: list[str],
    importance_gain: np.ndarray,
    title: str,
) -> list[Path]:
    """Write every plot into `out_dir`; returns the paths written."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    y = frame["label"].to_numpy().astype(int)
    as_of = frame["as_of"].to_numpy()
    paths: list[Path] = []

    fig, ax = plt.subplots(figsize=(5, 5))
    for s in scorers:
        fpr, tpr, _ = roc_curve(y, s.score)
        ax.plot(fpr, tpr, label=s.name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC — {title}")
    ax.legend(loc="lower right")
    paths.append(_save(fig, out_dir / "roc.png", plt))

    fig, ax = plt.subplots(figsize=(5, 5))
    for s in scorers:
        precision, recall, _ = precision_recall_curve(y, s.score)
        ax.plot(recall, precision, label=s.name)
    ax.axhline(y.mean(), color="grey", linestyle=":", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall — {title}")
    ax.legend(loc="upper right")
    paths.append(_save(fig, out_dir / "pr.png", plt))

    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for s in scorers:
        if s.probability is None:
            continue
        # Equal-count bins: with rare positives, equal-width bins above 0.3 would hold a few rows each.
        table = quantile_calibration(y, s.probability, bins=20)
        ax.plot(table["predicted"], table["observed"], marker="o", markersize=3, label=s.name)
        top = max(top, float(table["predicted"].max()), float(table["observed"].max()))
    ax.plot([0, top], [0, top], color="grey", linestyle=":")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", title=f"Calibration — {title}")
    ax.legend(loc="upper left")
    paths.append(_save(fig, out_dir / "calibration.png", plt))

    fig, (ax_gain, ax_lift) = plt.subplots(1, 2, figsize=(10, 4.5))
    for s in scorers:
        order = s.list_score if s.list_score is not None else s.score
        table = lift_by_decile(y, order, as_of)
        ax_gain.plot(
            np.r_[0, table["decile"] * 10], np.r_[0, table["cumulative_gain"]], marker="o", label=s.name
        )
        ax_lift.plot(table["decile"], table["lift"], marker="o", label=s.name)
    ax_gain.plot([0, 100], [0, 1], color="grey", linestyle=":")
    ax_gain.set(xlabel="% of list visited (riskiest first)", ylabel="share of positives found", title="Gain")
    ax_lift.axhline(1.0, color="grey", linestyle=":")
    ax_lift.set(xlabel="decile (1 = riskiest)", ylabel="lift", title="Lift by decile")
    ax_gain.legend(loc="lower right")
    fig.suptitle(title)
    paths.append(_save(fig, out_dir / "gain_lift.png", plt))

    fig = importance_figure(importance_gain, feature_names, title, plt)
    paths.append(_save(fig, out_dir / "importance.png", plt))

    paths.append(_shap_summary(out_dir / "shap_summary.png", contributions, X, feature_names, plt))
    return paths


def importance_figure(importance_gain: np.ndarray, feature_names: list[str], title: str, plt):
    """The 25 features of most total gain. Beside long feature names the axis is narrow, and gains in the
    hundreds of thousands ran their tick labels together ("10000125001500"): at most four ticks, written
    short (125k, 1.5M)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    order = np.argsort(importance_gain)[::-1][:25][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(order) + 1.2))
    ax.barh([feature_names[i] for i in order], importance_gain[order])
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4, min_n_ticks=2))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: short_number(x)))
    ax.set(xlabel="total gain", title=f"Feature importance — {title}")
    return fig


def short_number(x: float) -> str:
    """12, 125k, 1.5M: a tick label a few characters wide."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def quantile_calibration(y: np.ndarray, p: np.ndarray, bins: int) -> pd.DataFrame:
    """Mean predicted probability and observed rate in equal-count bins of the prediction."""
    order = np.argsort(p, kind="mergesort")
    group = np.arange(len(p)) * bins // max(len(p), 1)
    frame = pd.DataFrame({"group": group, "p": np.asarray(p)[order], "y": np.asarray(y)[order]})
    return frame.groupby("group").agg(predicted=("p", "mean"), observed=("y", "mean")).reset_index()


def import_shap():
    """shap, imported without keeping its importer alive.

    On import shap records the ImportError of each optional extension it lacks (cv2, its GPU explainer) with
    the traceback, in a module global. A traceback holds the frames of the stack that imported shap, and
    each frame its caller: here the training run's, with the whole training set and its splits, for the life
    of the process (`gridrisk train --task all` carried the first task's data into the next two). The
    messages are kept; the tracebacks are dropped.
    """
    import shap

    errors = getattr(getattr(shap.utils, "_general", None), "import_errors", {})
    for entry in errors.values():
        for item in entry if isinstance(entry, tuple) else (entry,):
            while isinstance(item, BaseException):
                item.__traceback__ = None
                item = item.__context__ or item.__cause__
    return shap


def _shap_summary(path: Path, contributions: np.ndarray, X: np.ndarray, names: list[str], plt) -> Path:
    """SHAP beeswarm from LightGBM's own pred_contrib values (the same numbers the service explains with)."""
    shap = import_shap()

    shap.summary_plot(
        contributions[:, :-1],
        features=X,
        feature_names=names,
        show=False,
        max_display=20,
        plot_size=(8, 7),
    )
    fig = plt.gcf()
    fig.suptitle("SHAP (log-odds) on the test window")
    return _save(fig, path, plt)


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
