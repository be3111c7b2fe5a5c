"""Materialized scores: `gridrisk score` writes a Parquet file per task and as-of date; the service reads it.

Layout: `<snapshots>/<task>/<as_of>.parquet` plus a `latest` file naming the newest one. Each row holds the
customer's segment, probability, band, percentile, rank, amount at stake, expected value, the model name and
version, and the top-k reasons (feature, value, contribution); sentences are rendered at request time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.training_set import SEGMENT_COLUMNS
from serving.errors import SnapshotUnavailable, UnknownCustomers
from serving.locks import replace_whole
from serving.model import PackagedModel
from serving.reasons import build_reasons
from serving.schemas import Lang, ModelRef, Reason, Task
from serving.scoring import explain, score_body
from serving.settings import registered_name

logger = logging.getLogger(__name__)

LATEST = "latest"
META_KEY = "gridrisk"  # Parquet key-value metadata: task, as_of, model_name, model_version (rows: the footer)
SMALL_LOOKUP = 64  # ids per request looked up one by one
CHUNK_ROWS = 100_000  # bounds the (rows x features+1) float64 contribution matrix at ~35 MB per 40 features


def score_frame(
    package: PackagedModel,
    frame: pd.DataFrame,
    model: ModelRef,
    k: int = 5,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Score and explain a scoring frame (customer_id, segments, features, amount_at_stake) in chunks."""
    X = package.spec.matrix(frame)
    n = len(frame)
    k = min(k, len(package.spec.names))
    probability = np.empty(n)
    margin = np.empty(n)
    base = np.empty(n)
    idx = np.empty((n, k), dtype=np.int32)
    contribution = np.empty((n, k))
    number = np.empty((n, k))
    label = np.empty((n, k), dtype=object)
    for start in range(0, n, chunk_rows):
        end = min(start + chunk_rows, n)
        ex = explain(package, X[start:end], k)
        probability[start:end] = ex.probability
        margin[start:end] = ex.raw_margin
        base[start:end] = ex.base_value
        idx[start:end] = ex.reason_index
        contribution[start:end] = ex.contribution
        number[start:end] = ex.number
        label[start:end] = ex.label
        if progress is not None:
            progress(end - start)
    out = pd.DataFrame({"customer_id": frame["customer_id"].astype(str).to_numpy()})
    as_of = frame["as_of"] if "as_of" in frame.columns else pd.Series(pd.NaT, index=frame.index)
    out["as_of"] = pd.to_datetime(as_of).dt.normalize().to_numpy()
    for segment in SEGMENT_COLUMNS:
        out[segment] = (
            pd.Categorical(frame[segment].astype(str))
            if segment in frame.columns
            else pd.Categorical([None] * n)
        )
    out["probability"] = probability
    out["band"] = pd.Categorical(package.band(probability))
    out["percentile"] = package.percentile(probability)
    # Rank 1 is the riskiest customer; exact ties keep the frame's order so ranks are unique. Customers the
    # model cannot tell apart (the same features) differ at most by the rounding of their summed
    # contributions (~1e-16), and that decides their order: as arbitrary as the frame's, and as harmless.
    order = np.argsort(-probability, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    out["rank"] = rank
    amount = (
        pd.to_numeric(frame["amount_at_stake"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if "amount_at_stake" in frame.columns
        else np.full(n, np.nan)
    )
    out["amount_at_stake"] = amount
    out["expected_value"] = probability * amount
    out["raw_margin"] = margin
    out["base_value"] = base
    out["model_name"] = pd.Categorical([model.name] * n) if n else pd.Categorical([])
    out["model_version"] = pd.Categorical([model.version] * n) if n else pd.Categorical([])
    feature_names = np.asarray(package.spec.names, dtype=object)
    for i in range(k):
        out[f"reason_{i + 1}_feature"] = pd.Categorical.from_codes(idx[:, i], categories=feature_names)
        out[f"reason_{i + 1}_value"] = number[:, i]
        out[f"reason_{i + 1}_label"] = pd.Categorical(label[:, i])
        out[f"reason_{i + 1}_contribution"] = contribution[:, i]
    return out


def write_snapshot(
    scores: pd.DataFrame,
    root: Path,
    task: str,
    as_of: dt.date,
    out: Path | None = None,
    model: ModelRef | None = None,
    make_latest: bool = False,
) -> Path:
    """Write a snapshot; when it lands in the task's folder, move the `latest` pointer to it (both by rename),
    unless `latest` names a snapshot of a later as-of date: scoring an earlier month again (to look at it, or
    to audit a list) does not turn the service back a month. `make_latest` moves it anyway (a deliberate
    rollback).

    A file written elsewhere (`gridrisk score --out /tmp/x.parquet`) is an export: the pointer stays put.
    The as-of date and the model go into the Parquet metadata too, so a snapshot of zero rows still says
    when and by what it was scored. `model` defaults to the one named in the rows.
    """
    task_dir = Path(root) / task
    task_dir.mkdir(parents=True, exist_ok=True)
    path = Path(out) if out is not None else task_dir / f"{as_of.isoformat()}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    if model is None and len(scores):
        model = ModelRef(name=str(scores["model_name"].iloc[0]), version=str(scores["model_version"].iloc[0]))
    meta = {"task": task, "as_of": as_of.isoformat()}
    if model is not None:
        meta.update(model_name=model.name, model_version=model.version)
    table = pa.Table.from_pandas(scores, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta)})
    tmp = path.with_name(f".{path.name}.tmp")
    replace_whole(path, tmp, lambda: pq.write_table(table, tmp, compression="zstd"))
    if path.resolve().parent != task_dir.resolve():
        logger.info("scores %s: %d rows -> %s; outside %s, not served", task, len(scores), path, task_dir)
        return path
    served = served_path(root, task)[0]  # what the service serves: `latest`, else the newest dated file
    newer = stored_as_of(served) if served is not None and served != path.resolve() else None
    if newer is not None and newer > as_of and not make_latest:
        logger.info(
            "snapshot %s: %d rows -> %s; latest stays at the newer %s", task, len(scores), path, newer
        )
        return path
    pointer = task_dir / f".{LATEST}.tmp"
    # The file's name, not its path: a home moved or mounted elsewhere (another volume, a container) still
    # serves what `latest` named.
    replace_whole(task_dir / LATEST, pointer, lambda: pointer.write_text(path.name + "\n"))
    logger.info("snapshot %s: %d rows -> %s", task, len(scores), path)
    return path


def latest_path(root: Path, task: str) -> Path | None:
    """The file `latest` names: a name in the task's folder, or (pointers written before) a whole path."""
    pointer = Path(root) / task / LATEST
    if not pointer.exists():
        return None
    named = Path(pointer.read_text().strip())
    return named if named.is_absolute() else (pointer.parent / named).resolve()


def snapshot_meta(schema: pa.Schema) -> dict[str, str]:
    """What `write_snapshot` put in a snapshot's Parquet metadata: task, as_of, model_name, model_version."""
    return json.loads((schema.metadata or {}).get(META_KEY.encode(), b"{}"))


def stored_as_of(path: Path) -> dt.date | None:
    """The as-of date a snapshot file was scored at (its Parquet metadata); None when it cannot be read."""
    try:
        return dt.date.fromisoformat(snapshot_meta(pq.read_schema(path))["as_of"])
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None


def dated_snapshots(folder: Path) -> list[tuple[dt.date, Path]]:
    """The snapshot files named `<as_of>.parquet` in a task's folder, oldest first."""
    out = []
    for path in Path(folder).glob("*.parquet"):
        try:
            out.append((dt.date.fromisoformat(path.stem), path))
        except ValueError:
            continue
    return sorted(out)


def served_path(root: Path, task: str) -> tuple[Path | None, str | None]:
    """The snapshot to serve and, when it is not the one `latest` names, why.

    A `latest` pointer whose file was deleted or moved falls back to the newest dated snapshot of the folder.
    """
    named = latest_path(root, task)
    if named is not None and named.exists():
        return named, None
    dated = dated_snapshots(Path(root) / task)
    fallback = dated[-1][1].resolve() if dated else None
    if named is None:
        return fallback, None if fallback is None else f"no {LATEST} pointer; serving {fallback.name}"
    if fallback is None:
        return None, (
            f"{Path(root) / task / LATEST} names {named}, which does not exist, and no dated snapshot is "
            f"left in {Path(root) / task}: run `gridrisk score --task {task}`"
        )
    return fallback, (
        f"{Path(root) / task / LATEST} names {named}, which does not exist; serving the newest dated "
        f"snapshot {fallback.name} (run `gridrisk score --task {task}` to write a new one)"
    )


@dataclass(frozen=True)
class Snapshot:
    """A snapshot in memory, columns as numpy arrays and categorical codes, indexed by customer_id."""

    task: str
    path: Path
    mtime_ns: int
    as_of: dt.date
    model: ModelRef
    k: int
    size: int
    index: pd.Index
    numbers: dict[str, np.ndarray]  # float64 / int64 columns
    codes: dict[str, np.ndarray]  # categorical columns: int codes (-1 = null)
    categories: dict[str, np.ndarray]  # categorical columns: levels as an object array
    customer_id: np.ndarray

    @classmethod
    def read(cls, task: str, path: Path) -> Snapshot:
        table = pq.read_table(path)
        meta = snapshot_meta(table.schema)
        frame = table.to_pandas()
        numbers: dict[str, np.ndarray] = {}
        codes: dict[str, np.ndarray] = {}
        categories: dict[str, np.ndarray] = {}
        for name in frame.columns:
            if name in ("customer_id", "as_of"):
                continue
            col = frame[name]
            if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col):
                cat = pd.Categorical(
                    col.astype(object) if not isinstance(col.dtype, pd.CategoricalDtype) else col
                )
                codes[name] = np.asarray(cat.codes)
                categories[name] = np.asarray(cat.categories.astype(object), dtype=object)
            else:
                numbers[name] = col.to_numpy(dtype=np.float64 if col.dtype.kind == "f" else np.int64)
        ids = frame["customer_id"].astype(str).to_numpy(dtype=object)
        if "model_version" in meta:
            model = ModelRef(name=meta["model_name"], version=meta["model_version"])
            as_of = dt.date.fromisoformat(meta["as_of"])
        elif len(frame):  # written before the metadata was: the rows say it
            model = ModelRef(
                name=str(frame["model_name"].iloc[0]), version=str(frame["model_version"].iloc[0])
            )
            as_of = pd.Timestamp(frame["as_of"].iloc[0]).date()
        else:
            raise SnapshotUnavailable(
                f"snapshot {path} has no rows and no metadata naming its model and as-of date; "
                f"rerun `gridrisk score --task {task}`"
            )
        k = sum(1 for name in frame.columns if name.startswith("reason_") and name.endswith("_feature"))
        mtime = path.stat().st_mtime_ns
        return cls(
            task, path, mtime, as_of, model, k, len(frame), pd.Index(ids), numbers, codes, categories, ids
        )

    def positions(self, customer_ids: list[str], strict: bool = True) -> np.ndarray:
        """Row positions of the ids; raises UnknownCustomers naming the ids the snapshot lacks, or with
        `strict=False` gives them -1."""
        if len(customer_ids) <= SMALL_LOOKUP:
            # Hash lookups one by one: building an Index of the request's ids costs more for a few ids.
            pos = np.fromiter(
                (self._position(c) for c in customer_ids), dtype=np.int64, count=len(customer_ids)
            )
        else:
            pos = self.index.get_indexer(customer_ids)
        if strict and (pos < 0).any():
            missing = [c for c, p in zip(customer_ids, pos, strict=True) if p < 0]
            raise UnknownCustomers(self.task, missing)
        return pos

    def _position(self, customer_id: str) -> int:
        try:
            return int(self.index.get_loc(customer_id))
        except KeyError:
            return -1

    def code_of(self, column: str, value: str) -> int:
        """The categorical code of a value, -1 when the snapshot has no such value."""
        # Compared as Python strings: numpy's `==` against a str goes through np.str_, which drops trailing
        # NULs, so `?station=S01%00` listed S01 while the scope check and the summary saw another station.
        return next((i for i, level in enumerate(self.categories[column].tolist()) if level == value), -1)

    def column(self, name: str, pos: np.ndarray) -> list:
        """Decoded values of one column at the given positions (None for nulls, NaN and infinities)."""
        if name == "customer_id":
            return self.customer_id[pos].tolist()
        if name in self.codes:
            c = self.codes[name][pos]
            levels = self.categories[name]
            return [levels[x] if x >= 0 else None for x in c.tolist()]
        values = self.numbers[name][pos]
        if values.dtype.kind == "f":
            return [v if math.isfinite(v) else None for v in values.tolist()]
        return values.tolist()

    def reasons(self, package: PackagedModel, pos: np.ndarray, lang: Lang) -> list[list[Reason]]:
        """Stored top-k reasons at the positions as `Reason` objects (lists, customer files)."""
        return [[Reason(**r) for r in row] for row in self.reason_rows(package, pos, lang)]

    def reason_rows(self, package: PackagedModel, pos: np.ndarray, lang: Lang) -> list[list[dict[str, Any]]]:
        """Stored top-k reasons at the positions as plain dicts, with sentences from `package`'s templates."""
        parts = {
            part: [self.column(f"reason_{i}_{part}", pos) for i in range(1, self.k + 1)]
            for part in ("feature", "value", "label", "contribution")
        }
        out = []
        for r in range(len(pos)):
            out.append(
                build_reasons(
                    package,
                    [parts["feature"][i][r] for i in range(self.k)],
                    [math.nan if (v := parts["value"][i][r]) is None else v for i in range(self.k)],
                    [parts["label"][i][r] for i in range(self.k)],
                    [parts["contribution"][i][r] for i in range(self.k)],
                    lang,
                )
            )
        return out


