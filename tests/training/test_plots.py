"""Plot helpers that must not hold on to training data."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap

FIRST_IMPORT = textwrap.dedent(
    """
    import gc, weakref

    class TrainingSet:  # stands for the frames a training run holds while it plots
        pass

    def train():
        frame = TrainingSet()
        from training.plots import import_shap
        import_shap()  # the first import of shap in this process happens deep in a training run
        return weakref.ref(frame)

    ref = train()
    gc.collect()
    print("alive" if ref() is not None else "freed")
    """
)


def test_importing_shap_inside_a_training_run_keeps_nothing_of_it_alive():
    # A fresh interpreter: shap records its import errors only the first time it is imported.
    out = subprocess.run([sys.executable, "-c", FIRST_IMPORT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "freed"


def _extents(fig, artists):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [a.get_window_extent(renderer) for a in artists]


def test_importance_tick_labels_do_not_run_together():
    # A tester's arrears importance plot read "10000125001500" under the bars: gains in the hundreds of
    # thousands beside long feature names.
    import numpy as np

    from training.plots import _pyplot, importance_figure
    from training.tasks import task_spec

    plt = _pyplot()
    names = sorted(task_spec("arrears").features, key=len)[-25:]  # the longest names: the narrowest axis
    gains = np.linspace(6_770, 135_397, 25)  # HEAD's axis: 0, 25000, … 125000 ran together
    fig = importance_figure(gains, names, "arrears", plt)
    fig.tight_layout()  # as the plot is saved
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
    xmin, xmax = ax.get_xlim()
    labels = [t for t in labels if xmin <= t.get_position()[0] <= xmax]
    boxes = sorted(_extents(fig, labels), key=lambda b: b.x0)
    assert len(boxes) >= 2
    assert all(a.x1 < b.x0 for a, b in itertools.pairwise(boxes)), [t.get_text() for t in labels]
    plt.close(fig)


def test_the_backtest_legend_covers_no_line():
    # The legend sat inside the first panel, over the oracle's line along its top.
    from types import SimpleNamespace

    import pandas as pd

    from training.backtest import BacktestReport, BacktestWindow, backtest_figure
    from training.plots import _pyplot

    windows = []
    for k, end in enumerate(["2023-08-31", "2023-05-31", "2023-02-28"], start=1):
        test = list(pd.date_range(end=end, periods=3, freq="ME"))
        metrics = {
            scorer: {
                "rows": 900.0,
                "positives": 40.0,
                "precision_at_5pct": 0.9 - 0.1 * i,
                "roc_auc": 0.95 - i / 10,
            }
            for i, scorer in enumerate(("oracle", "model", "logistic", "rule"))
        }
        windows.append(BacktestWindow(k, SimpleNamespace(test=test), metrics))
    report = BacktestReport("theft", "precision_at_5pct", windows, 3)
    plt = _pyplot()
    fig = backtest_figure(report, plt)
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    (legend,) = _extents(fig, legends)
    for box in _extents(fig, fig.axes):
        assert not legend.overlaps(box)
    for ax in fig.axes:  # nor the tick labels under the panels
        for box in _extents(fig, [t for t in ax.get_xticklabels() if t.get_text()]):
            assert not legend.overlaps(box)
    plt.close(fig)
