"""Plot helpers that must not hold on to training data."""

from __future__ import annotations

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