def score_ids(
    task: Task,
    snapshot: Snapshot,
    package: PackagedModel,
    ids: list[str],
    lang: Lang,
    skip_unknown: bool = False,
) -> dict[str, Any]:
    """Scores of known customers from the snapshot (a `ScoreResponse` as data), naming the scoring version.
    An id the snapshot lacks is a 404 for the batch (UnknownCustomers), or with `skip_unknown` is left out
    and named once in `unknown`."""
    pos = snapshot.positions(ids, strict=not skip_unknown)
    unknown: list[str] = []
    if skip_unknown and (pos < 0).any():  # else every id is known: positions() raised for any other
        unknown = list(dict.fromkeys(c for c, p in zip(ids, pos, strict=True) if p < 0))
        ids = [c for c, p in zip(ids, pos, strict=True) if p >= 0]
        pos = pos[pos >= 0]
    probability = snapshot.numbers["probability"][pos].tolist()
    percentile = snapshot.column("percentile", pos)
    band = snapshot.column("band", pos)
    margin = snapshot.numbers["raw_margin"][pos].tolist()
    base = snapshot.numbers["base_value"][pos].tolist()
    reasons = snapshot.reason_rows(package, pos, lang)
    results = [
        {
            "customer_id": ids[r],
            "probability": probability[r],
            "band": band[r],
            "percentile": percentile[r],
            "raw_margin": margin[r],
            "base_value": base[r],
            "reasons": reasons[r],
        }
        for r in range(len(ids))
    ]
    return score_body(task, "snapshot", snapshot.model, snapshot.as_of, lang, results, unknown)


