"""Scores and reasons: one pred_contrib pass, margins that add up, agreement with shap, vectorised top-k."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from tinymodel import FEATURES, feature_frame

from serving.errors import InvalidPayload
from serving.reasons import top_k
from serving.scoring import explain, records_matrix


def test_contributions_plus_base_equal_raw_margin(package):
    X = package.spec.matrix(feature_frame(200, seed=11))
    ex = explain(package, X, k=3)
    np.testing.assert_allclose(ex.raw_margin, package.raw_margin(X), atol=1e-9)
    np.testing.assert_allclose(ex.probability, package.predict_proba(X), atol=1e-12)
    full = package.contributions(X)
    np.testing.assert_allclose(full[:, :-1].sum(axis=1) + ex.base_value, ex.raw_margin, atol=1e-9)


def test_contributions_agree_with_shap_tree_explainer(package):
    shap = pytest.importorskip("shap")
    X = package.spec.matrix(feature_frame(50, seed=12))
    explainer = shap.TreeExplainer(package.booster)
    values = np.asarray(explainer.shap_values(X))
    values = values[-1] if values.ndim == 3 else values  # older shap returns one array per class
    ours = package.contributions(X)
    np.testing.assert_allclose(values, ours[:, :-1], atol=1e-6)
    np.testing.assert_allclose(np.ravel(explainer.expected_value)[-1], ours[0, -1], atol=1e-6)


def test_top_k_matches_a_full_sort():
    rng = np.random.default_rng(0)
    contrib = rng.normal(size=(500, 12))
    idx, vals = top_k(contrib, 5)
    reference = np.argsort(-np.abs(contrib), axis=1)[:, :5]
    np.testing.assert_array_equal(np.abs(vals), np.take_along_axis(np.abs(contrib), reference, axis=1))
    np.testing.assert_array_equal(vals, np.take_along_axis(contrib, idx, axis=1))
    assert (np.diff(np.abs(vals), axis=1) <= 0).all()


def test_top_k_with_more_reasons_than_features():
    contrib = np.array([[0.1, -0.5, 0.2]])
    idx, vals = top_k(contrib, 5)
    assert idx.tolist() == [[1, 2, 0]]
    assert vals.tolist() == [[-0.5, 0.2, 0.1]]


def test_a_row_never_shows_one_fact_twice():
    # Every bill paid 32 days late: 「近90天账单平均逾期 32 天」 and 「近90天账单平均逾期 32 天缴清」
    # were both among the top three reasons of half the high-band arrears customers. The stronger is shown.
    from serving.model import Calibrator, FeatureSpec, PackagedModel

    names = ["payments_days_late_mean_90d", "payments_days_before_due_mean_90d", "a", "b"]
    package = PackagedModel("arrears", None, FeatureSpec(names), Calibrator("none"))
    contrib = np.array([[0.9, 0.8, 0.1, 0.05], [0.3, -0.7, 0.2, 0.1], [0.01, 0.02, 0.5, 0.4]])
    idx, vals = top_k(contrib, 3, package.reason_magnitude(contrib))
    assert idx[:, :2].tolist() == [[0, 2], [1, 2], [2, 3]]
    assert vals[:, :2].tolist() == [[0.9, 0.1], [-0.7, 0.2], [0.5, 0.4]]
    assert idx[0, 2] != 1 and idx[1, 2] != 0  # the weaker of the pair only fills a slot nothing else can


def test_top_reasons_of_the_package_agree_with_explain(package):
    X = package.spec.matrix(feature_frame(20, seed=13))
    ex = explain(package, X, k=3)
    reference = package.top_reasons(X, k=3)
    for r, reasons in enumerate(reference):
        assert [x.contribution for x in reasons] == pytest.approx(ex.contribution[r].tolist())


def test_records_encode_exactly_like_the_frame_matrix(package):
    frame = feature_frame(30, seed=14)
    frame.loc[0, "usage_category"] = "unheard_of"  # unknown level -> missing, as FeatureSpec.matrix does
    frame.loc[1, "bills_kwh_yoy_change_pct_90d"] = np.nan  # null -> NaN
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    records[2]["bills_kwh_yoy_change_pct_90d"] = "12.5"  # a numeric string is read as a number
    frame.loc[2, "bills_kwh_yoy_change_pct_90d"] = 12.5
    np.testing.assert_array_equal(records_matrix(package.spec, records), package.spec.matrix(frame))


def test_records_errors_name_the_field_paths(package):
    good = dict(zip(FEATURES, [1.0, 2.0, 50.0, "residential"], strict=True))
    missing = {k: v for k, v in good.items() if k != "contract_capacity_kva"}  # a feature left out
    not_a_number = {**good, "payments_days_late_max_365d": "late"}  # text where a number belongs
    with pytest.raises(InvalidPayload) as info:
        records_matrix(package.spec, [good, missing, not_a_number])
    # A record's fields first (unknown, missing), record by record; then values feature by feature.
    assert [e["loc"] for e in info.value.errors] == [
        ["body", "records", 1, "contract_capacity_kva"],
        ["body", "records", 2, "payments_days_late_max_365d"],
    ]


def test_reason_values_are_decoded_categories(package):
    frame = pd.DataFrame([dict(zip(FEATURES, [-80.0, 40.0, 8.0, "general_commercial"], strict=True))])
    ex = explain(package, package.spec.matrix(frame), k=4)
    names = [package.spec.names[j] for j in ex.reason_index[0]]
    at = names.index("usage_category")
    assert ex.label[0, at] == "general_commercial"
    assert np.isnan(ex.number[0, at])


def test_a_signed_measure_reads_in_words_on_either_side_of_zero(package, tmp_path):
    import json
    from dataclasses import replace

    from features.feature_sets import FEATURE_DOCS
    from serving.model import PackagedModel, ReasonText

    name = "payments_days_before_due_mean_365d"
    signed = replace(package, reasons={**package.reasons, name: ReasonText.from_doc(FEATURE_DOCS[name])})
    said = "bills due in the last year: on average {}"
    early, late = (
        "before the due date (open ones count their days overdue)",
        "past the due date (open ones count so far)",
    )
    assert signed.reason_text(name, 5.2, "en") == said.format(f"5 days {early}")
    assert signed.reason_text(name, -35.75, "en") == said.format(f"36 days {late}")
    # An open bill counts its days overdue so far: 缴清 / "paid" read two unpaid bills of three as paid late.
    assert signed.reason_text(name, -35.75, "zh") == "近一年到期账单平均超过到期日 36 天（含至今未缴清的）"
    # Unknown (a customer with no bill due yet): "nan days before", and a value of None gave the raw name
    # "payments_days_before_due_mean_365d = —" on the page; now the sentence says there is no data.
    none = f"bills due in the last year: on average — days {early} (no data)"
    assert signed.reason_text(name, float("nan"), "en") == signed.reason_text(name, None, "en") == none
    assert (
        signed.reason_text(name, None, "zh")
        == "近一年到期账单平均早于到期日 — 天（未缴清的按已逾期天数计）（无数据）"
    )
    category = "archive_industry_code"
    worded = replace(package, reasons={category: ReasonText.from_doc(FEATURE_DOCS[category])})
    assert worded.reason_text(category, None, "zh") == "行业分类：—（无数据）"

    loaded = PackagedModel.load(signed.save(tmp_path / "new"))  # the negative sentences travel with the model
    assert loaded.reason_text(name, -3.0, "en").endswith(f"3 days {late}")
    doc = json.loads((tmp_path / "new" / "package.json").read_text())
    for reason in doc["reasons"].values():  # a package saved before negative sentences existed …
        reason.pop("zh_negative"), reason.pop("en_negative")
    doc["reasons"][name]["ru"] = "…or by a release that added a key this one does not know"
    doc["reasons"][name]["en"] = "paid {value:.0f} days before the due date (negative: late)"
    (tmp_path / "new" / "package.json").write_text(json.dumps(doc))
    old = PackagedModel.load(tmp_path / "new")  # still loads and speaks as it was trained to
    assert old.reason_text(name, -3.0, "en") == "paid -3 days before the due date (negative: late)"


def test_a_coded_category_reads_in_words(package):
    # 「缴费方式：online」: the contract's code inside a Chinese sentence.
    from dataclasses import replace

    from features.feature_sets import FEATURE_DOCS
    from serving.model import ReasonText

    names = ("archive_payment_method", "archive_tariff", "archive_usage_category", "archive_industry_code")
    worded = replace(package, reasons={n: ReasonText.from_doc(FEATURE_DOCS[n]) for n in names})
    assert worded.reason_text("archive_payment_method", "online", "zh") == "缴费方式：网上缴费"
    assert worded.reason_text("archive_tariff", "two_part", "en") == "tariff: Two-part"
    assert worded.reason_text("archive_usage_category", "large_industrial", "zh") == "用电类别：大工业"
    assert worded.reason_text("archive_usage_category", "fishery", "zh") == "用电类别：fishery"  # a new code
    assert worded.reason_text("archive_industry_code", "C13", "zh") == "行业分类：C13"  # codes are its words


def test_a_flag_reads_as_its_state_in_words(package):
    # 「集团客户标志 = 1」: a 0/1 flag read as a number, the one feature a collector could not read at all.
    from dataclasses import replace

    from features.feature_sets import FEATURE_DOCS
    from serving.model import ReasonText

    flags = [name for name, doc in FEATURE_DOCS.items() if doc.unit == "flag"]
    assert {"is_group_member", "is_suspended_at_as_of", "has_scheduled_change", "has_theft_finding"} <= set(
        flags
    )
    worded = replace(package, reasons={n: ReasonText.from_doc(FEATURE_DOCS[n]) for n in flags})
    assert worded.reason_text("is_group_member", 1.0, "zh") == "集团客户"
    assert worded.reason_text("is_group_member", 0.0, "zh") == "非集团客户"
    assert worded.reason_text("is_group_member", 1.0, "en") == "part of a customer group"
    assert worded.reason_text("is_group_member", 0.0, "en") == "not part of a customer group"
    for name in flags:
        for lang in ("zh", "en"):
            on, off = worded.reason_text(name, 1.0, lang), worded.reason_text(name, 0.0, lang)
            assert on != off and not re.search(r"[=\d]", on + off), (name, lang, on, off)
    # Unknown is still said so; a value no flag takes (a posted 0.5) and a model trained with other words for
    # the flag keep their sentence.
    assert worded.reason_text("is_group_member", None, "zh") == "集团客户标志 = —（无数据）"
    assert worded.reason_text("is_group_member", 0.5, "en") == "group customer flag = 0"
    other = replace(
        package, reasons={"is_group_member": ReasonText("集团：{value:.0f}", "group: {value:.0f}")}
    )
    assert other.reason_text("is_group_member", 1.0, "zh") == "集团：1"


def test_a_count_of_one_is_singular_in_english(package):
    # "bills of the last 90 days paid 1 days late on average". Chinese has no plural: 「逾期 1 天」.
    from dataclasses import replace

    from features.feature_sets import CATEGORICAL_FEATURES, FEATURE_DOCS
    from serving.model import ReasonText

    docs = {name: doc for name, doc in FEATURE_DOCS.items() if name not in CATEGORICAL_FEATURES}
    worded = replace(package, reasons={name: ReasonText.from_doc(doc) for name, doc in docs.items()})
    late = "payments_days_late_mean_90d"
    said = "bills due in the last 90 days: {} overdue on average (open ones counted so far)"
    assert worded.reason_text(late, 1.0, "en") == worded.reason_text(late, 0.6, "en") == said.format("1 day")
    assert worded.reason_text(late, 2.0, "en") == said.format("2 days")
    assert worded.reason_text(late, 0.0, "en") == "no bill due in the last 90 days was late"
    assert worded.reason_text(late, 1.0, "zh") == "近90天到期账单平均逾期 1 天（未缴清的计至今）"
    before = "payments_days_before_due_mean_365d"
    assert (
        worded.reason_text(before, -1.0, "en")
        == "bills due in the last year: on average 1 day past the due date (open ones count so far)"
    )
    assert (
        worded.reason_text(before, 1.0, "en")
        == "bills due in the last year: on average 1 day before the due date (open ones count their days "
        "overdue)"
    )
    assert worded.reason_text("payments_channel_changes_365d", 1.0, "en") == (
        "payment channel changed once in the last year"
    )
    # Every English sentence: no count of one followed (within three words) by a plural noun. The words
    # between hold no digit, so "1 bill over 30 days late" is not taken for "1 … days".
    plural = re.compile(
        r"(?<![\d.-])1 (?:(?!of )[A-Za-z-]+ ){0,3}?"
        r"(?:days|months|bills|times|payments|applications|inspections|restorations|reductions|violations"
        r"|customers|points)\b"
    )
    for name, doc in docs.items():
        for value in (1.0, -1.0) if "abs_value" in doc.en else (1.0,):
            text = worded.reason_text(name, value, "en")
            assert not plural.search(text), (name, value, text)


def test_a_change_that_shows_as_zero_claims_no_direction(package):
    # "kWh over the last 3 months down 0 % on the 3 months before": a fall of 0.3 % printed in whole percent.
    from dataclasses import replace

    from features.feature_sets import FEATURE_DOCS
    from serving.model import ReasonText

    changes = {name: doc for name, doc in FEATURE_DOCS.items() if "{dir_" in doc.zh + doc.en}
    worded = replace(package, reasons={name: ReasonText.from_doc(doc) for name, doc in changes.items()})
    name = "bills_kwh_change_pct_3m_vs_prev_3m"
    assert (
        worded.reason_text(name, -0.3, "en")
        == "kWh over the last 3 months about the same as the 3 months before"
    )
    assert (
        worded.reason_text(name, -0.3, "zh")
        == worded.reason_text(name, 0.0, "zh")
        == "近3个月电量与前3个月基本持平"
    )
    assert (
        worded.reason_text(name, -0.6, "en") == "kWh over the last 3 months down 1 % on the 3 months before"
    )
    assert worded.reason_text(name, 0.6, "zh") == "近3个月电量较前3个月上升1%"
    for name, doc in changes.items():
        decimals = int(re.search(r"\{abs_value:\.(\d)f\}", doc.en).group(1))  # the precision it prints at
        step = 10.0**-decimals
        for lang, directions, flat in (("zh", "上升|下降", "基本持平"), ("en", r"\b(?:up|down)\b", "about")):
            for value in (0.0, 0.4 * step, -0.4 * step):
                text = worded.reason_text(name, value, lang)
                assert flat in text and not re.search(directions, text), (name, value, text)
            for value in (0.6 * step, -0.6 * step):
                assert re.search(directions, worded.reason_text(name, value, lang)), (name, value)


def test_a_value_at_its_cap_reads_as_more_than_it(package):
    # A plant at 76,695 kWh after 1,000 read "up 1000 %": the change stops at +1000 %, so it is at least that.
    from dataclasses import replace

    import numpy as np

    from features import windows as w
    from features.feature_sets import FEATURE_DOCS
    from serving.model import ReasonText

    worded = replace(package, reasons={n: ReasonText.from_doc(d) for n, d in FEATURE_DOCS.items()})
    assert (
        w.pct_change(np.array([76_695.0]), np.array([1_000.0]))[0]
        == FEATURE_DOCS["bills_kwh_yoy_change_pct_3m"].cap
    )
    name = "bills_kwh_change_pct_3m_vs_prev_3m"
    assert worded.reason_text(name, 1000.0, "zh") == "近3个月电量较前3个月上升超过1000%"
    assert (
        worded.reason_text(name, 1000.0, "en")
        == "kWh over the last 3 months up more than 1000 % on the 3 months before"
    )
    assert worded.reason_text(name, 999.0, "en").endswith("up 999 % on the 3 months before")
    loss = "area_loss_rise_vs_own_drop_pct"
    assert (
        worded.reason_text(loss, -300.0, "en")
        == "the area's lost kWh fell by more than 300 % of this customer's kWh fall"
    )
    capped = {n: d for n, d in FEATURE_DOCS.items() if d.cap is not None}
    assert len(capped) == 10
    for name, doc in capped.items():
        for lang, word in (("zh", "超过"), ("en", "more than")):
            assert word in worded.reason_text(name, doc.cap, lang), (name, lang)
            assert word not in worded.reason_text(name, doc.cap * 0.99, lang), (name, lang)


def test_a_signed_measure_reads_on_either_side_and_never_as_minus_zero(package):
    # "-5,000 kWh less than the same 6 months last year", "paid 0 days before the due date", "-0 days".
    from dataclasses import replace

    from features.feature_sets import FEATURE_DOCS
    from serving.model import ReasonText

    worded = replace(package, reasons={n: ReasonText.from_doc(d) for n, d in FEATURE_DOCS.items()})
    drop = "bills_kwh_drop_6m_yoy_kwh"
    assert worded.reason_text(drop, -5000.0, "en") == "5,000 kWh more than the same 6 months last year"
    assert worded.reason_text(drop, 5000.0, "zh") == "近6个月电量比去年同期少 5,000 kWh"
    # A rise is stored as 0 (drops only): "about the same" read a plant up 191 % as flat.
    assert (
        worded.reason_text(drop, 0.0, "zh")
        == worded.reason_text(drop, -0.2, "zh")
        == "近6个月电量不低于去年同期"
    )
    before = "payments_days_before_due_mean_90d"
    assert worded.reason_text(before, 0.3, "en") == (
        "bills due in the last 90 days: on average on the due date (open ones count their days overdue)"
    )
    assert (
        worded.reason_text(before, -0.3, "zh") == "近90天到期账单平均在到期日当天（未缴清的按已逾期天数计）"
    )
    # "last 90 days paid 87 days earlier than the year's average" of a customer with ten unpaid bills: the
    # measure counts an open bill's days overdue so far, and its sentence now says so.
    change = "payments_days_before_due_change_90d_vs_365d"
    assert worded.reason_text(change, 87.0, "zh") == "近90天账单比近一年平均早缴或少逾期 87 天"
    assert (
        worded.reason_text(change, -1.0, "en")
        == "bills of the last 90 days were 1 day later than the year's average"
    )
    share = "payments_window_left_share_365d"
    assert (
        worded.reason_text(share, -0.004, "zh")
        == "近一年到期账单平均在缴费期截止时缴清（未缴清的按已逾期计）"
    )
    # Nothing open is "no overdue bill", not "the oldest open bill overdue 0 days".
    assert worded.reason_text("payments_outstanding_age_days", 0.0, "en") == "no overdue bill open"
    # The slope is a share of the window's mean: "falls 136 % a month" now says what it is.
    assert worded.reason_text("bills_kwh_slope_3m_pct", -136.4, "zh") == (
        "近3个月电量呈下降趋势，每月变化约为期间月均的 136.4%"
    )
    # No sentence prints a negative zero.
    for name in FEATURE_DOCS:
        for lang in ("zh", "en"):
            for value in (-0.3, -0.004, -0.00004):
                text = worded.reason_text(name, value, lang)
                assert not re.search(r"-0(?![.,]?\d*[1-9])", text), (name, value, text)
