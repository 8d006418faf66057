"""Compiling without the cyclic garbage collector rescanning the whole process.

Tracing, optimizing and lowering allocate many objects, and every so often CPython runs
a collection of the oldest generation, which scans every object the process holds. In a
process that also imported PyTorch (hundreds of thousands of objects) those scans made
the seed CNN's compile 0.15 s slower (the optimize phase: 0.017 s alone, 0.15 s with
torch loaded). So while any thread compiles, the objects that existed before are frozen
(``gc.freeze``: kept out of collections) and unfrozen when the last compile finishes:
collections still run and free the compiler's own garbage cycles (disabling the
collector instead raised a 4000-op graph's peak memory by a third), but no longer
rescan the rest of the process.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_compiling = [0]


@contextlib.contextmanager
def outside_objects_frozen() -> Iterator[None]:
    with _lock:
        if _compiling[0] == 0:
            gc.freeze()
        _compiling[0] += 1
    try:
        yield
    finally:
        with _lock:
            _compiling[0] -= 1
            if _compiling[0] == 0:
                gc.unfreeze()
