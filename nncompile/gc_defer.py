"""Compiling with the garbage collector's full collections made rare.

Tracing, optimizing and lowering allocate many objects, and every tenth young-generation
collection CPython may run a full one, which scans every object the process holds. In a
process that also imported PyTorch (hundreds of thousands of objects) those scans made
the seed CNN's compile 0.1-0.15 s slower (the optimize phase: 0.017 s alone, 0.10 s with
torch loaded). So while any thread compiles, a full collection waits for 100 young ones
instead of 10; young collections still free the compiler's own garbage cycles. (Freezing
the process's objects instead left a compile-and-drop loop 28 KB of RSS per cycle
higher; disabling the collector raised a deep graph's peak memory by a third. This costs
it 15 %: 130 -> 149 MB for a 4000-op chain, which compiles 10 % faster.)
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

FULL_COLLECTION_EVERY = 100  # young collections per full one while compiling (CPython: 10)

_lock = threading.Lock()
_compiling = [0]
_saved: list[int] = []


@contextlib.contextmanager
def full_collections_deferred() -> Iterator[None]:
    with _lock:
        if _compiling[0] == 0:
            _saved[:] = gc.get_threshold()
            gc.set_threshold(_saved[0], _saved[1], max(_saved[2], FULL_COLLECTION_EVERY))
        _compiling[0] += 1
    try:
        yield
    finally:
        with _lock:
            _compiling[0] -= 1
            if _compiling[0] == 0:
                gc.set_threshold(*_saved)
