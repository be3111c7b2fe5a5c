"""Advisory file locks the service's worker processes share (one host; released when the file closes or the
process dies), and files replaced whole in one rename."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def replace_whole(path: Path, tmp: Path, write: Callable[[], T]) -> T:
    """`write` the file's new content into `tmp`, then rename it over `path`: readers see the old file or
    the new one, never half of one. When either step fails (a read-only home, a full disk), what `tmp` holds
    is removed and the error raised; `path` is as it was. Returns what `write` returned."""
    try:
        done = write()
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):  # never in place of the error itself
            tmp.unlink(missing_ok=True)
        raise
    return done


@contextmanager
def folder_lock(folder: Path, name: str, *, exclusive: bool) -> Iterator[None]:
    """Hold `folder/name` locked: exclusive to write in the folder, shared to read it. A folder that cannot
    be written is read unlocked (no worker can change it either); an exclusive lock there raises."""
    if exclusive:
        folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        try:
            lock = stack.enter_context(open(folder / name, "a"))
        except OSError:
            if exclusive:
                raise
            lock = None
        if lock is not None:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
