"""nc.pad's 'wrap' and 'symmetric' modes, and 'reflect' pads wider than the axis, as slices
and a concat (no new primitive, so they trace, differentiate and compile as-is).

Which input element each padded cell copies is taken from NumPy itself:
``np.pad(np.arange(n), (before, after), mode)`` is the index map along an axis, so every
width NumPy accepts (repeated reflection or wrapping included) gives NumPy's values. The map
is cut into runs of consecutive indices (step +1, -1 or 0), each one slice (step 0: a
one-element slice broadcast along the axis)."""

from __future__ import annotations

import numpy as np

from .dispatch import bind
from .ir.errors import ShapeError
from .tensor import Tensor

# Modes built here from slices; 'constant', 'edge' and narrow 'reflect' use the pad primitive.
SLICED_MODES = ("reflect", "symmetric", "wrap")


def _runs(idx: np.ndarray) -> list[tuple[int, int, int]]:
    """(first index, step, length) runs covering idx, step in (-1, 0, 1)."""
    runs, i = [], 0
    while i < len(idx):
        step = int(idx[i + 1] - idx[i]) if i + 1 < len(idx) else 1
        if step not in (-1, 0, 1):
            step = 1
        j = i + 1
        while j < len(idx) and idx[j] - idx[j - 1] == step:
            j += 1
        runs.append((int(idx[i]), step, j - i))
        i = j
    return runs


def _run(x: Tensor, axis: int, first: int, step: int, length: int) -> Tensor:
    if step == 1:
        return bind("slice", x, starts=(first,), ends=(first + length,), axes=(axis,), steps=(1,))
    if step == -1:
        last = first - length  # exclusive; -1 would count from the end, so use -2**63
        end = last if last >= 0 else -(2**63)
        return bind("slice", x, starts=(first,), ends=(end,), axes=(axis,), steps=(-1,))
    one = bind("slice", x, starts=(first,), ends=(first + 1,), axes=(axis,), steps=(1,))
    shape = x.shape[:axis] + (length,) + x.shape[axis + 1 :]
    return bind("expand", one, shape=shape)


def _pad_axis(x: Tensor, axis: int, before: int, after: int, mode: str) -> Tensor:
    n = x.shape[axis]
    if n == 0:
        raise ShapeError(f"pad: mode {mode!r} cannot pad the empty axis {axis} of {x._type}")
    idx = np.pad(np.arange(n), (before, after), mode=mode)
    pieces = [_run(x, axis, *r) for r in _runs(idx[:before])]
    pieces.append(x)
    pieces += [_run(x, axis, *r) for r in _runs(idx[before + n :])]
    return bind("concat", *pieces, axis=axis)


def pad_by_slices(x: Tensor, widths: list[tuple[int, int]], mode: str) -> Tensor:
    """x padded as ``np.pad(x, widths, mode)`` for a mode in SLICED_MODES, axis by axis."""
    if any(b < 0 or e < 0 for b, e in widths):
        raise ShapeError(f"pad: pad widths must be non-negative, got {widths} for {x._type}")
    for axis, (before, after) in enumerate(widths):
        if before or after:
            x = _pad_axis(x, axis, before, after, mode)
    return x
