"""Tensor.__getitem__: ints, slices, None and Ellipsis (basic indexing) on the slice
primitive, plus one integer-array index on the gather primitive."""

from __future__ import annotations

from typing import Any

import numpy as np

from .dispatch import bind
from .ir.errors import ShapeError
from .ir.symbolic import Dim, SymbolicShapeError
from .ops import reshape, take
from .source_location import reports_user_line
from .tensor import Tensor


def _is_int(i: Any) -> bool:
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _is_array_index(i: Any) -> bool:
    return isinstance(i, (Tensor, np.ndarray, list))


def _is_bool_index(i: Any) -> bool:
    if isinstance(i, (bool, np.bool_)):
        return True
    if isinstance(i, Tensor):
        return i._type.dtype.is_bool
    return isinstance(i, (np.ndarray, list)) and np.asarray(i).dtype == bool


@reports_user_line
def getitem(x: Tensor, index: Any) -> Tensor:
    items = list(index) if isinstance(index, tuple) else [index]
    for i in items:
        if _is_bool_index(i):
            raise NotImplementedError(
                "boolean-mask indexing gives a data-dependent shape; use nc.where instead"
            )
    if sum(i is Ellipsis for i in items) > 1:
        raise ShapeError("an index can only have a single ellipsis")
    consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
    if consumed > x.ndim:
        raise ShapeError(f"too many indices ({consumed}) for {x._type}")
    if any(i is Ellipsis for i in items):  # `in` would compare arrays elementwise
        at = next(k for k, i in enumerate(items) if i is Ellipsis)
        items[at : at + 1] = [slice(None)] * (x.ndim - consumed)
    else:
        items += [slice(None)] * (x.ndim - consumed)

    arrays = [k for k, i in enumerate(items) if _is_array_index(i)]
    if len(arrays) > 1 or (arrays and any(_is_int(i) for i in items)):
        raise NotImplementedError("only one integer-array index, without int indices, is supported")

    starts, ends, axes, steps = [], [], [], []
    out_shape: list[int] = []
    axis = 0
    gather_axis = None
    for i in items:
        if i is None:
            out_shape.append(1)
            continue
        n = x.shape[axis]
        if type(n) is Dim and isinstance(i, slice) and i.step in (None, 1):
            if i.start in (None, 0) and i.stop is None:  # the whole symbolic batch axis
                out_shape.append(n)
                axis += 1
                continue
        if type(n) is Dim and not _is_array_index(i) and not (_is_int(i) and int(i) == 0):
            raise SymbolicShapeError(
                f"getitem: index {i!r} on axis {axis} of {x._type}, whose size is the "
                "symbolic batch size: only the whole axis (:) or index 0 can be taken there"
            )
        if _is_int(i) and type(n) is Dim:  # index 0 of the batch (checked above)
            starts.append(0), ends.append(1), axes.append(axis), steps.append(1)
        elif _is_int(i):
            k = int(i)
            if not -n <= k < n:
                raise ShapeError(
                    f"getitem: index {k} is out of bounds for axis {axis} with size {n} "
                    f"of {x._type}"
                )
            k %= n
            starts.append(k), ends.append(k + 1), axes.append(axis), steps.append(1)
        elif isinstance(i, slice):
            r = range(*i.indices(n))  # NumPy's rules, then stated in ONNX terms:
            if len(r) == 0:
                starts.append(0), ends.append(0), axes.append(axis), steps.append(1)
            elif len(r) != n or r.step != 1:
                starts.append(r.start), ends.append(r.stop if r.stop >= 0 else -(2**63))
                axes.append(axis), steps.append(r.step)
            out_shape.append(len(r))
        elif _is_array_index(i):
            gather_axis = len(out_shape)
            out_shape.append(n)
        else:
            raise ShapeError(f"unsupported index {i!r} of type {type(i).__name__}")
        axis += 1

    y = x
    if axes:
        y = bind(
            "slice", y, starts=tuple(starts), ends=tuple(ends), axes=tuple(axes), steps=tuple(steps)
        )
    y = reshape(y, tuple(out_shape))
    if gather_axis is not None:
        y = take(y, items[arrays[0]], axis=gather_axis)
    return y
