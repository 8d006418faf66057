"""Tensor rearrangements whose sizes are known when converting: CumProd, CenterCropPad,
Compress (its condition must be known: it decides the output's shape)."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .math import dtype_of
from .shape import invalid


def _reverse(x: Any, axis: int) -> Any:
    return nc.take(x, np.arange(x.shape[axis] - 1, -1, -1), axis=axis)


def _shift_in_ones(x: Any, axis: int, by: int) -> Any:
    """x moved ``by`` places along axis, ones filling the start, its end dropped."""
    n = x.shape[axis]
    ones_shape = tuple(x.shape[:axis]) + (min(by, n),) + tuple(x.shape[axis + 1 :])
    ones = np.ones(ones_shape, dtype_of(x))
    if by >= n:
        return ones
    return nc.concatenate([ones, nc.take(x, np.arange(n - by), axis=axis)], axis=axis)


@converter("CumProd", since=26, constant_inputs=(1,))
def cumprod(ctx: NodeContext) -> list[Any]:
    """Running product along axis as a log-depth scan (each step multiplies by the
    product shifted 1, 2, 4, ... places): log2(n) nc ops, exact for integers.
    exclusive shifts the input by one first; reverse runs from the end."""
    x = ctx.input(0)
    axis_value = ctx.constant(1, "axis")
    exclusive, reverse = ctx.attr("exclusive", 0), ctx.attr("reverse", 0)
    rank = len(x.shape)
    if axis_value is None or axis_value.size != 1:
        invalid(ctx, "axis must be a scalar")
    axis = int(axis_value.reshape(-1)[0])
    if not -rank <= axis < rank:
        invalid(ctx, f"axis {axis} out of range for a rank-{rank} input")
    if dtype_of(x) == np.bool_:
        ctx.unsupported("bool input")
    axis %= rank
    n = x.shape[axis]
    y = nc.as_tensor(x)
    if n == 0:
        return [y]
    if reverse:
        y = _reverse(y, axis)
    if exclusive:
        y = _shift_in_ones(y, axis, 1)
    step = 1
    while step < n:
        y = nc.multiply(y, _shift_in_ones(y, axis, step))
        step *= 2
    if reverse:
        y = _reverse(y, axis)
    return [y]


@converter("CenterCropPad", since=18, constant_inputs=(1,))
def center_crop_pad(ctx: NodeContext) -> list[Any]:
    """Each listed axis cropped or zero-padded to its target size, centred (an odd
    difference puts the extra element at the end)."""
    x = ctx.input(0)
    shape = ctx.constant(1, "shape")
    rank = len(x.shape)
    axes = ctx.attr("axes", None)
    axes = list(range(rank)) if axes is None else [int(a) for a in axes]
    if any(not -rank <= a < rank for a in axes):
        invalid(ctx, f"axes {axes} out of range for rank {rank}")
    axes = [a % rank for a in axes]
    sizes = [int(s) for s in np.asarray(shape).reshape(-1)]
    if len(sizes) != len(axes) or any(s < 0 for s in sizes):
        invalid(ctx, f"shape {sizes} for axes {axes}")
    y = nc.as_tensor(x)
    widths = [(0, 0)] * rank
    for axis, size in zip(axes, sizes, strict=True):
        dim = x.shape[axis]
        if size < dim:
            start = (dim - size) // 2
            y = nc.take(y, np.arange(start, start + size), axis=axis)
        elif size > dim:
            before = (size - dim) // 2
            widths[axis] = (before, size - dim - before)
    if any(w != (0, 0) for w in widths):
        if dtype_of(x) == np.bool_:
            y = nc.astype(nc.pad(nc.astype(y, np.int32), widths), np.bool_)
        else:
            y = nc.pad(y, widths)
    return [y]


@converter("Compress", since=9, constant_inputs=(1,))
def compress(ctx: NodeContext) -> list[Any]:
    """The slices along axis (of the flattened input when axis is absent) whose
    condition is true; a condition shorter than the axis drops the rest."""
    x = ctx.input(0)
    condition = ctx.constant(1, "condition")
    axis = ctx.attr("axis", None)
    rank = len(x.shape)
    cond = np.asarray(condition).reshape(-1).astype(bool)
    if axis is None:
        x, axis = nc.reshape(x, (-1,)), 0
    elif not -rank <= axis < rank:
        invalid(ctx, f"axis {axis} out of range for rank {rank}")
    axis %= len(x.shape)
    if cond.size > x.shape[axis]:
        invalid(ctx, f"condition of length {cond.size} for an axis of length {x.shape[axis]}")
    return [nc.take(x, np.nonzero(cond)[0].astype(np.int64), axis=axis)]


@converter("ReverseSequence", since=10)
def reverse_sequence(ctx: NodeContext) -> list[Any]:
    """Along time_axis, the first sequence_lens[b] elements of each batch entry b are
    reversed and the rest kept: a gather with index lens[b] - 1 - t for t < lens[b]."""
    x, lens = ctx.input(0), ctx.input(1)
    batch_axis, time_axis = ctx.attr("batch_axis", 1), ctx.attr("time_axis", 0)
    rank = len(x.shape)
    if rank < 2 or {batch_axis, time_axis} != {0, 1}:
        invalid(ctx, f"batch_axis={batch_axis}, time_axis={time_axis} for rank {rank}")
    batch, steps = x.shape[batch_axis], x.shape[time_axis]
    if tuple(lens.shape) != (batch,):
        invalid(ctx, f"sequence_lens of shape {tuple(lens.shape)} for a batch of {batch}")
    t = np.arange(steps, dtype=np.int64).reshape(1, steps)  # (1, time)
    n = nc.reshape(nc.astype(lens, np.int64), (batch, 1))  # (batch, 1)
    index = nc.where(nc.less(t, n), nc.subtract(nc.subtract(n, np.int64(1)), t), t)
    if time_axis == 0:
        index = nc.transpose(index, (1, 0))
    index = nc.reshape(index, tuple(index.shape) + (1,) * (rank - 2))
    return [nc.take_along_axis(x, nc.broadcast_to(index, tuple(x.shape)), axis=time_axis)]


def _window_samples(ctx: NodeContext) -> tuple[np.ndarray, int, np.dtype]:
    """n = 0..size-1 in the output dtype and the period (size, or size - 1 for a
    symmetric window), as ONNX's reference computes them."""
    size_value = ctx.constant(0, "size")
    dtype_code = ctx.attr("output_datatype", 1)
    periodic = ctx.attr("periodic", 1)
    dtype = {1: np.float32, 11: np.float64}.get(dtype_code)
    if dtype is None:
        ctx.unsupported(f"attribute output_datatype={dtype_code} (only float32 and float64)")
    if size_value is None or size_value.size != 1:
        invalid(ctx, "size must be a scalar")
    size = int(size_value.reshape(-1)[0])
    if size < 0:
        invalid(ctx, f"size {size} is negative")
    return np.arange(size, dtype=dtype), size if periodic == 1 else size - 1, np.dtype(dtype)


