"""Variance, standard deviation and cumulative sum with NumPy's names and defaults.

``var``/``std`` default to ``ddof=0`` as NumPy (``torch.var`` defaults to correction=1:
pass ``ddof=1`` for torch's default). ``cumsum`` is a Hillis-Steele scan: log2(n) steps of
shift-and-add (a slice padded back to length n), O(n log n) work in elementwise ops that
fuse, instead of an n x n triangular matrix product."""

from __future__ import annotations

import math

from .dispatch import bind
from .ir import dtypes as dt
from .ir.errors import OpAttributeError, ShapeError
from .ir.registry import normalize_axis
from .ops import ArrayLike, Axis, _axes, _float, astype, mean, multiply, reshape, sqrt, sum
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor


def _reduced_count(x: Tensor, axis: Axis, what: str) -> int:
    axes = [normalize_axis(a, x.ndim) for a in _axes(x, axis)]
    if len(set(axes)) != len(axes):
        raise ShapeError(f"{what}: axis {axis} repeats an axis of {x._type}")
    return math.prod(x.shape[a] for a in axes)


@reports_user_line
def var(x: ArrayLike, axis: Axis = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """NumPy var: mean squared deviation from the mean, divided by ``n - ddof``. When
    ``ddof >= n`` the divisor is 0, giving inf (NaN where the sum of squares is 0), as NumPy
    does (without its warning). Integer input is cast to float32 (the project's rule for
    float-only ops; NumPy gives float64)."""
    x = _float(x)
    if isinstance(ddof, bool) or not float(ddof).is_integer():
        raise OpAttributeError(f"var: ddof must be an integer, got {ddof!r}")
    n = _reduced_count(x, axis, "var")
    dev = x - mean(x, axis, keepdims=True)
    ss = sum(multiply(dev, dev), axis, keepdims=keepdims)
    divisor = n - int(ddof)
    if divisor <= 0:  # NumPy clamps the count at 0 and divides: x / 0
        return multiply(ss, math.inf)
    return ss / float(divisor)


@reports_user_line
def std(x: ArrayLike, axis: Axis = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """NumPy std: sqrt(var(x, axis, ddof, keepdims))."""
    return sqrt(var(x, axis, ddof=ddof, keepdims=keepdims))


def _shifted(x: Tensor, axis: int, k: int) -> Tensor:
    """x moved k places along axis (x[i - k], zeros in front): slice then pad."""
    n, nd = x.shape[axis], x.ndim
    head = bind("slice", x, starts=(0,), ends=(n - k,), axes=(axis,), steps=(1,))
    pads = [0] * (2 * nd)
    pads[axis] = k
    return bind("pad", head, pads=tuple(pads), mode="constant", value=0.0)


@reports_user_line
def cumsum(x: ArrayLike, axis: int | None = None) -> Tensor:
    """NumPy cumsum: running sum along ``axis``; ``axis=None`` sums over the flattened
    array. Dtypes follow NumPy on Linux: bool and int32 accumulate in int64, int64 and
    floats keep their dtype. Float results may differ from NumPy's sequential sum in the
    last bits (the scan adds in a tree order)."""
    x = as_tensor(x)
    d = x._type.dtype
    if d.is_bool or d == dt.int32:
        x = astype(x, dt.int64)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    if x.ndim == 0:
        raise ShapeError(f"cumsum: axis {axis} is out of range for a 0-d tensor")
    axis = normalize_axis(int(axis), x.ndim)
    k = 1
    while k < x.shape[axis]:  # after the step with shift k, x[i] sums 2k inputs
        x = x + _shifted(x, axis, k)
        k *= 2
    return x
