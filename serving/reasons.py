"""Reason codes: the top-k TreeSHAP contributions per row, picked vectorised, and their sentences in zh/en.

Batch scoring stores feature, value and contribution; sentences are rendered at request time from the
serving model's templates, so a wording fix needs no re-scoring.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from serving.model import PackagedModel


def top_k(
    contributions: np.ndarray, k: int, magnitude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Column indices (n, k) of the largest |contribution| per row, largest first, and those contributions.

    `contributions` holds feature columns only (no base value); ``magnitude`` (default: their absolute
    values) is the order to pick in (`PackagedModel.reason_magnitude`). argpartition keeps this
    O(n * features), so picking reasons costs a small fraction of computing them.
    """
    n, m = contributions.shape
    k = min(k, m)
    magnitude = np.abs(contributions) if magnitude is None else magnitude
    if k < m:
        candidates = np.argpartition(magnitude, m - k, axis=1)[:, m - k :]
    else:
        candidates = np.broadcast_to(np.arange(m), (n, m))
    order = np.argsort(-np.take_along_axis(magnitude, candidates, axis=1), axis=1, kind="stable")
    idx = np.take_along_axis(candidates, order, axis=1)
    return idx, np.take_along_axis(contributions, idx, axis=1)


def decode_values(
    package: PackagedModel, idx: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Split matrix values of the chosen features into numbers and category labels (vectorised per feature).

    Returns (numbers, labels): numbers is NaN where the feature is categorical or missing; labels is an object
    array holding the category level where the feature is categorical and known, else None.
    """
    numbers = values.astype(np.float64, copy=True)
    labels = np.full(values.shape, None, dtype=object)
    names = package.spec.names
    for feature, levels in package.spec.categorical.items():
        j = names.index(feature)
        hit = idx == j
        if not hit.any():
            continue
        codes = values[hit]
        known = ~np.isnan(codes)
        decoded = np.full(codes.shape, None, dtype=object)
        decoded[known] = np.asarray(levels, dtype=object)[codes[known].astype(np.int64)]
        labels[hit] = decoded
        numbers[hit] = np.nan
    return numbers, labels


def reason_value(number: float, label: str | None) -> float | str | None:
    if label is not None:
        return label
    # JSON has no NaN or Infinity: a missing or non-finite feature value is reported as null (unknown).
    return float(number) if math.isfinite(number) else None


def build_reasons(
    package: PackagedModel,
    features: list[str],
    numbers: list[float],
    labels: list[str | None],
    contributions: list[float],
    lang: str,
) -> list[dict[str, Any]]:
    """One row's reasons as plain dicts (the `Reason` schema's fields), sentences from `package`'s templates.

    Plain dicts, not schema objects: a 1,000-customer response holds 5,000 of them, and the route serializes
    them once (pydantic would validate each on construction).
    """
    out = []
    for feature, number, label, contribution in zip(features, numbers, labels, contributions, strict=True):
        if feature is None:  # fewer features than k
            continue
        value = reason_value(number, label)
        out.append(
            {
                "feature": feature,
                "value": value,
                "contribution": contribution,
                "direction": "raises" if contribution >= 0 else "lowers",
                "text": package.reason_text(feature, value, lang),
            }
        )
    return out
