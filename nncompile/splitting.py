"""PyTorch's ``split`` and ``chunk``: a tensor cut along one axis into a tuple of slices.

These follow torch, not NumPy: ``np.split(x, 3)`` means 3 equal sections, while
``split(x, 3)`` means sections of size 3 (so numpy_interop does not map np.split here)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .dispatch import bind
from .ir.errors import OpAttributeError, ShapeError
from .ir.registry import normalize_axis
from .ops import ArrayLike
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _axis(x: Tensor, axis: int, what: str) -> int:
    if x.ndim == 0:
        raise ShapeError(f"{what}: cannot split a 0-d tensor")
    if not _is_int(axis):
        raise OpAttributeError(f"{what}: axis must be an int, got {axis!r}")
    return normalize_axis(int(axis), x.ndim)


def _pieces(x: Tensor, axis: int, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    out, start = [], 0
    for size in sizes:
        stop = start + size
        out.append(bind("slice", x, starts=(start,), ends=(stop,), axes=(axis,), steps=(1,)))
        start = stop
    return tuple(out)


@reports_user_line
def split(
    x: ArrayLike, split_size_or_sections: int | Sequence[int], axis: int = 0
) -> tuple[Tensor, ...]:
    """torch.split: an int cuts ``axis`` into pieces of that size (the last may be smaller;
    an empty axis gives one empty piece); a list gives each piece's size and must sum to
    the axis length (zero sizes give empty pieces)."""
    x = as_tensor(x)
    axis = _axis(x, axis, "split")
    n = x.shape[axis]
    s = split_size_or_sections
    if _is_int(s):
        s = int(s)
        if s < 0 or (s == 0 and n != 0):
            raise OpAttributeError(
                f"split: split size must be positive (0 only for an empty axis), got {s} "
                f"for axis {axis} of {x._type}"
            )
        if n == 0:
            return _pieces(x, axis, [0])
        return _pieces(x, axis, [min(s, n - i) for i in range(0, n, s)])
    if isinstance(s, (str, bytes)) or not isinstance(s, Sequence):
        raise OpAttributeError(f"split: expected an int or a list of ints, got {s!r}")
    if not all(_is_int(v) and v >= 0 for v in s):
        raise OpAttributeError(f"split: section sizes must be non-negative ints, got {list(s)}")
    if sum(s) != n:
        raise ShapeError(
            f"split: section sizes {list(s)} sum to {sum(s)}, "
            f"not to the length {n} of axis {axis} of {x._type}"
        )
    return _pieces(x, axis, [int(v) for v in s])


@reports_user_line
def chunk(x: ArrayLike, chunks: int, axis: int = 0) -> tuple[Tensor, ...]:
    """torch.chunk: pieces of size ceil(n / chunks) along ``axis``, the last smaller, so
    there may be fewer than ``chunks`` pieces (5 into 4 gives sizes 2, 2, 1). An empty axis
    gives ``chunks`` empty pieces."""
    x = as_tensor(x)
    if not _is_int(chunks) or chunks <= 0:
        raise OpAttributeError(f"chunk: chunks must be a positive int, got {chunks!r}")
    axis = _axis(x, axis, "chunk")
    n = x.shape[axis]
    if n == 0:
        return _pieces(x, axis, [0] * int(chunks))
    return split(x, -(-n // int(chunks)), axis)
