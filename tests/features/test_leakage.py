"""Leakage tests: the future never reaches a feature, labels read only their window, and shuffled labels learn
nothing.

Each future-row test has a twin that puts the same rows exactly at the cutoff and checks that they DO change
the family's features, so a family that ignored its table (and so passed trivially) would fail here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from tiny_warehouse import make_tables

from features import labels
from features.engines import local
from features.engines.partition import PartitionJob, compute_partition
from features.feature_sets import FEATURE_DOCS
from features.point_in_time import cutoff
from features.schema import LOAD_ORDER
from features.snapshot import prepare_partition

AS_OF_DATES = ("2022-11-30", "2023-04-30")
ONE_SECOND = pd.Timedelta(seconds=1)
Mutation = Callable[[dict[str, pd.DataFrame], pd.Timestamp], dict[str, pd.DataFrame]]


def features_as_of(tables: dict[str, pd.DataFrame], as_of: str, task: str = "theft") -> pd.DataFrame:
    """Every computed feature (all families, peers included) for the task's population (engine output)."""
    job = PartitionJob.make(task, [as_of], with_labels=False)
    out = local.run(None, job, tables={k: v.copy() for k, v in tables.items()}, workers=1)
    return out.sort_values("customer_id").reset_index(drop=True)


# -- mutations: each appends or alters rows of one table at instant `when` -----------------------------------


def reissue_bills(tables, when):
    """Every bill re-issued with triple kWh and amount, known at `when` (a 退补 after the fact)."""
    bills = tables["bills"]
    again = bills.assign(kwh=bills["kwh"] * 3, amount_due=bills["amount_due"] * 3, known_at=when)
    return {**tables, "bills": pd.concat([bills, again], ignore_index=True)}


def new_bills(tables, when):
    """A huge bill for the period of `when`'s month, issued and known at `when` (an early issue; a period
    starting after its issue is quarantined at ingest, and no feature reads one)."""
    bills = tables["bills"]
    last = bills.sort_values("period").drop_duplicates("customer_id", keep="last")
    period = when.to_period("M").to_timestamp()
    extra = last.assign(
        period=period,
        kwh=1e7,
        amount_due=1e7,
        issue_date=when.normalize(),
        due_date=when.normalize(),
        known_at=when,
    )
    return {**tables, "bills": pd.concat([bills, extra], ignore_index=True)}


def payments(tables, when):
    """A counter payment of 10,000 元 (with a late fee) against every bill, paid at `when`."""
    bills = tables["bills"].drop_duplicates(["customer_id", "period"])
    extra = pd.DataFrame(
        {
            "payment_id": [f"X{i}" for i in range(len(bills))],
            "customer_id": bills["customer_id"].to_numpy(),
            "period": bills["period"].to_numpy(),
            "paid_at": when,
            "amount": 10_000.0,
            "late_fee": 50.0,
            "channel": "counter",
        }
    )
    return {**tables, "payments": pd.concat([tables["payments"], extra], ignore_index=True)}


def readings(tables, when):
    """Readings dated `when`'s day and later set to a huge level (rows after that day already exist)."""
    r = tables["readings"]
    r = r.assign(kwh=np.where(r["date"] >= when.normalize(), 1e6, r["kwh"]))
    return {**tables, "readings": r}


