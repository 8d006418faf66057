"""Converters for indexing ops: Slice, Gather, GatherElements, GatherND, OneHot, and the
Scatter family without reduction (written with compares, a max, a gather and a select,
as nncompile has no scatter primitive; reductions are refused).

ONNX allows negative indices (counted from the end of the axis): known index arrays are
checked and wrapped while converting, computed ones are wrapped with a ``where``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .shape import _axis, _ints, invalid


def _wrap(ctx: NodeContext, idx: Any, n: int | np.ndarray, what: str) -> Any:
    """Indices into an axis of size ``n`` (or per-position sizes) with negatives wrapped."""
    if isinstance(idx, np.ndarray):
        if idx.size and (np.any(idx < -n) or np.any(idx >= n)):
            invalid(ctx, f"{what} index out of range for size {n}")
        return np.where(idx < 0, idx + n, idx).astype(idx.dtype)
    return nc.where(
        nc.less(idx, np.zeros((), idx.dtype)), nc.add(idx, np.asarray(n, idx.dtype)), idx
    )


@converter("Slice", constant_inputs=(1, 2, 3, 4))
def slice_(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    shape = np.shape(x)
    if ctx.opset < 10:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes, steps = ctx.attr("axes", None), None
    else:
        starts, ends = _ints(ctx.constant(1, "starts")), _ints(ctx.constant(2, "ends"))
        axes, steps = ctx.constant(3, "axes"), ctx.constant(4, "steps")
        axes = None if axes is None else _ints(axes)
        steps = None if steps is None else _ints(steps)
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        invalid(ctx, "starts, ends, axes and steps differ in length")
    index = [slice(None)] * len(shape)
    for s, e, a, step in zip(starts, ends, axes, steps, strict=True):
        a = _axis(ctx, a, len(shape), "axes entry")
        if step == 0:
            invalid(ctx, f"step 0 on axis {a}")
        index[a] = _onnx_slice(int(s), int(e), int(step), shape[a])
    return [nc.as_tensor(x)[tuple(index)]]


def _onnx_slice(start: int, end: int, step: int, dim: int) -> slice:
    """ONNX's clamping rules as a Python slice of the same elements."""
    start += dim if start < 0 else 0
    end += dim if end < 0 else 0
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


@converter("Gather")
def gather(ctx: NodeContext) -> list[Any]:
    x, idx = ctx.input(0), ctx.input(1)
    shape = np.shape(x)
    axis = _axis(ctx, ctx.attr("axis", 0), len(shape))
    return [nc.take(x, _wrap(ctx, idx, shape[axis], "Gather"), axis=axis)]


@converter("GatherElements")
def gather_elements(ctx: NodeContext) -> list[Any]:
    x, idx = ctx.input(0), ctx.input(1)
    shape = np.shape(x)
    axis = _axis(ctx, ctx.attr("axis", 0), len(shape))
    return [nc.take_along_axis(x, _wrap(ctx, idx, shape[axis], "GatherElements"), axis)]


@converter("GatherND")
def gather_nd(ctx: NodeContext) -> list[Any]:
    """The k indexed dims flattened into one, so each index tuple is one linear index
    (batch dims get an offset per batch element) and the gather is a take on axis 0."""
    x, idx = ctx.input(0), ctx.input(1)
    b = ctx.attr("batch_dims", 0) if ctx.opset >= 12 else 0
    xs, ishape = tuple(np.shape(x)), tuple(np.shape(idx))
    k = ishape[-1] if ishape else 0
    if not ishape or b + k > len(xs) or xs[:b] != ishape[:b]:
        invalid(ctx, f"indices of shape {ishape} do not index data of shape {xs}")
    dims = xs[b : b + k]
    strides = [math.prod(dims[j + 1 :]) for j in range(k)]
    lin = None
    for j in range(k):
        part = _wrap(ctx, nc.as_tensor(idx)[..., j], dims[j], "GatherND")
        part = nc.multiply(part, np.asarray(strides[j], np.dtype(idx.dtype)))
        lin = part if lin is None else nc.add(lin, part)
    batch, inner = math.prod(xs[:b]), math.prod(dims)
    if lin is None:  # k == 0: whole slices, one per index position
        lin = np.zeros(ishape[:-1], np.int64)
    lin = nc.reshape(lin, (batch, -1))
    offsets = (np.arange(batch, dtype=np.int64) * inner).reshape(batch, 1)
    lin = nc.add(nc.astype(lin, np.int64), offsets)
    flat = nc.reshape(x, (batch * inner,) + xs[b + k :])
    y = nc.take(flat, nc.reshape(lin, (-1,)), axis=0)
    return [nc.reshape(y, ishape[:-1] + xs[b + k :])]


