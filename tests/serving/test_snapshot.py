"""Batch scores: the snapshot's columns, ranks and expected values, the latest pointer, and reloading."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from tinymodel import AS_OF, scoring_frame

from serving.errors import SnapshotUnavailable, UnknownCustomers
from serving.schemas import ModelRef
from serving.scoring import explain
from serving.snapshot import (
    Snapshot,
    SnapshotStore,
    latest_path,
    score_frame,
    served_path,
    write_snapshot,
)

MODEL = ModelRef(name="gridrisk-arrears", version="7")


def test_score_frame_ranks_and_values_every_customer(package):
    frame = scoring_frame(40)
    scores = score_frame(package, frame, MODEL, k=3, chunk_rows=7)  # chunks that do not divide the rows
    assert len(scores) == 40 and scores["customer_id"].tolist() == frame["customer_id"].tolist()
    assert scores.loc[scores["rank"] == 1, "probability"].item() == scores["probability"].max()
    assert sorted(scores["rank"]) == list(range(1, 41))
    np.testing.assert_allclose(scores["expected_value"], scores["probability"] * frame["amount_at_stake"])
    assert np.isnan(scores.loc[5, "expected_value"])  # no amount at stake
    assert set(scores["model_version"]) == {"7"} and set(scores["station"]) == {"S01", "S02", "S03"}
    ex = explain(package, package.spec.matrix(frame), k=3)
    np.testing.assert_allclose(scores["probability"], ex.probability)
    np.testing.assert_allclose(scores["reason_1_contribution"], ex.contribution[:, 0])
    labels = scores.loc[scores["reason_1_feature"] == "usage_category", "reason_1_label"]
    assert labels.isin(["agricultural", "general_commercial", "large_industrial", "residential"]).all()


def test_write_read_and_the_latest_pointer(package, tmp_path):
    scores = score_frame(package, scoring_frame(30), MODEL)
    path = write_snapshot(scores, tmp_path, "arrears", AS_OF)
    assert path.name == "2023-06-30.parquet" and latest_path(tmp_path, "arrears") == path.resolve()
    snap = Snapshot.read("arrears", path)
    assert (snap.size, snap.as_of, snap.model, snap.k) == (30, AS_OF, MODEL, 4)
    pos = snap.positions(["C0000003", "C0000001"])
    assert snap.column("customer_id", pos) == ["C0000003", "C0000001"]
    assert snap.column("probability", pos) == pytest.approx(scores["probability"].iloc[[3, 1]].tolist())
    with pytest.raises(UnknownCustomers, match="C9"):
        snap.positions(["C9"])


def test_store_rereads_a_rewritten_snapshot(package, tmp_path):
    store = SnapshotStore(tmp_path, ["arrears"])
    store.refresh()
    with pytest.raises(SnapshotUnavailable, match="gridrisk score --task arrears"):
        store.get("arrears")
    write_snapshot(score_frame(package, scoring_frame(30), MODEL), tmp_path, "arrears", AS_OF)
    assert store.refresh() == {"arrears-snapshot": "none -> 2023-06-30"}
    assert store.refresh() == {}
    newer = ModelRef(name=MODEL.name, version="8")
    write_snapshot(score_frame(package, scoring_frame(31), newer), tmp_path, "arrears", AS_OF)
    # It said "2023-06-30 -> 2023-06-30", which does not say what changed.
    assert store.refresh() == {
        "arrears-snapshot": f"2023-06-30 -> 2023-06-30, scored again (model version {MODEL.version} -> 8)"
    }
    assert store.get("arrears").model == newer and store.get("arrears").size == 31


def test_out_outside_the_store_is_an_export_and_leaves_latest(package, tmp_path):
    scores = score_frame(package, scoring_frame(30), MODEL)
    served = write_snapshot(scores, tmp_path / "snapshots", "arrears", AS_OF)
    export = write_snapshot(scores, tmp_path / "snapshots", "arrears", AS_OF, out=tmp_path / "x.parquet")
    assert export.exists() and latest_path(tmp_path / "snapshots", "arrears") == served.resolve()
    inside = tmp_path / "snapshots" / "arrears" / "rerun.parquet"  # --out into the task's own folder
    write_snapshot(scores, tmp_path / "snapshots", "arrears", AS_OF, out=inside)
    assert latest_path(tmp_path / "snapshots", "arrears") == inside.resolve()


def test_scoring_an_earlier_month_again_does_not_turn_the_service_back(package, tmp_path):
    scores = score_frame(package, scoring_frame(30), MODEL)
    november = write_snapshot(scores, tmp_path, "arrears", AS_OF)
    # `gridrisk score --as-of <last month>` (to look at last month's list) moved `latest` back, and the
    # service served October in December while /ready said ready.
    earlier = write_snapshot(scores, tmp_path, "arrears", AS_OF - dt.timedelta(days=30))
    assert earlier.exists() and latest_path(tmp_path, "arrears") == november.resolve()
    assert SnapshotStore(tmp_path, ["arrears"]).refresh() == {"arrears-snapshot": "none -> 2023-06-30"}
    again = write_snapshot(scores, tmp_path, "arrears", AS_OF)  # the same month re-scored: served
    assert latest_path(tmp_path, "arrears") == again.resolve()
    rollback = write_snapshot(scores, tmp_path, "arrears", AS_OF - dt.timedelta(days=30), make_latest=True)
    assert latest_path(tmp_path, "arrears") == rollback.resolve()  # asked for: served
    later = write_snapshot(scores, tmp_path, "arrears", AS_OF + dt.timedelta(days=31))
    assert latest_path(tmp_path, "arrears") == later.resolve()
    # Without a pointer the service serves the newest dated file; an earlier month does not replace it.
    (tmp_path / "arrears" / "latest").unlink()
    write_snapshot(scores, tmp_path, "arrears", AS_OF - dt.timedelta(days=61))
    assert served_path(tmp_path, "arrears")[0] == later.resolve()


def test_latest_survives_a_home_moved_elsewhere(package, tmp_path):
    scores = score_frame(package, scoring_frame(30), MODEL)
    write_snapshot(scores, tmp_path / "home" / "snapshots", "arrears", AS_OF)
    write_snapshot(scores, tmp_path / "home" / "snapshots", "arrears", AS_OF - dt.timedelta(days=30))
    (tmp_path / "home").rename(tmp_path / "mounted")  # another volume, a container's mount point
    # The pointer held the old absolute path: the service fell back to the newest dated file and said so.
    served, why = served_path(tmp_path / "mounted" / "snapshots", "arrears")
    assert why is None and served == (tmp_path / "mounted" / "snapshots" / "arrears" / "2023-06-30.parquet")


def test_an_empty_snapshot_keeps_its_model_and_date(package, tmp_path):
    scores = score_frame(package, scoring_frame(30).iloc[:0], MODEL)  # an empty population
    path = write_snapshot(scores, tmp_path, "arrears", AS_OF, model=MODEL)
    snap = Snapshot.read("arrears", path)
    assert (snap.size, snap.as_of, snap.model) == (0, AS_OF, MODEL)


def test_snapshot_metadata_holds_what_the_rows_cannot_say(package, tmp_path):
    import pyarrow.parquet as pq

    path = write_snapshot(score_frame(package, scoring_frame(30), MODEL), tmp_path, "arrears", AS_OF)
    footer = pq.read_metadata(path)
    meta = json.loads(footer.metadata[b"gridrisk"])
    # No row count beside the footer's own (nothing read it, and two counts can disagree).
    assert meta == {
        "task": "arrears",
        "as_of": AS_OF.isoformat(),
        "model_name": MODEL.name,
        "model_version": "7",
    }
    assert footer.num_rows == 30


def test_an_empty_snapshot_without_metadata_is_reported_not_served(package, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    scores = score_frame(package, scoring_frame(30).iloc[:0], MODEL)
    path = tmp_path / "arrears" / "2023-06-30.parquet"  # as written before snapshots carried metadata
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(scores, preserve_index=False), path)
    (tmp_path / "arrears" / "latest").write_text(str(path))
    store = SnapshotStore(tmp_path, ["arrears"])
    store.refresh()
    with pytest.raises(SnapshotUnavailable, match="no rows and no metadata"):
        store.get("arrears")


def test_a_latest_pointer_to_a_missing_file_falls_back_to_the_newest_dated(package, tmp_path):
    scores = score_frame(package, scoring_frame(30), MODEL)
    older = write_snapshot(scores, tmp_path, "arrears", dt.date(2023, 5, 31))
    newer = write_snapshot(scores, tmp_path, "arrears", AS_OF)
    (tmp_path / "arrears" / "latest").write_text(str(tmp_path / "gone.parquet"))  # moved away by hand
    store = SnapshotStore(tmp_path, ["arrears"])
    store.refresh()
    assert store.get("arrears").path == newer.resolve()
    assert "gone.parquet" in store.detail("arrears") and "newest dated snapshot 2023-06-30" in store.detail(
        "arrears"
    )
    newer.unlink()
    older.unlink()
    store.refresh()  # nothing left on disk: the snapshot in memory keeps serving, and says so
    assert "no dated snapshot is left" in store.detail("arrears")
    assert "still serving" in store.detail("arrears")
    fresh = SnapshotStore(tmp_path, ["arrears"])
    fresh.refresh()
    with pytest.raises(SnapshotUnavailable, match="no dated snapshot is left"):
        fresh.get("arrears")


def test_an_unreadable_snapshot_is_reported(package, tmp_path):
    store = SnapshotStore(tmp_path, ["arrears"])
    write_snapshot(score_frame(package, scoring_frame(30), MODEL), tmp_path, "arrears", AS_OF)
    store.refresh()
    broken = tmp_path / "arrears" / "2023-07-31.parquet"
    broken.write_bytes(b"not parquet")  # a copy cut short
    (tmp_path / "arrears" / "latest").write_text(str(broken))
    assert store.refresh() == {}
    assert store.get("arrears").as_of == AS_OF  # the good snapshot read before keeps serving
    assert "cannot read snapshot" in store.detail("arrears") and "still serving" in store.detail("arrears")
    fresh = SnapshotStore(tmp_path, ["arrears"])
    fresh.refresh()
    with pytest.raises(SnapshotUnavailable, match="cannot read snapshot"):
        fresh.get("arrears")


def test_a_full_disk_leaves_no_half_snapshot_and_the_served_one_whole(package, tmp_path, monkeypatch):
    # On a full disk `gridrisk score` left a half-written `.….parquet.tmp` in the home (an operator's find).
    import errno
    import os

    from serving import snapshot as module

    served = write_snapshot(score_frame(package, scoring_frame(30), MODEL), tmp_path, "arrears", AS_OF)
    before = served.read_bytes()

    def fills_up(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))

    monkeypatch.setattr(module.pq, "write_table", fills_up)
    with pytest.raises(OSError, match="No space left"):
        write_snapshot(score_frame(package, scoring_frame(30), MODEL), tmp_path, "arrears", AS_OF)
    assert sorted(p.name for p in (tmp_path / "arrears").iterdir()) == ["2023-06-30.parquet", "latest"]
    assert served.read_bytes() == before