def suspensions(tables, when):
    """Every customer applies for a suspension at `when`, starting the day after."""
    c = tables["customers"]
    extra = pd.DataFrame(
        {
            "application_id": [f"Z{i}" for i in range(len(c))],
            "customer_id": c["customer_id"].to_numpy(),
            "applied_at": when,
            "start_date": when.normalize() - pd.Timedelta(days=30),
            "end_date": when.normalize() + pd.Timedelta(days=60),
            "capacity_kva": 100.0,
            "kind": np.where((np.arange(len(c)) // 4) % 2 == 0, "suspension", "reduction"),
        }
    )
    return {**tables, "suspensions": pd.concat([tables["suspensions"], extra], ignore_index=True)}


def inspections(tables, when):
    """Every customer inspected at `when` and found in violation."""
    c = tables["customers"]
    extra = pd.DataFrame(
        {
            "inspection_id": [f"Y{i}" for i in range(len(c))],
            "customer_id": c["customer_id"].to_numpy(),
            "inspected_at": when,
            "result": "violation",
            "recovered_kwh": 777.0,
        }
    )
    return {**tables, "inspections": pd.concat([tables["inspections"], extra], ignore_index=True)}


def area_supply(tables, when):
    """Supply rows of the month that starts on `when`'s day and later multiplied by 10."""
    s = tables["area_supply"]
    month_start = when.normalize().to_period("M").to_timestamp()
    s = s.assign(supplied_kwh=np.where(s["date"] >= month_start, s["supplied_kwh"] * 10, s["supplied_kwh"]))
    return {**tables, "area_supply": s}


def new_customers(tables, when):
    """Ten customers opened on `when`'s day in an existing area, with bills."""
    c = tables["customers"]
    extra = c.iloc[:10].assign(
        customer_id=[f"N{i}" for i in range(10)], open_date=when.normalize(), close_date=pd.NaT
    )
    return {**tables, "customers": pd.concat([c, extra], ignore_index=True)}


# (mutation, the family whose features it must be able to move, the task whose feature set shows that family)
CASES = {
    "bills re-issued": (reissue_bills, "consumption", "theft"),
    "bills issued": (new_bills, "consumption", "theft"),
    "payments": (payments, "payments", "arrears"),
    "readings": (readings, "readings", "theft"),
    "suspensions": (suspensions, "events", "suspension"),
    "inspections": (inspections, "events", "theft"),
    "area supply": (area_supply, "area", "theft"),
}


def _family_columns(frame: pd.DataFrame, family: str) -> list[str]:
    return [c for c in frame.columns if c in FEATURE_DOCS and FEATURE_DOCS[c].family == family]


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return make_tables()


@pytest.fixture(scope="module")
def baseline(tables) -> dict[tuple[str, str], pd.DataFrame]:
    return {
        (d, t): features_as_of(tables, d, t) for d in AS_OF_DATES for t in ("theft", "arrears", "suspension")
    }


@pytest.mark.parametrize("as_of", AS_OF_DATES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_rows_after_the_cutoff_change_no_feature(tables, baseline, case, as_of):
    mutate, _, task = CASES[case]
    after = features_as_of(mutate(tables, cutoff(as_of) + pd.Timedelta(microseconds=1)), as_of, task)
    pd.testing.assert_frame_equal(after, baseline[as_of, task])
    # The same rows one second later than the cutoff's last second as well (a typical export timestamp).
    after = features_as_of(mutate(tables, cutoff(as_of).floor("s") + ONE_SECOND), as_of, task)
    pd.testing.assert_frame_equal(after, baseline[as_of, task])


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_rows_at_the_cutoff_do_change_the_family(tables, baseline, case):
    """The twin of the test above: proves each family reads its table, so the leak test could fail."""
    mutate, family, task = CASES[case]
    as_of = "2023-04-30" if case == "readings" else AS_OF_DATES[0]
    when = cutoff(as_of).floor("s")  # 23:59:59 on the as-of day: inside the inclusive bound
    if case in ("readings", "area supply"):
        when = pd.Timestamp(as_of) - pd.Timedelta(days=40)  # day/month-dated rows: move an observed month
    at = features_as_of(mutate(tables, when), as_of, task)
    before = baseline[as_of, task]
    cols = _family_columns(at, family)
    assert cols, f"no {family} features in the {task} frame"
    both = at.merge(
        before, on="customer_id", suffixes=("", "_before")
    )  # a suspension can leave the population
    assert len(both) > 0
    changed = ~np.isclose(
        both[cols].to_numpy(dtype=float),
        both[[f"{c}_before" for c in cols]].to_numpy(dtype=float),
        equal_nan=True,
    ).all(axis=0)
    assert changed.any(), f"{case} rows at the cutoff changed none of {cols}"


def test_customers_opened_after_the_cutoff_do_not_exist_yet(tables, baseline):
    as_of = AS_OF_DATES[0]
    after = features_as_of(new_customers(tables, cutoff(as_of) + pd.Timedelta(microseconds=1)), as_of)
    pd.testing.assert_frame_equal(after, baseline[as_of, "theft"])
    on_day = features_as_of(new_customers(tables, pd.Timestamp(as_of)), as_of)
    assert set(on_day["customer_id"]) - set(baseline[as_of, "theft"]["customer_id"]) == {
        f"N{i}" for i in range(10)
    }


# -- labels read only (T, T + horizon] -----------------------------------------------------------------------


def _labels(tables: dict[str, pd.DataFrame], task: str, as_of: str) -> np.ndarray:
    part = prepare_partition(tables)
    return labels.label(task, part.at(as_of))


@pytest.mark.parametrize(
    ("task", "mutate"),
    [("theft", inspections), ("suspension", suspensions), ("arrears", payments)],
)
def test_labels_ignore_rows_outside_their_window(tables, task, mutate):
    as_of = "2022-06-30"
    base = _labels(tables, task, as_of)
    window_end = cutoff(as_of) + labels.label_observable_until(task)
    times = [window_end + pd.Timedelta(microseconds=1), window_end + pd.Timedelta(days=300)]
    if task != "arrears":
        #  A payment made by T against a bill due in the window does settle it (DESIGN: payments up to due +
        # 30 d),
        # so for arrears only the far side of the window is out of bounds.
        times += [cutoff(as_of), cutoff(as_of) - pd.Timedelta(days=400)]
    for when in times:
        changed = mutate(tables, when)
        if task == "theft":  # a finding before T matters to the population, never to the label
            changed["inspections"]["result"] = "theft"
        np.testing.assert_array_equal(
            _labels(changed, task, as_of), base, err_msg=f"{task} label moved by {when}"
        )


def test_labels_do_read_their_window(tables):
    as_of = "2022-06-30"
    inside = cutoff(as_of) + pd.Timedelta(days=10)
    theft = inspections(tables, inside)
    theft["inspections"]["result"] = "theft"
    assert _labels(theft, "theft", as_of).all()
    kinds = suspensions(tables, inside)
    assert _labels(kinds, "suspension", as_of).sum() == len(tables["customers"])
    #  Arrears: C0013 stops paying from the October 2022 bill; it is unpaid 30 days after its due date, so 1
    # ...
    base = _labels(tables, "arrears", "2022-09-30")
    c13 = int(np.flatnonzero(prepare_partition(tables).customers["customer_id"] == "C0013")[0])
    assert base[c13] == 1
    #  ... and paying everything on the day after the window's grace ends leaves it 1, paying inside makes
    # it 0.
    late = payments(tables, cutoff("2022-09-30") + labels.label_observable_until("arrears") + ONE_SECOND)
    assert _labels(late, "arrears", "2022-09-30")[c13] == 1
    early = payments(tables, cutoff("2022-09-30") + ONE_SECOND)
    assert _labels(early, "arrears", "2022-09-30")[c13] == 0


def test_customers_whose_window_is_not_observed_are_excluded(tables):
    # C0007 closes on 2022-09-15, inside the window after 2022-06-30: no label, out of the population
    # (it stays a row, as a peer for the medians, like every active customer) ...
    job = PartitionJob.make("theft", ["2022-06-30"], with_labels=True)
    training = compute_partition(tables, job).set_index("customer_id")
    assert not training.loc["C0007", "in_population"]
    assert training["in_population"].sum() > 40
    # ... but it is scored as of that date (it is active then).
    scoring = compute_partition(tables, PartitionJob.make("theft", ["2022-06-30"], with_labels=False))
    assert scoring.set_index("customer_id").loc["C0007", "in_population"]


# -- the generated warehouse ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated_tables(generated_dir) -> dict[str, pd.DataFrame]:
    """The generated utility cut to a few whole areas (a few hundred customers keep the test quick)."""
    from features.sources import has_table, read_table

    tables = {n: read_table(generated_dir, n) for n in LOAD_ORDER if has_table(generated_dir, n)}
    customers = tables["customers"]
    # Four areas with the most two-part customers (the suspension population) and four others.
    two_part = customers[customers["tariff"] == "two_part"]["area_id"].value_counts().index[:4].tolist()
    areas = two_part + [a for a in sorted(customers["area_id"].unique()) if a not in two_part][:4]
    ids = set(customers.loc[customers["area_id"].isin(areas), "customer_id"])
    for name, frame in tables.items():
        key, keep = ("area_id", set(areas)) if name in ("areas", "area_supply") else ("customer_id", ids)
        tables[name] = frame[frame[key].isin(keep)].reset_index(drop=True)
    return tables


GENERATED_AS_OF = "2023-09-30"  # inside the daily-readings span of the fixture (the last 200 days)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_warehouse_rows_after_the_cutoff_change_no_feature(generated_tables, case):
    mutate, family, task = CASES[case]
    before = features_as_of(generated_tables, GENERATED_AS_OF, task)
    assert len(before) > 20
    assert before[_family_columns(before, family)].notna().any().any(), (
        f"{family} is empty: the test is vacuous"
    )
    after = features_as_of(
        mutate(generated_tables, cutoff(GENERATED_AS_OF) + ONE_SECOND), GENERATED_AS_OF, task
    )
    pd.testing.assert_frame_equal(after, before)


@pytest.mark.parametrize("task", ["arrears", "suspension", "theft"])
def test_the_warehouse_cut_at_the_cutoff_gives_the_same_features_to_the_last_bit(generated_tables, task):
    # Row sums ran across the partition's whole month grid, whose width the newest bill decides: a training
    # set built later (more months) differed from the score made at T in the last bits, enough to send one
    # customer down another tree branch.
    as_of = "2023-06-30"  # six months before the data end: the grids' widths differ by six months
    cut = _cut_at(generated_tables, cutoff(as_of))
    assert len(cut["bills"]) < len(generated_tables["bills"])  # the warehouse runs past the as-of date
    full = features_as_of(generated_tables, as_of, task)
    pd.testing.assert_frame_equal(features_as_of(cut, as_of, task), full, check_exact=True)


def _cut_at(tables: dict[str, pd.DataFrame], end: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The warehouse as it stood at `end`: rows whose event time or known_at is later are not there yet."""
    from features.schema import table

    cut = {}
    for name, frame in tables.items():
        spec, keep = table(name), np.ones(len(frame), dtype=bool)
        for column in (spec.event_time, spec.known_at):
            if column and column in frame.columns:
                keep &= ~(frame[column] > end).to_numpy()
        cut[name] = frame[keep].reset_index(drop=True)
    return cut


def two_monthly(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every third customer read every other month (双月抄表): its even months' bills folded into the odd
    months', so each bill holds two months and its energy is spread back over the month before."""
    bills = tables["bills"]
    folded = set(tables["customers"]["customer_id"].iloc[::3])
    month = pd.to_datetime(bills["period"]).dt.month
    mine = bills["customer_id"].isin(folded)
    doubled = bills.loc[mine & (month % 2 == 1), ["kwh", "amount_due", "energy_charge"]] * 2
    bills = bills.assign(**{c: bills[c].where(~(mine & (month % 2 == 1)), doubled[c]) for c in doubled})
    return {**tables, "bills": bills[~(mine & (month % 2 == 0))].reset_index(drop=True)}


def old_months_known_late(tables, when):
    """A back-bill (追补) for a month before any bill, and an area's supply for a month before any supply row,
    both issued and stored at `when`: they moved the partition's first month, and with it which months of a
    two-monthly customer's first bill were kept and the last bits of every row sum. And 40 accounts opened
    at `when` in one area: its billed kWh summed their zero rows, which moved the sum's rounding."""
    bills, supply = tables["bills"], tables["area_supply"]
    first = pd.to_datetime(bills["period"]).min() - pd.DateOffset(months=3)
    back = bills.iloc[:1].assign(
        period=first, issue_date=when.normalize(), due_date=when.normalize(), known_at=when
    )
    month_rows = supply[supply["granularity"] == "month"]
    early = (
        (month_rows if len(month_rows) else supply)
        .iloc[:1]
        .assign(
            date=pd.to_datetime(supply["date"]).min() - pd.DateOffset(months=3),
            granularity="month",
            known_at=when,
        )
    )
    customers = tables["customers"]
    area = customers["area_id"].iloc[0]
    opened = customers[customers["area_id"] == area].iloc[:1]  # 40 accounts of that area, opened at `when`
    opened = pd.concat([opened] * 40, ignore_index=True).assign(
        customer_id=[f"NEW{i:03d}" for i in range(40)], open_date=when.normalize(), close_date=pd.NaT
    )
    return {
        **tables,
        "customers": pd.concat([customers, opened], ignore_index=True),
        "bills": pd.concat([bills, back], ignore_index=True),
        "area_supply": pd.concat([supply, early], ignore_index=True),
    }


def test_an_areas_sum_does_not_round_with_its_rows_of_zeros():
    # Accounts not yet open at T are rows of zeros in their area's billed kWh: np.add.reduceat's blocked sum
    # rounded differently with the number of rows, so accounts opened after T moved area features in their
    # last bits on an auditor's 84-month warehouse with spread (kWh / 3) bills.
    from features import windows as w

    rng = np.random.default_rng(0)
    kwh = rng.random((36, 60)) * 1000 / 3
    group = np.repeat([0, 1], 18)
    padded = np.vstack([kwh[:18], np.zeros((50, 60)), kwh[18:], np.zeros((7, 60))])
    padded_group = np.repeat([0, 1], [68, 25])
    np.testing.assert_array_equal(w.group_sum(padded, padded_group, 2), w.group_sum(kwh, group, 2))


@pytest.mark.parametrize("task", ["arrears", "suspension", "theft"])
def test_rows_for_old_months_known_after_the_cutoff_change_no_feature(generated_tables, task):
    # An outside audit: one back-bill for a month before the data, issued after T, changed 57 theft rows'
    # history, 12-month means and slopes at T, and the last bits of 100 arrears rows' payment shares.
    tables = two_monthly(generated_tables)
    as_of = "2023-06-30"
    before = features_as_of(tables, as_of, task)
    after = features_as_of(old_months_known_late(tables, cutoff(as_of) + ONE_SECOND), as_of, task)
    pd.testing.assert_frame_equal(after, before, check_exact=True)
    # The same rows known at T do count: the back-bill is the first customer's oldest month.
    known = features_as_of(old_months_known_late(tables, cutoff(as_of)), as_of, task)
    assert not known.equals(before) or task == "suspension"


# The families a posting lag on their table moves, by task (area supply's months are read only once ended),
# and the longest lag of each table: a debit file posts in days, a finding is written up in weeks.
LAGGED_FAMILIES = {"arrears": ("payments",), "suspension": ("events",), "theft": ("readings", "events")}
LAG_DAYS = {"payments": 4, "readings": 2, "suspensions": 30, "inspections": 60, "area_supply": 10}


@pytest.mark.parametrize("task", sorted(LAGGED_FAMILIES))
def test_rows_entered_after_the_cutoff_count_from_their_known_at_in_every_family(generated_tables, task):
    """Payments posted, readings uploaded, applications and findings entered, supply stored days after they
    happened: features as of T equal those of the warehouse as it stood at T, to the last bit, and the lag
    does move them (so the rows entered late are really left out)."""
    from features.schema import TABLES, table

    assert set(LAG_DAYS) == {t.name for t in TABLES.values() if t.known_at and not t.versioned}
    rng = np.random.default_rng(7)
    lagged = dict(generated_tables)
    for name, days in LAG_DAYS.items():
        frame, spec = lagged[name], table(name)
        lag = pd.to_timedelta(rng.integers(0, days * 86_400, size=len(frame)), unit="s")
        lagged[name] = frame.assign(known_at=pd.to_datetime(frame[spec.event_time]) + lag)
    as_of = GENERATED_AS_OF
    full = features_as_of(lagged, as_of, task)
    pd.testing.assert_frame_equal(
        features_as_of(_cut_at(lagged, cutoff(as_of)), as_of, task), full, check_exact=True
    )
    unlagged = features_as_of(generated_tables, as_of, task).set_index("customer_id")
    full = full.set_index("customer_id").loc[unlagged.index]
    for family in LAGGED_FAMILIES[task]:
        cols = _family_columns(full, family)
        moved = ~np.isclose(
            full[cols].to_numpy(dtype=float), unlagged[cols].to_numpy(dtype=float), equal_nan=True
        )
        assert moved.any(), f"a posting lag moved none of the {family} features"


def test_shuffled_labels_score_at_chance_on_a_later_as_of(generated_dir):
    """A model fitted on shuffled labels must not rank a later month better than chance (nothing leaks through
    features or row order); the same model on the real labels must, so the check can tell the two apart.

    Leaves are kept large (300 rows): with a 6 % label rate, small leaves of noise-fitted trees are mostly
    slightly negative, and since real late payers sit in sparse corners of feature space, a small-leaf model
    on shuffled labels ranks them systematically low (AUC ≈ 0.40-0.46 here, not 0.5).
    """
    import lightgbm
    from sklearn.metrics import roc_auc_score

    from features.feature_sets import CATEGORICAL_FEATURES, TASK_FEATURES
    from features.training_set import build_training_set

    task = "arrears"
    latest = labels.latest_labelable_as_of(generated_dir, task)
    test_as_of = pd.date_range(end=latest, periods=2, freq="ME")[-1]
    # Training months end a full horizon (plus grace) before the test month: no label window overlaps it.
    train_end = test_as_of - labels.label_observable_until(task)
    train_as_of = list(pd.date_range(end=train_end, periods=6, freq="ME"))
    frame = build_training_set(generated_dir, task, [*train_as_of, test_as_of])
    features = TASK_FEATURES[task]
    X = frame[features].copy()
    for name in features:
        if name in CATEGORICAL_FEATURES:
            X[name] = X[name].astype("category")
    train, test = frame["as_of"] < test_as_of, frame["as_of"] == test_as_of
    assert frame.loc[test, "label"].sum() >= 20

    def auc(y: np.ndarray, seed: int) -> float:
        model = lightgbm.LGBMClassifier(
            n_estimators=60,
            learning_rate=0.1,
            num_leaves=15,
            min_child_samples=300,
            n_jobs=1,
            random_state=seed,
            verbose=-1,
        )
        model.fit(X[train], y)
        return roc_auc_score(frame.loc[test, "label"], model.predict_proba(X[test])[:, 1])

    y = frame.loc[train, "label"].to_numpy()
    # One shuffled fit has a standard error of ~0.035 here (~80 positives); five average it down.
    shuffled = np.mean([auc(np.random.default_rng(seed).permutation(y), seed) for seed in range(5)])
    assert 0.42 < shuffled < 0.58
    assert auc(y, 0) > 0.65