@converter("OneHot", constant_inputs=(1,))
def one_hot(ctx: NodeContext) -> list[Any]:
    idx, values = ctx.input(0), ctx.input(2)
    depth = ctx.constant(1, "depth").reshape(-1)[0]
    if depth != int(depth) or depth < 1:
        invalid(ctx, f"depth {depth} must be a positive integer")
    depth = int(depth)
    rank = len(np.shape(idx))
    axis = _axis(ctx, ctx.attr("axis", -1), rank + 1)
    dtype = np.dtype(idx.dtype)
    # as ONNX's reference: wrap [-depth, 0), compare with 0..depth-1 (float indices that
    # are not whole numbers match nothing)
    idx = nc.where(nc.less(idx, np.zeros((), dtype)), nc.add(idx, np.asarray(depth, dtype)), idx)
    idx = nc.expand_dims(idx, axis)
    targets = np.arange(depth, dtype=dtype).reshape((depth,) + (1,) * (rank - axis))
    hot = nc.equal(idx, targets)
    if np.shape(values) != (2,):
        invalid(ctx, f"values must be [off, on], got shape {np.shape(values)}")
    off, on = nc.as_tensor(values)[0], nc.as_tensor(values)[1]
    return [nc.where(hot, on, off)]


def _reduction_none(ctx: NodeContext) -> None:
    reduction = ctx.attr("reduction", "none")
    if reduction != "none":
        ctx.unsupported(
            f"reduction {reduction!r}: combining updates in ONNX's sequential order needs a "
            "scatter primitive nncompile lacks (only reduction 'none' is converted)"
        )


def _last_writer(hit: Any, axis: int, count: int) -> tuple[Any, Any]:
    """For a bool ``hit`` whose ``axis`` runs over ``count`` updates: (which position is
    written, the index of the last update writing it), so duplicates resolve as ONNX's
    reference does (the later update wins)."""
    order = np.arange(1, count + 1, dtype=np.int64).reshape(
        (count,) + (1,) * (len(np.shape(hit)) - axis - 1)
    )
    best = nc.max(nc.where(hit, order, np.zeros((), np.int64)), axis=axis)
    written = nc.greater(best, np.zeros((), np.int64))
    return written, nc.maximum(nc.subtract(best, np.ones((), np.int64)), np.zeros((), np.int64))


@converter("Scatter", "ScatterElements")
def scatter_elements(ctx: NodeContext) -> list[Any]:
    """Every data position along ``axis`` compared with every update's index: the last
    update that hits it (if any) gives its value, by a gather and a select."""
    data, idx, upd = ctx.input(0), ctx.input(1), ctx.input(2)
    _reduction_none(ctx)
    shape, ishape = tuple(np.shape(data)), tuple(np.shape(idx))
    axis = _axis(ctx, ctx.attr("axis", 0), len(shape))
    if len(ishape) != len(shape) or tuple(np.shape(upd)) != ishape:
        invalid(ctx, f"indices {ishape} and updates {np.shape(upd)} must match in shape")
    if any(i > d for k, (i, d) in enumerate(zip(ishape, shape, strict=True)) if k != axis):
        invalid(ctx, f"indices {ishape} exceed data {shape} off the scatter axis")
    n, count = shape[axis], ishape[axis]
    if count == 0:
        return [nc.as_tensor(data)]
    idx = _wrap(ctx, idx, n, ctx.op_type)
    # pad the other axes to data's extent with an index nothing matches
    widths = [
        (0, 0 if k == axis else d - i) for k, (i, d) in enumerate(zip(ishape, shape, strict=True))
    ]
    if any(e for _, e in widths):
        idx = nc.pad(idx, widths, constant_values=-1)
        upd = nc.pad(upd, widths)
    targets = np.arange(n, dtype=np.int64).reshape((n,) + (1,) * (len(shape) - axis - 1))
    hit = nc.equal(nc.expand_dims(nc.astype(idx, np.int64), axis + 1), targets)
    written, source = _last_writer(hit, axis, count)
    return [nc.where(written, nc.take_along_axis(upd, source, axis), data)]


@converter("ScatterND")
def scatter_nd(ctx: NodeContext) -> list[Any]:
    """Index tuples made linear over the first k data dims; each data row takes the last
    update row whose index is its own."""
    data, idx, upd = ctx.input(0), ctx.input(1), ctx.input(2)
    _reduction_none(ctx)
    shape, ishape = tuple(np.shape(data)), tuple(np.shape(idx))
    k = ishape[-1] if ishape else 0
    if not ishape or k > len(shape) or tuple(np.shape(upd)) != ishape[:-1] + shape[k:]:
        ctx.unsupported(
            f"indices {ishape} and updates {np.shape(upd)} do not fit data of shape {shape}"
        )
    count, rows, rest = math.prod(ishape[:-1]), math.prod(shape[:k]), shape[k:]
    if count == 0:
        return [nc.as_tensor(data)]
    lin = np.zeros(ishape[:-1], np.int64)
    for j in range(k):
        part = nc.astype(_wrap(ctx, nc.as_tensor(idx)[..., j], shape[j], "ScatterND"), np.int64)
        lin = nc.add(lin, nc.multiply(part, np.asarray(math.prod(shape[j + 1 : k]), np.int64)))
    hit = nc.equal(nc.reshape(lin, (count, 1)), np.arange(rows, dtype=np.int64))
    written, source = _last_writer(hit, 0, count)
    values = nc.take(nc.reshape(upd, (count,) + rest), source, axis=0)
    written = nc.reshape(written, (rows,) + (1,) * len(rest))
    out = nc.where(written, values, nc.reshape(data, (rows,) + rest))
    return [nc.reshape(out, shape)]
