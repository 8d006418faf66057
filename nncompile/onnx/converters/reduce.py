"""ONNX reductions (ReduceX, ArgMax/ArgMin, CumSum) and Softmax/LogSoftmax/Hardmax.
Reduced axes come from an attribute or, from the opset where ONNX moved them, a constant
input; results keep the input's dtype as ONNX does."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .math import dtype_of
from .shape import invalid

# opset from which a ReduceX op takes its axes as input 1 (and reads noop_with_empty_axes)
_AXES_INPUT_SINCE = {"ReduceSum": 13}
_AXES_INPUT_DEFAULT = 18


def reduced_axes(ctx: NodeContext, ndim: int) -> tuple[int, ...] | None:
    """The axes to reduce, sorted and non-negative; None means "return the input"
    (empty axes with noop_with_empty_axes=1)."""
    if ctx.opset >= _AXES_INPUT_SINCE.get(ctx.op_type, _AXES_INPUT_DEFAULT):
        given = ctx.constant(1, "axes")
        axes = None if given is None else [int(a) for a in given.reshape(-1)]
        noop = ctx.attr("noop_with_empty_axes", 0)
        if not axes and noop:
            return None
    else:
        axes = ctx.attr("axes", None)
    if not axes:
        return tuple(range(ndim))
    if any(not -ndim <= a < ndim for a in axes):
        invalid(ctx, f"axes {axes} out of range for a rank-{ndim} input")
    norm = sorted({a % ndim for a in axes})
    if len(norm) != len(axes):
        invalid(ctx, f"axes {axes} repeat an axis")
    return tuple(norm)


def _product(x: Any, axis: int) -> Any:
    """Product along ``axis`` (kept, size 1) by halving: exact multiplies, log2(n) steps."""
    while x.shape[axis] > 1:
        n = x.shape[axis]
        half = n // 2
        if n % 2:
            head, tail = nc.split(x, [n - 1, 1], axis=axis)
            x = nc.multiply(*nc.split(head, [half, half], axis=axis))
            x = nc.concatenate([x, tail], axis=axis)
        else:
            x = nc.multiply(*nc.split(x, [half, half], axis=axis))
    return x


def _prod(x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
    for a in axes:
        x = _product(x, a)
    return x if keepdims else nc.squeeze(x, axes) if axes else x


def _sum_square(x: Any, axes: tuple, keepdims: bool) -> Any:
    return nc.sum(nc.multiply(x, x), axis=axes, keepdims=keepdims)


_REDUCERS: dict[str, Callable[[Any, tuple, bool], Any]] = {
    "ReduceSum": lambda x, a, k: nc.sum(x, axis=a, keepdims=k),
    "ReduceMean": lambda x, a, k: nc.mean(x, axis=a, keepdims=k),
    "ReduceMax": lambda x, a, k: nc.max(x, axis=a, keepdims=k),
    "ReduceMin": lambda x, a, k: nc.min(x, axis=a, keepdims=k),
    "ReduceProd": _prod,
    "ReduceL1": lambda x, a, k: nc.sum(nc.abs(x), axis=a, keepdims=k),
    "ReduceL2": lambda x, a, k: nc.sqrt(_sum_square(x, a, k)),
    "ReduceSumSquare": _sum_square,
    "ReduceLogSum": lambda x, a, k: nc.log(nc.sum(x, axis=a, keepdims=k)),
    "ReduceLogSumExp": lambda x, a, k: nc.logsumexp(x, axis=a, keepdims=k),
}
# what ONNX defines for a reduction over no elements
_EMPTY = {
    "ReduceSum": 0,
    "ReduceL1": 0,
    "ReduceL2": 0,
    "ReduceSumSquare": 0,
    "ReduceProd": 1,
    "ReduceMax": -np.inf,
    "ReduceMin": np.inf,
    "ReduceLogSum": -np.inf,
    "ReduceLogSumExp": -np.inf,
}
# the reductions whose integer results ONNX computes exactly in the integer dtype
_INT_OK = {"ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceSumSquare"}


@converter(*_REDUCERS, constant_inputs=(1,))
def reduce_op(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    d = dtype_of(x)
    keepdims = bool(ctx.attr("keepdims", 1))
    axes = reduced_axes(ctx, len(np.shape(x)))
    if axes is None:
        return [x]
    boolean = d.kind == "b" and ctx.op_type in ("ReduceMax", "ReduceMin")  # any / all
    if d.kind != "f" and not boolean and ctx.op_type not in _INT_OK:
        ctx.unsupported(f"dtype {d}: {ctx.op_type} is computed on floats and ints only")
    shape = np.shape(x)
    if any(shape[a] == 0 for a in axes):
        return [_empty_result(ctx, shape, axes, keepdims, d)]
    y = _REDUCERS[ctx.op_type](nc.astype(x, np.int32) if boolean else x, axes, keepdims)
    return [nc.astype(y, d)]


def _empty_result(ctx: NodeContext, shape: tuple, axes: tuple, keepdims: bool, d: Any) -> Any:
    if ctx.op_type not in _EMPTY:
        ctx.unsupported("a reduction over no elements (ONNX leaves it undefined)")
    value = _EMPTY[ctx.op_type]
    if d.kind == "b":
        value = value > 0
    elif d.kind != "f" and not np.isfinite(value):
        value = np.iinfo(d).min if value < 0 else np.iinfo(d).max
    out = [1 if i in axes else s for i, s in enumerate(shape) if keepdims or i not in axes]
    return np.full(out, value, dtype=d)


def flip(x: Any, axis: int) -> Any:
    n = np.shape(x)[axis]
    return nc.take(x, np.arange(n - 1, -1, -1, dtype=np.int64), axis=axis)


@converter("ArgMax", "ArgMin")
def arg_extreme(ctx: NodeContext) -> list[Any]:
    """First index of the max/min; select_last_index=1 searches the flipped axis."""
    x = ctx.input(0)
    ndim = len(np.shape(x))
    axis = ctx.attr("axis", 0)
    keepdims = bool(ctx.attr("keepdims", 1))
    last = ctx.attr("select_last_index", 0) if ctx.opset >= 12 else 0
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        invalid(ctx, f"axis {axis} out of range for a rank-{ndim} input")
    if dtype_of(x).kind == "b":
        ctx.unsupported("bool input")
    axis %= max(ndim, 1)
    fn = nc.argmax if ctx.op_type == "ArgMax" else nc.argmin
    if last:
        n = np.shape(x)[axis]
        i = fn(flip(x, axis), axis=axis, keepdims=keepdims)
        return [nc.subtract(np.asarray(n - 1, np.int64), nc.astype(i, np.int64))]
    return [nc.astype(fn(x, axis=axis, keepdims=keepdims), np.int64)]


@converter("CumSum", since=11, constant_inputs=(1,))
def cumsum(ctx: NodeContext) -> list[Any]:
    """exclusive shifts the input by one along the axis first (no subtraction, so
    float sums stay exact); reverse runs the sum from the end."""
    x = ctx.input(0)
    axis_value = ctx.constant(1, "axis")
    exclusive, reverse = ctx.attr("exclusive", 0), ctx.attr("reverse", 0)
    ndim = len(np.shape(x))
    if axis_value is None or axis_value.size != 1:
        invalid(ctx, "axis must be a scalar")
    axis = int(axis_value.reshape(-1)[0])
    if not -ndim <= axis < ndim:
        invalid(ctx, f"axis {axis} out of range for a rank-{ndim} input")
    if dtype_of(x).kind not in "fi":
        ctx.unsupported(f"dtype {dtype_of(x)}")
    axis %= ndim
    n = np.shape(x)[axis]
    if reverse:
        x = flip(x, axis)
    if exclusive:
        if n <= 1:
            return [nc.zeros_like(x)]
        head = nc.zeros_like(nc.take(x, np.zeros(1, np.int64), axis=axis))
        x = nc.concatenate([head, nc.take(x, np.arange(n - 1, dtype=np.int64), axis=axis)], axis)
    y = nc.astype(nc.cumsum(x, axis=axis), dtype_of(x))
    return [flip(y, axis) if reverse else y]


def _hardmax(x: Any, axis: int) -> Any:
    n = np.shape(x)[axis]
    return nc.one_hot(nc.argmax(x, axis=axis), n, dtype=dtype_of(x), axis=axis)


_SOFTMAX: dict[str, Callable[[Any, int], Any]] = {
    "Softmax": lambda x, a: nc.softmax(x, axis=a),
    "LogSoftmax": lambda x, a: nc.log_softmax(x, axis=a),
    "Hardmax": _hardmax,
}


@converter(*_SOFTMAX)
def softmax(ctx: NodeContext) -> list[Any]:
    """From opset 13 along ``axis`` (default -1); before, the input is coerced to 2-D
    (dims before ``axis`` by dims from it, default axis 1) and normalized per row."""
    x = ctx.input(0)
    if dtype_of(x).kind != "f":
        ctx.unsupported(f"dtype {dtype_of(x)}: {ctx.op_type} is computed on floats only")
    shape = tuple(np.shape(x))
    ndim = len(shape)
    axis = ctx.attr("axis", -1 if ctx.opset >= 13 else 1)
    if not -ndim <= axis < max(ndim, 1):
        invalid(ctx, f"axis {axis} out of range for a rank-{ndim} input")
    fn = _SOFTMAX[ctx.op_type]
    if ndim == 0:
        ctx.unsupported("a scalar input")
    axis %= ndim
    if ctx.opset >= 13:
        return [fn(x, axis)]
    rows = (math.prod(shape[:axis]), math.prod(shape[axis:]))
    return [nc.reshape(fn(nc.reshape(x, rows), 1), shape)]
