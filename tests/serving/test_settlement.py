"""Paid since the list's date (serving.settlement): which payments the as-of date could not see count toward
the balance it held, and how the lists mark and hide the customers who paid it."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.sources import table_path
from serving.ranking import ListQuery, select
from serving.schemas import SortKey
from serving.settlement import OPEN_BILLS, OUTSTANDING, for_snapshot, open_bills, parse_open, settle
from serving.snapshot import META_KEY, Snapshot

T = dt.date(2024, 1, 31)
TS = pa.timestamp("us")


def _write(warehouse: Path, name: str, rows: list[dict], schema: pa.Schema) -> None:
    path = table_path(warehouse, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


BILLS = pa.schema(
    [
        ("customer_id", pa.string()),
        ("period", pa.date32()),
        ("amount_due", pa.float64()),
        ("issue_date", pa.date32()),
        ("due_date", pa.date32()),
        ("known_at", TS),
    ]
)
PAYMENTS = pa.schema(
    [
        ("customer_id", pa.string()),
        ("period", pa.date32()),
        ("paid_at", TS),
        ("amount", pa.float64()),
        ("late_fee", pa.float64()),
        ("known_at", TS),
    ]
)


def bill(
    cid: str, period: str, amount: float, issued: str, known: str | None = None, due: str | None = None
) -> dict:
    return {
        "customer_id": cid,
        "period": day(period),
        "amount_due": amount,
        "issue_date": day(issued),
        "due_date": day(due) if due else day(issued) + dt.timedelta(days=15),
        "known_at": at(known or issued),
    }


def payment(
    cid: str, period: str, paid: str, amount: float, known: str | None = None, late_fee: float = 0.0
) -> dict:
    return {
        "customer_id": cid, "period": day(period), "paid_at": at(paid), "amount": amount,
        "late_fee": late_fee, "known_at": at(known) if known else None,
    }  # fmt: skip


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """T = 2024-01-31; December's bills are issued on 2024-01-03 and due on the 18th."""
    wh = tmp_path / "wh"
    dec = ("2023-12-01", "2024-01-03")
    bills = [
        # A: December's bill was open at T; January's was issued after T.
        bill("A", *dec[:1], 100.0, dec[1]),
        bill("A", "2024-01-01", 80.0, "2024-02-03"),
        bill("B", *dec[:1], 100.0, dec[1]),
        bill("C", *dec[:1], 50.0, dec[1]),
        bill("D", *dec[:1], 30.0, dec[1]),
        bill("E", *dec[:1], 90.0, dec[1]),
        # F: an old debt, nothing billed since.
        bill("F", "2022-05-01", 40.0, "2022-06-03"),
        # G: January's bill was issued before T but entered the system after it: not known at T.
        bill("G", *dec[:1], 55.0, dec[1]),
        bill("G", "2024-01-01", 70.0, "2024-01-25", known="2024-02-01 09:00"),
        # J: January's bill was issued before T but falls due after it: not part of the balance at T.
        bill("J", *dec[:1], 100.0, dec[1]),
        bill("J", "2024-01-01", 100.0, "2024-01-20", due="2024-02-05"),
        bill("K", *dec[:1], 100.0, dec[1]),
        # L: two bills open at T; M: one, paid since to within the 1-yuan tolerance the balance reads.
        bill("L", "2023-11-01", 60.0, "2023-12-03"),
        bill("L", *dec[:1], 40.0, dec[1]),
        bill("M", *dec[:1], 50.5, dec[1]),
        # N: re-issued (退补) after T from 80 to 100: judged against what was owed at T.
        bill("N", *dec[:1], 80.0, dec[1]),
        bill("N", *dec[:1], 100.0, dec[1], known="2024-02-02 10:00"),
    ]
    payments = [
        payment("A", "2023-12-01", "2024-02-05 10:00", 100.0),  # toward the balance at T
        payment("A", "2024-01-01", "2024-02-06 10:00", 80.0),  # toward a bill T did not know
        payment("B", "2023-12-01", "2024-02-05 10:00", 60.0),  # part of it
        payment("C", "2023-12-01", "2024-01-20 10:00", 50.0, known="2024-02-02 08:00"),  # entered late
        payment("D", "2023-12-01", "2024-01-10 10:00", 30.0),  # paid before T: owed nothing then
        payment("D", "2023-12-01", "2024-02-04 10:00", 30.0),  # a month already paid, paid again
        payment("E", "2023-12-01", "2024-01-31 23:00", 90.0),  # seen at T: in the balance already
        payment("F", "2022-05-01", "2024-02-07 10:00", 40.0),  # the old debt
        payment("F", "2023-11-01", "2024-02-07 11:00", 5.0),  # a month F was never billed for
        payment("G", "2024-01-01", "2024-02-08 10:00", 70.0),  # the bill T did not know
        payment("H", "2023-12-01", "2024-02-08 10:00", 10.0),  # not in the snapshot
        payment("J", "2024-01-01", "2024-02-04 10:00", 100.0),  # the bill not yet due at T
        payment("K", "2023-12-01", "2024-02-04 10:00", 103.0, late_fee=5.0),  # 98 of principal: 2 still owed
        payment("L", "2023-12-01", "2024-02-04 10:00", 100.0),  # all of it on December: November still open
        payment("M", "2023-12-01", "2024-02-04 10:00", 50.0),
        payment("N", "2023-12-01", "2024-02-04 10:00", 80.0),  # what was owed at T
    ]
    _write(wh, "bills", bills, BILLS)
    _write(wh, "payments", payments, PAYMENTS)
    return wh


