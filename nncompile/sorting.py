"""sort and topk as composites: each element's rank along the axis by pairwise comparison,
the permutation from the ranks, and the values gathered with take_along_axis (so the
gradient flows to x exactly as torch's does: to the places the values came from)."""

from __future__ import annotations

import numpy as np

from .ir.errors import ShapeError
from .ops import (
    ArrayLike,
    astype,
    equal,
    expand_dims,
    greater,
    less,
    logical_and,
    logical_not,
    logical_or,
    not_equal,
    reshape,
    stop_gradient,
    sum,
    take_along_axis,
    where,
)
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor

# The pairwise comparison holds n * n elements per sorted row; beyond this it is too big.
MAX_SORT_LENGTH = 4096


def _before(a: Tensor, b: Tensor, descending: bool) -> Tensor:
    """a strictly goes before b, NaN counting as the largest value (torch's order)."""
    a_nan, b_nan = not_equal(a, a), not_equal(b, b)
    if descending:
        return logical_or(greater(a, b), logical_and(a_nan, logical_not(b_nan)))
    return logical_or(less(a, b), logical_and(b_nan, logical_not(a_nan)))


def _tied(a: Tensor, b: Tensor) -> Tensor:
    return logical_or(equal(a, b), logical_and(not_equal(a, a), not_equal(b, b)))


def _along(values: np.ndarray, axis: int, ndim: int) -> Tensor:
    """A constant laid out on ``axis`` of a rank-``ndim`` tensor (size 1 elsewhere)."""
    shape = [1] * ndim
    shape[axis : axis + values.ndim] = values.shape
    return as_tensor(values.reshape(shape))


def _ranked_indices(x: Tensor, axis: int, k: int, descending: bool) -> Tensor:
    """Indices (int64) of the first ``k`` elements of a stable sort of x along ``axis``.

    rank[i] = #{j : x[j] before x[i]} + #{j < i : x[j] tied with x[i]}, a permutation of
    0..n-1; then index[r] = the i whose rank is r. Costs O(n^2) per row, in time and memory.
    """
    n, nd = x.shape[axis], x.ndim
    if x._type.dtype.is_bool:  # comparisons want numbers; False < True as in torch
        key = astype(x, "int32")
    else:
        key = stop_gradient(x) if x._type.dtype.is_float else x
    xj, xi = expand_dims(key, axis + 1), expand_dims(key, axis)  # pairs on axes (j, i)
    earlier = _along(np.triu(np.ones((n, n), dtype=bool), 1), axis, nd + 1)  # j < i
    goes_first = logical_or(_before(xj, xi, descending), logical_and(_tied(xj, xi), earlier))
    # keepdims leaves rank[i] on axis + 1, where hit reads it, with no reshape between
    # (reducing it away and broadcasting back across rows once miscompiled on LLVM:
    # test_fused_reduction_broadcast_across_rows).
    rank = sum(astype(goes_first, "int64"), axis, keepdims=True)
    # hit[r, i]: element i has rank r, for r < k; its index sum over i picks that i
    hit = equal(rank, _along(np.arange(k).reshape(k, 1), axis, nd + 1))
    positions = _along(np.arange(n, dtype=np.int64).reshape(1, n), axis, nd + 1)
    return sum(where(hit, positions, 0), axis + 1)


def _normalized(x: Tensor, axis: int, what: str) -> int:
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"{what}: axis {axis} is out of range for {x._type}")
    axis %= x.ndim
    if x.shape[axis] > MAX_SORT_LENGTH:
        raise NotImplementedError(
            f"{what}: sorting along an axis of {x.shape[axis]} elements; the pairwise "
            f"composite is limited to {MAX_SORT_LENGTH} (it is O(n^2) along the axis)"
        )
    return axis


def _sorted(
    x: ArrayLike, axis: int, k: int | None, descending: bool, what: str
) -> tuple[Tensor, Tensor]:
    x = as_tensor(x)
    if x.ndim == 0:  # torch treats a scalar as one element along axis 0 or -1
        if axis not in (0, -1) or k not in (None, 1):
            raise ShapeError(f"{what}: axis {axis}, k {k} do not fit a scalar {x._type}")
        values, indices = _sorted(reshape(x, (1,)), 0, k, descending, what)
        return reshape(values, ()), reshape(indices, ())
    axis = _normalized(x, axis, what)
    n = x.shape[axis]
    if k is None:
        k = n
    if not 0 <= k <= n:
        raise ShapeError(f"{what}: k={k} is out of range for {n} elements along axis {axis}")
    indices = _ranked_indices(x, axis, k, descending)
    return take_along_axis(x, indices, axis), indices


@reports_user_line
def sort(x: ArrayLike, axis: int = -1, descending: bool = False) -> tuple[Tensor, Tensor]:
    """torch.sort(x, dim=axis, descending=descending, stable=True): (values, int64 indices).

    Ties keep their index order; NaN sorts as the largest value (last ascending, first
    descending). Written on comparisons and sums, so it traces, differentiates (the
    gradient reaches x through the gathered values) and compiles on every backend, at
    O(n^2) time and memory per row in the length n of the axis; axes longer than
    MAX_SORT_LENGTH (4096) raise NotImplementedError.
    """
    return _sorted(x, axis, None, descending, "sort")


@reports_user_line
def topk(
    x: ArrayLike, k: int, axis: int = -1, largest: bool = True, sorted: bool = True
) -> tuple[Tensor, Tensor]:
    """torch.topk: the ``k`` largest (or smallest) elements along ``axis`` and their int64
    indices. Always returned in sorted order (largest first, or smallest first): with
    ``sorted=False`` torch allows any order, so sorted is one of them. Ties go to the lower
    index (torch leaves their order unspecified); NaN counts as the largest. Same
    O(n^2) cost and MAX_SORT_LENGTH limit as ``sort``."""
    del sorted  # the order is always sorted; an unsorted result is allowed any order
    return _sorted(x, axis, int(k), largest, "topk")


__all__ = ["MAX_SORT_LENGTH", "sort", "topk"]
