"""Advisory file locks the service's worker processes share (one host; released when the file closes or the
process dies)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path


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