class SnapshotStore:
    """The latest snapshot per task, re-read when its `latest` pointer moves (on refresh).

    `detail(task)` says what is wrong with the snapshot on disk (pointer to a missing file, unreadable file),
    also while an older snapshot read before keeps being served; `/ready` reports it.
    """

    def __init__(self, root: Path, tasks: list[str]) -> None:
        self.root = Path(root)
        self.tasks = list(tasks)
        self._snapshots: dict[str, Snapshot] = {}
        self._details: dict[str, str] = {}
        self._failed: dict[str, tuple[Path, int]] = {}  # a broken file is retried only once it changes
        self._lock = threading.Lock()

    def get(self, task: str) -> Snapshot:
        snap = self._snapshots.get(task)
        if snap is None:
            raise SnapshotUnavailable(
                self._details.get(task)
                or f"no {task} snapshot under {self.root / task}: run `gridrisk score --task {task}` once "
                f"{registered_name(task)} has a champion (`gridrisk train --task {task}`, or `gridrisk "
                f'promote --task {task} --version V --reason "…"` for a version the gate kept as '
                "challenger), or post features as `records` to score live"
            )
        return snap

    def loaded(self) -> dict[str, Snapshot]:
        return dict(self._snapshots)

    def detail(self, task: str) -> str | None:
        return self._details.get(task)

    def refresh(self) -> dict[str, str]:
        with self._lock:
            changed: dict[str, str] = {}
            for task in self.tasks:
                path, note = served_path(self.root, task)
                current = self._snapshots.get(task)
                if path is None:
                    self._set_detail(task, note, current)
                    continue
                mtime = path.stat().st_mtime_ns
                # The same file name is rewritten when a date is scored again, so compare times too.
                if current is not None and current.path == path and current.mtime_ns == mtime:
                    self._set_detail(task, note, None)
                    continue
                if self._failed.get(task) == (path, mtime):
                    continue
                try:
                    snap = Snapshot.read(task, path)
                except (OSError, ValueError, KeyError, pa.ArrowException, SnapshotUnavailable) as exc:
                    logger.warning("cannot read snapshot %s: %s", path, exc)
                    self._failed[task] = (path, mtime)
                    self._set_detail(task, f"cannot read snapshot {path}: {exc}", current)
                    continue
                self._failed.pop(task, None)
                self._set_detail(task, note, None)
                self._snapshots = {**self._snapshots, task: snap}
                before = current.as_of.isoformat() if current else "none"
                said = f"{before} -> {snap.as_of.isoformat()}"
                if current is not None and current.as_of == snap.as_of:  # the same date scored again
                    said += f", scored again (model version {current.model.version} -> {snap.model.version})"
                changed[f"{task}-snapshot"] = said
            return changed

    def _set_detail(self, task: str, note: str | None, kept: Snapshot | None) -> None:
        if note is None:
            self._details.pop(task, None)
            return
        if kept is not None:
            note += f"; still serving the snapshot read before ({kept.path.name}, as of {kept.as_of})"
        self._details[task] = note