# What each customer owed at T, as `payments_outstanding_yuan` reads it.
OWED = {
    "A": 100.0, "B": 100.0, "C": 50.0, "D": 0.0, "E": 0.0, "F": 40.0, "G": 55.0, "J": 100.0, "K": 100.0,
    "L": 100.0, "M": 50.5, "N": 80.0,
}  # fmt: skip


def snapshot_with_balances(warehouse: Path, tmp_path: Path) -> Snapshot:
    ids = pd.Series(list(OWED))
    owed = np.array(list(OWED.values()))
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "probability": np.linspace(0.9, 0.3, len(ids)),
            "rank": np.arange(1, len(ids) + 1),
            OUTSTANDING: owed,
            OPEN_BILLS: open_bills(warehouse, ids, owed, T),
        }
    )
    return Snapshot.read("arrears", _write_snapshot(frame, tmp_path / "arrears.parquet"))


def _write_snapshot(frame: pd.DataFrame, path: Path) -> Path:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {"task": "arrears", "as_of": T.isoformat(), "model_name": "gridrisk-arrears", "model_version": "1"}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta)}), path)
    return path


def test_open_bills_are_the_bills_due_and_unpaid_at_the_as_of_date(warehouse):
    ids = pd.Series(list(OWED))
    got = dict(zip(OWED, open_bills(warehouse, ids, np.array(list(OWED.values())), T), strict=True))
    assert got["A"] == "2023-12-01=100.0" and got["L"] == "2023-11-01=60.0;2023-12-01=40.0"
    assert got["C"] == "2023-12-01=50.0"  # its payment was entered after T
    assert got["D"] is None and got["E"] is None  # paid by T
    assert got["J"] == "2023-12-01=100.0"  # January's bill was not due yet
    assert got["N"] == "2023-12-01=80.0"  # the version known at T
    # The open bills add up to the balance the feature reads, customer by customer.
    assert {c: round(sum(parse_open(t).values()), 2) for c, t in got.items()} == OWED


