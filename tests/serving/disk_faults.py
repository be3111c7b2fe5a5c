"""A home on a read-only mount or a full disk, for tests: writing under a folder fails as the kernel fails
it (EROFS when a file is opened for writing or a folder made, ENOSPC part-way through a write); reading, and
every other folder, work as usual. Tests may run as root, where a chmod'ed folder stays writable, so the
calls are patched; `monkeypatch.undo()` (or the test's end) is the operator making the home writable again."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _under(path: Any, folder: Path) -> bool:
    if isinstance(path, int):  # a file descriptor: the file it is open on
        path = os.readlink(f"/proc/self/fd/{path}")
    resolved = Path(os.fsdecode(path)).resolve()
    return resolved == folder or folder in resolved.parents


def _fault(code: int, path: Any = None) -> OSError:
    return OSError(code, os.strerror(code), *([os.fsdecode(path)] if path is not None else []))


def read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """`folder` as on a read-only bind mount."""
    folder = Path(folder).resolve()
    real_os_open, real_open, real_mkdir = os.open, io.open, os.mkdir

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & WRITE_FLAGS and _under(path, folder):
            raise _fault(errno.EROFS, path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if set(mode) & set("wax+") and not isinstance(file, int) and _under(file, folder):
            raise _fault(errno.EROFS, file)
        return real_open(file, mode, *args, **kwargs)

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if _under(path, folder):
            raise _fault(errno.EEXIST if os.path.isdir(path) else errno.EROFS, path)
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)


class _FillingFile:
    """A file opened for writing on a disk with room for half of what is written to it."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def write(self, data: Any) -> int:
        self._file.write(data[: len(data) // 2])
        self._file.flush()
        raise _fault(errno.ENOSPC)

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def full_disk(monkeypatch: pytest.MonkeyPatch, folder: Path, *, short: bool = False) -> None:
    """`folder` on a disk that fills mid-write: half of each write lands, then ENOSPC (or, `short`, the write
    returns having written half, as write(2) may before the next call fails)."""
    folder = Path(folder).resolve()
    real_write, real_open = os.write, io.open

    def write(fd: int, data: bytes) -> int:
        if not _under(fd, folder):
            return real_write(fd, data)
        done = real_write(fd, data[: len(data) // 2])
        if short:
            return done
        raise _fault(errno.ENOSPC)

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        opened = real_open(file, mode, *args, **kwargs)
        if set(mode) & set("wax+") and not isinstance(file, int) and _under(file, folder):
            return _FillingFile(opened)
        return opened

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(builtins, "open", open_)