# the window's values depend only on its (known) size: computed here with NumPy in the
# reference's exact expressions, so they match it bit for bit
@converter("HannWindow", "HammingWindow", "BlackmanWindow", since=17, constant_inputs=(0,))
def window(ctx: NodeContext) -> list[Any]:
    n, period, dtype = _window_samples(ctx)
    with np.errstate(divide="ignore", invalid="ignore"):
        if ctx.op_type == "HannWindow":
            w = np.sin(n * np.pi / period) ** 2
        elif ctx.op_type == "HammingWindow":
            alpha = 25.0 / 46.0
            w = alpha - np.cos(n * np.pi * 2 / period) * (1 - alpha)
        else:
            k = np.arange(len(n))
            w = np.cos((k * (np.pi * 2)) / period) * (-0.5)
            w += np.cos((k * (np.pi * 4)) / period) * 0.08
            w += 0.42
    return [np.asarray(w).astype(dtype)]


@converter("TensorScatter", since=24)
def tensor_scatter(ctx: NodeContext) -> list[Any]:
    """A KV-cache write: along axis, batch entry b of the cache takes the update's steps
    at positions write_indices[b] + s (modulo the cache length in circular mode), the
    rest unchanged. Written as a gather: cache position p reads update step
    p - write_indices[b] where that step exists."""
    cache, update = ctx.input(0), ctx.input(1)
    starts = ctx.optional_input(2)
    mode, axis = ctx.attr("mode", "linear"), ctx.attr("axis", -2)
    rank = len(cache.shape)
    if mode not in ("linear", "circular"):
        ctx.unsupported(f"attribute mode={mode!r} (linear, circular)")
    if not -rank <= axis < rank or axis % rank == 0:
        invalid(ctx, f"axis {axis} for rank {rank} (axis 0 is the batch)")
    axis %= rank
    longest, steps = cache.shape[axis], update.shape[axis]
    other = [i for i in range(rank) if i != axis]
    if len(update.shape) != rank or any(cache.shape[i] != update.shape[i] for i in other):
        invalid(ctx, f"update {tuple(update.shape)} does not fit cache {tuple(cache.shape)}")
    if steps > longest:
        invalid(ctx, f"{steps} update steps for a cache of {longest}")
    if dtype_of(cache) != dtype_of(update):
        invalid(ctx, f"cache {cache.dtype} and update {update.dtype} differ")
    batch = cache.shape[0]
    if starts is None:
        starts = np.zeros((batch,), np.int64)
    shape = [1] * rank
    shape[0] = batch
    start = nc.reshape(nc.astype(starts, np.int64), tuple(shape))
    pos_shape = [1] * rank
    pos_shape[axis] = longest
    offset = nc.subtract(np.arange(longest, dtype=np.int64).reshape(pos_shape), start)
    if mode == "circular":
        offset = nc.where(nc.less(offset, np.int64(0)), nc.add(offset, np.int64(longest)), offset)
    hit = nc.logical_and(nc.greater_equal(offset, np.int64(0)), nc.less(offset, np.int64(steps)))
    safe = nc.where(hit, offset, np.int64(0))
    full = tuple(update.shape[:axis]) + (longest,) + tuple(update.shape[axis + 1 :])
    read = nc.take_along_axis(update, nc.broadcast_to(safe, full), axis=axis)
    return [nc.where(nc.broadcast_to(hit, full), read, cache)]