def test_each_bill_open_at_the_as_of_date_is_settled_by_what_was_paid_toward_it(warehouse, tmp_path):
    snap = snapshot_with_balances(warehouse, tmp_path)
    found = settle(snap, warehouse)
    assert found is not None
    by_id = dict(zip(snap.customer_id.tolist(), range(snap.size), strict=True))
    paid = {c: round(float(found.paid[i]), 2) for c, i in by_id.items()}
    settled = {c for c, i in by_id.items() if found.settled[i]}
    assert paid == {
        "A": 100.0, "B": 60.0, "C": 50.0, "D": 0.0, "E": 0.0, "F": 40.0, "G": 0.0, "J": 0.0, "K": 98.0,
        "L": 40.0, "M": 50.0, "N": 80.0,
    }  # fmt: skip
    # K is 2 yuan short; L paid December twice over and November not at all; M is within the 1 yuan the
    # balance allows a bill; N paid what was owed at T (its bill was raised after T).
    assert settled == {"A", "C", "F", "M", "N"}
    assert found.last_paid[by_id["A"]] == np.datetime64("2024-02-05")
    assert np.isnat(found.last_paid[by_id["E"]]) and np.isnat(found.last_paid[by_id["G"]])
    assert found.payments_through == dt.date(2024, 2, 8)
    # Read once per snapshot and payments table: the same object until either changes.
    assert settle(snap, warehouse, found) is found
    assert for_snapshot({"arrears": found}, snap) is found


def test_hide_settled_leaves_out_whoever_paid_the_balance(warehouse, tmp_path):
    snap = snapshot_with_balances(warehouse, tmp_path)
    found = settle(snap, warehouse)
    _, matched_all = select(snap, ListQuery(sort=SortKey.PROBABILITY), None, None, found)
    open_rows, matched_open = select(
        snap, ListQuery(sort=SortKey.PROBABILITY, hide_settled=True), None, None, found
    )
    assert matched_all == 12 and matched_open == 7
    assert [snap.customer_id[p] for p in open_rows] == ["B", "D", "E", "G", "J", "K", "L"]
    # Without a settlement (another task, an older snapshot) nobody is hidden.
    assert select(snap, ListQuery(sort=SortKey.PROBABILITY, hide_settled=True), None, None, None)[1] == 12


def test_a_snapshot_without_balances_or_a_warehouse_without_payments_has_no_settlement(warehouse, tmp_path):
    frame = pd.DataFrame({"customer_id": ["A"], "probability": [0.5], "rank": [1]})
    old = Snapshot.read("arrears", _write_snapshot(frame, tmp_path / "old.parquet"))
    assert settle(old, warehouse) is None
    snap = snapshot_with_balances(warehouse, tmp_path)
    table_path(warehouse, "payments").unlink()
    assert settle(snap, warehouse) is None


def test_a_settlement_of_a_replaced_snapshot_is_not_used(warehouse, tmp_path):
    snap = snapshot_with_balances(warehouse, tmp_path)
    found = settle(snap, warehouse)
    newer = snapshot_with_balances(warehouse, tmp_path / "next")
    assert for_snapshot({"arrears": found}, newer) is None


# -- the web page and its exports ----------------------------------------------------------------------------


def test_the_web_list_marks_and_hides_who_paid_since_and_its_export_says_so(settings, registry):
    from openpyxl import load_workbook
    from webdata import UNPAID, web_service

    from features.sources import read_table, write_table
    from serving.snapshot import latest_path, write_snapshot

    with web_service(settings, registry) as web:
        wh = settings.warehouse_path
        path = latest_path(settings.snapshots_path, "arrears")
        snap = Snapshot.read("arrears", path)
        scores = pd.read_parquet(path)
        owed = {UNPAID: 300.0, "C0000007": 120.0}  # C0000007 pays it on the 3rd of the next month
        scores[OUTSTANDING] = scores["customer_id"].map(owed).fillna(0.0)
        bills = {UNPAID: "2023-05-01=300.0", "C0000007": "2023-05-01=120.0"}
        scores[OPEN_BILLS] = scores["customer_id"].map(bills)
        write_snapshot(scores, settings.snapshots_path, "arrears", snap.as_of, model=snap.model)
        payments = read_table(wh, "payments")
        paid = payments.iloc[[0]].assign(
            payment_id="P-late", customer_id="C0000007", period=pd.Timestamp("2023-05-01"),
            paid_at=pd.Timestamp("2023-07-03 09:30"), amount=120.0,
        )  # fmt: skip
        write_table(wh, "payments", pd.concat([payments, paid], ignore_index=True))
        # What moved is said, as a reload's answer says it (it said `"changed": {}` when only payments moved).
        assert web.state.refresh()["arrears-payments"] == "1 settled since 2023-06-30"

        r = web.client.post("/login", data={"api_key": web.keys["admin"], "next": "/list"})
        assert r.status_code == 200
        page = web.client.get("/list", params={"task": "arrears", "sort": "probability"}).text
        row = re.search(r'<tr id="r\d+" class="settled">.*?</tr>', page, flags=re.S)
        assert row is not None and "C0000007" in row.group(0) and "已结清" in row.group(0)
        through = read_table(wh, "payments")["paid_at"].max().date().isoformat()
        assert through > "2023-07-03" and f"缴费记录截至 {through}" in page and "隐藏已结清" in page
        assert page.count('class="settled"') == 1
        hidden = web.client.get("/list", params={"task": "arrears", "hide_settled": "true"}).text
        assert "C0000007" not in hidden and UNPAID in hidden and "checked" in hidden

        book = web.client.get("/list/export", params={"task": "arrears", "format": "xlsx"}).content
        sheet = load_workbook(io.BytesIO(book)).active
        header = [c.value for c in sheet[1]]
        assert header[header.index("评分日欠费（元）") :][:4] == [
            "评分日欠费（元）", "评分日后缴费（元）", "最近缴费日", "已结清"
        ]  # fmt: skip
        cells = {r[1].value: r for r in sheet.iter_rows(min_row=2)}
        at = header.index("已结清")
        assert cells["C0000007"][at].value == "是" and cells[UNPAID][at].value == "否"

        english = web.client.get("/list", params={"task": "arrears", "lang": "en"}).text
        assert "Hide settled" in english and ">Settled<" in english


