"""Payment-behaviour features (缴费记录 against 电费账单) as of T: lateness, partial payments, outstanding
balance and its age, late fees, channel changes.

A bill's principal counts as paid when payments visible at T (paid_at ≤ T) for its billing month, net of
late fees, reach its amount due less 1 元. A bill paid in full is late by (last payment day − due day); a
bill still open at T is late by the days it has been overdue so far. Bills and payments are both read as of
T.
"""

from __future__ import annotations

import numpy as np

from features import windows as w
from features.snapshot import AsOf, evaluate

TOLERANCE_YUAN = 1.0  # rounding and small-change differences are not arrears
MIN_WINDOW_LEFT = -3.0  # a bill paid three windows late says no more than one paid later still
LATE_SERIOUS_DAYS = 30  # after 30 days overdue and a demand, supply may be cut (DOMAIN §4)


def payments_days_late_mean_90d(days_late: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    return w.mean(np.where(due_age < 90, days_late, np.nan))


def payments_days_late_mean_365d(days_late: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    return w.mean(np.where(due_age < 365, days_late, np.nan))


def payments_days_late_max_365d(days_late: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    return w.maximum(np.where(due_age < 365, days_late, np.nan))


def payments_days_late_last(days_late: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    """Days late of the most recent bill due at or before T (days overdue so far if still open)."""
    age = np.where(np.isnan(days_late), np.inf, due_age)
    if age.shape[1] == 0:
        return np.full(age.shape[0], np.nan)
    col = age.argmin(axis=1)
    last = days_late[np.arange(len(col)), col]
    return np.where(np.isinf(age.min(axis=1)), np.nan, last)


def payments_days_before_due_mean_90d(days_before_due: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    """Signed: days between the (last) payment and the due date, positive when paid early; an open bill
    counts minus its days overdue so far. Late-payers pay near the deadline long before they pay late."""
    return w.mean(np.where(due_age < 90, days_before_due, np.nan))


def payments_days_before_due_mean_365d(days_before_due: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    return w.mean(np.where(due_age < 365, days_before_due, np.nan))


def payments_days_before_due_mean_730d(days_before_due: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    """Two years of bills: a customer's habit (and the stress behind it) changes slowly, so more bills
    estimate it better than the last twelve."""
    return w.mean(np.where(due_age < 730, days_before_due, np.nan))


def payments_window_left_share_365d(window_left: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    """Share of the bill's payment window (issue to due date) still left when it was paid, averaged over the
    year: 1 = paid on issue, 0 = on the due date, below 0 late. Comparable across supply units whose due
    periods differ (15, 20 or 25 days)."""
    return w.mean(np.where(due_age < 365, window_left, np.nan))


def payments_window_left_share_730d(window_left: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    return w.mean(np.where(due_age < 730, window_left, np.nan))


def payments_days_before_due_change_90d_vs_365d(
    days_before_due: np.ndarray, due_age: np.ndarray
) -> np.ndarray:
    """How much closer to (or past) the due date the last 90 days' bills were paid than the year's average."""
    return payments_days_before_due_mean_90d(days_before_due, due_age) - payments_days_before_due_mean_365d(
        days_before_due, due_age
    )


def payments_late_count_180d(days_late: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    window = np.where(due_age < 180, days_late, np.nan)
    return w.count_where(window > 0, window)


def payments_late_count_365d(days_late: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    window = np.where(due_age < 365, days_late, np.nan)
    return w.count_where(window > 0, window)


def payments_late_count_730d(days_late: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    window = np.where(due_age < 730, days_late, np.nan)
    return w.count_where(window > 0, window)


def payments_late_30d_count_365d(days_late: np.ndarray, due_age: np.ndarray) -> np.ndarray:
    window = np.where(due_age < 365, days_late, np.nan)
    return w.count_where(window > LATE_SERIOUS_DAYS, window)


def payments_partial_count_365d(
    days_late: np.ndarray, due_age: np.ndarray, partial: np.ndarray
) -> np.ndarray:
    """Bills paid in several instalments or still partly paid at T."""
    window = np.where(due_age < 365, days_late, np.nan)
    return w.count_where(partial, window)


def payments_unpaid_count_365d(
    days_late: np.ndarray, due_age: np.ndarray, open_bill: np.ndarray
) -> np.ndarray:
    window = np.where(due_age < 365, days_late, np.nan)
    return w.count_where(open_bill, window)


def payments_outstanding_yuan(
    outstanding: np.ndarray, days_late: np.ndarray, older_open: np.ndarray
) -> np.ndarray:
    """Unpaid principal on all bills due at or before T (0 for a customer with bills and nothing open), those
    older than the month grid included (`older_open_bills`)."""
    has_due_bill = (w.count(days_late) > 0) | (older_open > 0)
    return np.where(has_due_bill, np.nansum(outstanding, axis=1) + older_open, np.nan)


def payments_outstanding_age_days(
    outstanding: np.ndarray, due_age: np.ndarray, older_open: np.ndarray, older_open_age: np.ndarray
) -> np.ndarray:
    """Age of the oldest open bill at T (days since its due date); 0 when nothing is open."""
    has_due_bill = (w.count(np.where(due_age >= 0, due_age, np.nan)) > 0) | (older_open > 0)
    oldest = w.maximum(np.where(outstanding > 0, due_age, np.nan))
    oldest = np.where(
        older_open > 0, older_open_age, oldest
    )  # a bill before the grid is older than any in it
    return np.where(has_due_bill, np.nan_to_num(oldest, nan=0.0), np.nan)


def payments_outstanding_to_bill_ratio(
    outstanding: np.ndarray, days_late: np.ndarray, older_open: np.ndarray, bill_mean: np.ndarray
):
    return w.ratio(payments_outstanding_yuan(outstanding, days_late, older_open), bill_mean)


def payments_paid_ratio_365d(
    paid: np.ndarray, amount_due: np.ndarray, days_late: np.ndarray, due_age: np.ndarray
):
    """Share of the principal due in the last 365 days that was paid by T."""
    window = ~np.isnan(days_late) & (due_age < 365)
    due = w.total(np.where(window, amount_due, np.nan))
    got = w.total(np.where(window, np.minimum(paid, amount_due), np.nan))
    return w.ratio(got, due)


def payments_late_fee_sum_365d_yuan(late_fee_365d: np.ndarray) -> np.ndarray:
    return late_fee_365d


def payments_count_365d(count_365d: np.ndarray) -> np.ndarray:
    return count_365d


def payments_channel_changes_365d(channel_changes_365d: np.ndarray) -> np.ndarray:
    """Switches between consecutive payments' channels (bank debit failing over to the counter, …)."""
    return channel_changes_365d


FEATURES = [
    payments_days_late_mean_90d,
    payments_days_late_mean_365d,
    payments_days_late_max_365d,
    payments_days_late_last,
    payments_days_before_due_mean_90d,
    payments_days_before_due_mean_365d,
    payments_days_before_due_mean_730d,
    payments_days_before_due_change_90d_vs_365d,
    payments_window_left_share_365d,
    payments_window_left_share_730d,
    payments_late_count_180d,
    payments_late_count_365d,
    payments_late_count_730d,
    payments_late_30d_count_365d,
    payments_partial_count_365d,
    payments_unpaid_count_365d,
    payments_outstanding_yuan,
    payments_outstanding_age_days,
    payments_outstanding_to_bill_ratio,
    payments_paid_ratio_365d,
    payments_late_fee_sum_365d_yuan,
    payments_count_365d,
    payments_channel_changes_365d,
]


def bill_payment_state(at: AsOf) -> dict[str, np.ndarray]:
    """Per customer × billing month as of T: principal paid, payment count, days late, open amount."""
    part = at.part
    n, months = part.n, at.months
    amount_due = at.bills.values["amount_due"]
    due_day = at.bills.values["due_day"]

    pos, t = at.rows("payments")
    ci = t.customer[pos]
    mi = t["month"][pos] - at.first
    ok = (ci >= 0) & (mi >= 0) & (mi < months)
    cell = (ci * months + mi)[ok]
    principal = np.nan_to_num(t["principal"][pos][ok])
    paid = np.bincount(cell, weights=principal, minlength=n * months).reshape(n, months)
    n_paid = np.bincount(cell, minlength=n * months).reshape(n, months)
    last_day = np.full(n * months, -np.inf)
    np.maximum.at(last_day, cell, np.nan_to_num(t["paid_day"][pos][ok], nan=-np.inf))
    last_day = last_day.reshape(n, months)

    # A bill counts once its due date has passed (or is today); credits and zero bills are not collectable.
    billable = (amount_due > TOLERANCE_YUAN) & (due_day <= at.day_num)
    settled = paid >= amount_due - TOLERANCE_YUAN
    signed_late = np.where(settled, last_day - due_day, at.day_num - due_day)
    days_late = np.where(billable, np.maximum(signed_late, 0.0), np.nan)
    outstanding = np.where(billable & ~settled, amount_due - paid, 0.0)
    return {
        "amount_due": amount_due,
        "paid": paid,
        "days_late": days_late,
        "days_before_due": np.where(billable & np.isfinite(signed_late), -signed_late, np.nan),
        "window_left": np.where(
            billable & np.isfinite(signed_late),
            np.clip(w.ratio(-signed_late, due_day - at.bills.values["issue_day"]), MIN_WINDOW_LEFT, 1.0),
            np.nan,
        ),
        "due_age": np.where(billable, at.day_num - due_day, np.nan),
        "outstanding": outstanding,
        "open_bill": billable & ~settled,
        "partial": billable & ((n_paid >= 2) | (~settled & (paid > 0))),
    }


def older_open_bills(at: AsOf) -> dict[str, np.ndarray]:
    """Per customer, the unpaid principal of visible bills older than the month grid (before `at.first`,
    HISTORY_MONTHS before T) and the oldest one's age in days: the grid reads five years, and a bill left
    unpaid longer is still owed (a reviewer saw a 2019 bill drop out of the outstanding as of 2024-06-30)."""
    n = at.part.n
    bills, pos = at.part.tables["bills"], at.bills.older
    out = {"older_open": np.zeros(n), "older_open_age": np.zeros(n)}
    if len(pos) == 0:
        return out
    ci, month = bills.customer[pos], bills["month"][pos]
    # Principal paid against each of those bills (customer, period), by payments visible at T.
    ppos, pays = at.rows("payments")
    ppos = ppos[(pays.customer[ppos] >= 0) & (pays["month"][ppos] < at.first)]
    bill_key = ci * 100_000 + month  # month numbers since 1970 stay far below 100,000
    pay_key = pays.customer[ppos] * 100_000 + pays["month"][ppos]
    keys, bill_of = np.unique(np.concatenate([bill_key, pay_key]), return_inverse=True)
    principal = np.nan_to_num(pays["principal"][ppos])
    paid = np.bincount(bill_of[len(pos) :], weights=principal, minlength=len(keys))
    due, due_day = bills["amount_due"][pos], bills["due_day"][pos]
    left = due - paid[bill_of[: len(pos)]]
    open_ = (due > TOLERANCE_YUAN) & (due_day <= at.day_num) & (left > TOLERANCE_YUAN)
    out["older_open"] = np.bincount(ci[open_], weights=left[open_], minlength=n)
    np.maximum.at(out["older_open_age"], ci[open_], at.day_num - due_day[open_])
    return out


def payment_rows_state(at: AsOf, window_days: int = 365) -> dict[str, np.ndarray]:
    """Per customer: payments, late fees and channel switches with paid_at in (T − window, T]."""
    n = at.part.n
    pos, t = at.rows("payments")
    recent = t["paid_day"][pos] > at.day_num - window_days
    pos = pos[recent & (t.customer[pos] >= 0)]
    ci = t.customer[pos]
    channel = t["channel"][pos]
    #  Rows are sorted by customer then paid_at (see prepare_partition), so neighbours are consecutive
    # payments.
    switch = (ci[1:] == ci[:-1]) & (channel[1:] != channel[:-1])
    return {
        "late_fee_365d": np.bincount(ci, weights=t["late_fee"][pos], minlength=n),
        "count_365d": np.bincount(ci, minlength=n).astype(np.float64),
        "channel_changes_365d": np.bincount(ci[1:][switch], minlength=n).astype(np.float64),
    }


def compute(at: AsOf) -> dict[str, np.ndarray]:
    inputs: dict[str, object] = {**bill_payment_state(at), **payment_rows_state(at), **older_open_bills(at)}
    inputs["bill_mean"] = w.mean(at.bills.lagged("amount_due")[:, :3])
    return evaluate(FEATURES, inputs)
