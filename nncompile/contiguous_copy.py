"""A C-contiguous, aligned copy of a NumPy view, at about a plain copy's speed for
transposed layouts.

Compiled code reads its inputs as contiguous arrays, so a view (``x.T``, a Fortran-ordered
array, a permutation of axes, a slice with a step) is copied first. ``np.ascontiguousarray``
copies in the result's order: for a view whose last axis is not contiguous in memory, each
row of the result then reads one element per cache line of the source, and every line
again for the next row once it has left the cache. A 4096 x 256 float32 array transposed
took 7.0 ms that way here, against 0.29 ms for a plain copy of the same bytes. Copied in
strips of STRIP columns of the result, each strip's source lines stay in cache while all
its rows are written: 0.64 ms.
"""

from __future__ import annotations

import numpy as np

STRIP = 64  # result columns per strip: STRIP source lines of any length fit in L2
MIN_ELEMENTS = 1 << 14  # below this NumPy's own copy is as fast (the loop's cost)


def c_contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` if it is C-contiguous and aligned, else a C-contiguous aligned copy."""
    if a.flags.c_contiguous:
        # NumPy's ascontiguousarray would return a misaligned array as it is
        return a if a.flags.aligned else a.copy()
    strided_rows = a.ndim >= 2 and abs(a.strides[-1]) != a.itemsize
    if not strided_rows or a.size < MIN_ELEMENTS or a.shape[-1] <= STRIP:
        return np.ascontiguousarray(a)
    out = np.empty(a.shape, a.dtype)
    for j in range(0, a.shape[-1], STRIP):
        out[..., j : j + STRIP] = a[..., j : j + STRIP]
    return out
