"""`release_memory` gives freed memory back to the operating system."""

from __future__ import annotations

import ctypes
import os
import sys

import pytest

from features.memory import release_memory


def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def has_malloc_trim() -> bool:
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "malloc_trim")
    except OSError:
        return False


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not has_malloc_trim() or bool(os.environ.get("LD_PRELOAD")),
    reason="glibc's allocator only",
)
def test_freed_blocks_glibc_keeps_are_returned() -> None:
    # 16 KiB blocks come from glibc's heap, not mmap. With the last one alive the heap's top cannot shrink,
    # so freeing the others leaves ~300 MiB resident until something trims it.
    blocks = [bytearray(16 * 1024) for _ in range(20_000)]
    for b in blocks:
        b[::1024] = b"\1" * len(b[::1024])  # touch every page
    last = blocks[-1]
    del blocks
    held = resident_mib()
    release_memory()
    assert held - resident_mib() > 200
    assert len(last) == 16 * 1024