# Col2Im's 0/1 scatter matrix is (blocks * kernel) x pixels; beyond this many entries it
# would be a poor way to add up overlapping blocks
_COL2IM_MATRIX_LIMIT = 1 << 24


@converter("Col2Im", since=18, constant_inputs=(1, 2))
def col2im(ctx: NodeContext) -> list[Any]:
    """(N, C * prod(block), L) column blocks summed back into (N, C, *image): block
    element k of column l lands on pixel (block position of l) * strides - pads + k *
    dilations when that is inside the image. The landing pattern is known, so the sum
    is one matmul with a constant 0/1 matrix."""
    x = ctx.input(0)
    image = [int(v) for v in np.asarray(ctx.constant(1, "image_shape")).reshape(-1)]
    block = [int(v) for v in np.asarray(ctx.constant(2, "block_shape")).reshape(-1)]
    d = len(image)
    dilations = ctx.attr("dilations", [1] * d)
    strides = ctx.attr("strides", [1] * d)
    pads = ctx.attr("pads", [0] * (2 * d))
    if len(block) != d or len(dilations) != d or len(strides) != d or len(pads) != 2 * d:
        invalid(ctx, f"image_shape {image}, block_shape {block}, attributes of other ranks")
    if len(x.shape) != 3:
        invalid(ctx, f"input of shape {tuple(x.shape)} (needs (N, C * prod(block), L))")
    k_total = int(np.prod(block))
    n, ck, length = x.shape
    if ck % k_total:
        invalid(ctx, f"input's {ck} rows do not divide into blocks of {k_total}")
    counts = [
        (image[i] + pads[i] + pads[i + d] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1
        for i in range(d)
    ]
    if int(np.prod(counts)) != length or min(counts) < 1:
        invalid(ctx, f"{length} columns for {counts} block positions")
    pixels = int(np.prod(image))
    if k_total * length * pixels > _COL2IM_MATRIX_LIMIT:
        ctx.unsupported(
            f"{k_total} x {length} blocks onto {pixels} pixels (a constant scatter matrix "
            f"of more than {_COL2IM_MATRIX_LIMIT} entries)"
        )
    # coordinates of every (kernel element, column) pair, per axis
    kernel_at = np.indices(block).reshape(d, -1, 1)  # (d, K, 1)
    column_at = np.indices(counts).reshape(d, 1, -1)  # (d, 1, L)
    steps, dil = np.reshape(strides, (d, 1, 1)), np.reshape(dilations, (d, 1, 1))
    begin = np.reshape(pads[:d], (d, 1, 1))
    where_at = column_at * steps - begin + kernel_at * dil  # (d, K, L)
    inside = np.all((where_at >= 0) & (where_at < np.reshape(image, (d, 1, 1))), axis=0)
    flat = np.ravel_multi_index(tuple(np.clip(where_at, 0, None)), image, mode="clip")
    matrix = np.zeros((k_total * length, pixels), dtype_of(x))
    rows = np.arange(k_total * length).reshape(k_total, length)
    np.add.at(matrix, (rows[inside], flat[inside]), 1)
    channels = ck // k_total
    y = nc.matmul(nc.reshape(x, (n, channels, k_total * length)), matrix)
    return [nc.reshape(y, (n, channels, *image))]


# MaxUnpool compares every output position with every index; past this many pairs it
# would be a poor way to scatter
_UNPOOL_PAIR_LIMIT = 1 << 24


@converter("MaxUnpool", since=9, constant_inputs=(2,))
def max_unpool(ctx: NodeContext) -> list[Any]:
    """X's values put at their flat indices (over the whole unpooled tensor, as MaxPool
    gives them) in zeros of the shape the pool came from, then zero-padded to
    output_shape. The scatter is a gather: position p reads the last element whose
    index is p (ONNX writes in order, so the last write wins)."""
    x, indices = ctx.input(0), ctx.input(1)
    kernel = ctx.attr("kernel_shape")
    d = len(kernel)
    strides = ctx.attr("strides", [1] * d)
    pads = ctx.attr("pads", [0] * (2 * d))
    if len(x.shape) != d + 2 or tuple(indices.shape) != tuple(x.shape):
        invalid(ctx, f"X {tuple(x.shape)} and indices {tuple(indices.shape)} for kernel {kernel}")
    inferred = list(x.shape[:2]) + [
        (x.shape[i + 2] - 1) * strides[i] - (pads[i] + pads[i + d]) + kernel[i] for i in range(d)
    ]
    given = ctx.constant(2, "output_shape")
    shape = inferred if given is None else [int(v) for v in np.asarray(given).reshape(-1)]
    if len(shape) != len(inferred) or any(s < i for s, i in zip(shape, inferred, strict=True)):
        invalid(ctx, f"output_shape {shape} smaller than the unpooled {inferred}")
    total, count = int(np.prod(inferred)), int(np.prod(x.shape))
    if total * count > _UNPOOL_PAIR_LIMIT:
        ctx.unsupported(f"{count} values onto {total} positions (more than 2^24 pairs)")
    if isinstance(indices, np.ndarray) and ((indices < 0) | (indices >= total)).any():
        invalid(ctx, f"indices outside the {total} unpooled positions")
    flat_index = nc.reshape(nc.astype(indices, np.int64), (1, count))
    order = np.arange(count, dtype=np.int64).reshape(1, count)
    positions = np.arange(total, dtype=np.int64).reshape(total, 1)
    hits = nc.where(nc.equal(flat_index, positions), order, np.int64(-1))
    last = nc.max(hits, axis=1)  # (total,)
    found = nc.greater_equal(last, np.int64(0))
    picked = nc.take(nc.reshape(x, (count,)), nc.where(found, last, np.int64(0)), axis=0)
    y = nc.reshape(nc.where(found, picked, np.zeros((), dtype_of(x))), tuple(inferred))
    widths = [(0, s - i) for s, i in zip(shape, inferred, strict=True)]
    return [nc.pad(y, widths) if any(w for _, w in widths) else y]