@pytest.mark.slow
@pytest.mark.parametrize("as_of", ["2023-11-10", "2023-11-30"])
def test_a_settled_customer_owes_nothing_today_on_the_bills_due_at_the_as_of_date(
    generated_dir, tmp_path, as_of
):
    """The mark's meaning, checked against the raw tables of a generated utility, not against its own formula:
    whoever is marked settled has no principal still open today on a bill due by T. Counting late fees and a
    bill issued before a day-10 T but due after it had marked 23 of 56 customers settled who still owed."""
    from features.training_set import build_scoring_frame
    from serving.settlement import OWED_FEATURE

    t = pd.Timestamp(as_of)
    frame = build_scoring_frame(generated_dir, "arrears", t)
    snapshot = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str),
            "probability": 0.5,
            "rank": np.arange(1, len(frame) + 1),
            OUTSTANDING: frame[OWED_FEATURE].to_numpy(dtype=float),
            OPEN_BILLS: open_bills(
                generated_dir, frame["customer_id"], frame[OWED_FEATURE].to_numpy(), t.date()
            ),
        }
    )
    # The open bills add up to the balance the model read, customer by customer.
    sums = [sum(parse_open(text).values()) for text in snapshot[OPEN_BILLS]]
    assert np.allclose(sums, snapshot[OUTSTANDING].fillna(0.0), atol=0.011)
    path = _write_snapshot(snapshot, tmp_path / "s.parquet")
    meta = json.loads(pq.read_schema(path).metadata[META_KEY.encode()])
    pq.write_table(
        pq.read_table(path).replace_schema_metadata({META_KEY: json.dumps({**meta, "as_of": as_of})}), path
    )
    snap = Snapshot.read("arrears", path)
    found = settle(snap, generated_dir)
    assert found is not None and found.settled.sum() > 0

    cut = t + pd.Timedelta(days=1)
    bills = pd.read_parquet(generated_dir / "bills.parquet")
    bills = bills.sort_values("known_at").drop_duplicates(["customer_id", "period"], keep="last")
    due = bills[pd.to_datetime(bills["due_date"]) < cut].set_index(["customer_id", "period"])["amount_due"]
    pays = pd.read_parquet(generated_dir / "payments.parquet")
    principal = (
        (pays["amount"] - pays["late_fee"].fillna(0.0)).groupby([pays["customer_id"], pays["period"]]).sum()
    )
    still_open = (due - principal.reindex(due.index).fillna(0.0)).clip(lower=0.0).groupby(level=0).sum()
    settled = [c for c, s in zip(snap.customer_id, found.settled, strict=True) if s]
    assert [c for c in settled if still_open.get(c, 0.0) > 0.01] == []
