"""The values a live feature may take, read from the feature catalogue (`features.feature_sets.FEATURE_DOCS`).

A live record is refused (422) for a value the feature pipeline cannot produce, so that a reason never states
an impossible fact ("-5 active customers in the area", "1000000000000000000 of the last 12 months"). Only what
the catalogue says for sure is a rule:

- a 0/1 flag (unit `flag`) lies in [0, 1];
- a count (unit months, days, bills, payments, changes, applications, inspections, customers) whose sentence
  reads the same on both sides of zero (no sentences for a negative value, no up/down, no absolute value) is
  never negative;
- a count the sentence states as the number of months or days of the window its name ends with
  (`bills_zero_kwh_months_12m`: "{value} zero-kWh months in the last 12") is at most that window;
- a measure the catalogue clips at a cap (`FeatureDoc.cap`, ±1000 % for changes) is at most the cap.

Not rules, since a real warehouse can hold them: negative kWh, yuan, kVA or kV (a refund, a reversed register
kept by a warehouse another pipeline writes), percentages and ratios (a line loss below zero, a correlation),
and a change below −cap (a fall computed from a negative kWh goes past −100 %).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from features.feature_sets import FEATURE_DOCS, FeatureDoc

COUNT_UNITS = frozenset(
    {"months", "days", "bills", "payments", "changes", "applications", "inspections", "customers"}
)
_WINDOW = re.compile(r"_([0-9]+)([md])$")
_WINDOW_UNIT = {"m": "months", "d": "days"}


@dataclass(frozen=True)
class Domain:
    minimum: float | None
    maximum: float | None
    rule: str  # what the bounds come from, as a 422 and `GET /v1/{task}/features` say it

    def refusal(self, value: float) -> tuple[str, str] | None:
        """(error type, bound) when `value` is outside the domain, else None."""
        if self.minimum is not None and value < self.minimum:
            return "greater_than_equal", f"at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return "less_than_equal", f"at most {self.maximum:g}"
        return None


def _signed(doc: FeatureDoc) -> bool:
    sentences = (doc.zh, doc.en)
    return bool(doc.zh_negative or doc.en_negative) or any(
        "{dir_" in text or "{abs_value" in text for text in sentences
    )


@cache
def feature_domain(name: str) -> Domain | None:
    """The feature's domain, or None where the catalogue does not bound it (or does not know it)."""
    doc = FEATURE_DOCS.get(name)
    if doc is None:
        return None
    if doc.unit == "flag":
        return Domain(0.0, 1.0, "a 0/1 flag")
    minimum = maximum = None
    rules = []
    if doc.unit in COUNT_UNITS and not _signed(doc):
        minimum = 0.0
        rules.append(f"a number of {doc.unit}, never negative")
        window = _WINDOW.search(name)
        if window and _WINDOW_UNIT[window[2]] == doc.unit and doc.en.startswith("{value:.0f} "):
            maximum = float(window[1])
            rules.append(f"at most the {window[1]} {doc.unit} of its window")
    if doc.cap is not None:
        maximum = doc.cap if maximum is None else min(maximum, doc.cap)
        rules.append(f"capped at {doc.cap:g} {doc.unit} by the feature pipeline")
    if minimum is None and maximum is None:
        return None
    return Domain(minimum, maximum, "; ".join(rules))
