"""Assorted NN ops: RMSNormalization, MeanVarianceNormalization, LpNormalization, LpPool,
Swish, Shrink, TopK, RotaryEmbedding. Each follows ONNX's reference (or, where the node
suite's expected values come from elsewhere, the case that generated them)."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ...dispatch import bind
from ..registry import NodeContext, converter
from .math import const, dtype_of, float_input
from .pooling import _window_args
from .shape import invalid
from .windows import as_2d, from_2d, pads4, pair


@converter("RMSNormalization", since=23)
def rms_normalization(ctx: NodeContext) -> list[Any]:
    """x / sqrt(mean(x^2 over axes axis..rank-1) + epsilon) * scale, computed in the
    input's dtype as ONNX's reference does (stash_type 1 is the only one it defines)."""
    x = float_input(ctx, 0)
    scale = ctx.input(1)
    rank = len(x.shape)
    axis = ctx.attr("axis", -1)
    eps = ctx.attr("epsilon", 1e-5)
    stash = ctx.attr("stash_type", 1)
    if stash != 1:
        ctx.unsupported(f"attribute stash_type={stash} (only 1)")
    if not -rank <= axis < rank:
        invalid(ctx, f"axis {axis} is out of range for rank {rank}")
    axes = tuple(range(axis % rank, rank))
    mean_sq = nc.mean(nc.square(x), axis=axes, keepdims=True)
    y = nc.multiply(x, nc.reciprocal(nc.sqrt(nc.add(mean_sq, const(eps, x)))))
    return [nc.multiply(y, scale)]


@converter("MeanVarianceNormalization", since=9)
def mean_variance_normalization(ctx: NodeContext) -> list[Any]:
    """(x - mean) / (sqrt(mean(x^2) - mean^2) + 1e-9) over ``axes`` (default 0, 2, 3)."""
    x = float_input(ctx, 0)
    rank = len(x.shape)
    axes = ctx.attr("axes", [0, 2, 3])
    if any(not -rank <= a < rank for a in axes):
        invalid(ctx, f"axes {axes} out of range for rank {rank}")
    axes = tuple(sorted({a % rank for a in axes}))
    mean = nc.mean(x, axis=axes, keepdims=True)
    var = nc.subtract(nc.mean(nc.square(x), axis=axes, keepdims=True), nc.square(mean))
    std = nc.sqrt(var)
    return [nc.divide(nc.subtract(x, mean), nc.add(std, const(1e-9, x)))]


@converter("LpNormalization")
def lp_normalization(ctx: NodeContext) -> list[Any]:
    """x / (sum |x|^p)^(1/p) along axis, p in {1, 2}; 0 where the norm is 0."""
    x = float_input(ctx, 0)
    rank = len(x.shape)
    axis, p = ctx.attr("axis", -1), ctx.attr("p", 2)
    if p not in (1, 2):
        ctx.unsupported(f"attribute p={p} (ONNX defines 1 and 2)")
    if not -rank <= axis < rank:
        invalid(ctx, f"axis {axis} is out of range for rank {rank}")
    if p == 1:
        norm = nc.sum(nc.abs(x), axis=axis, keepdims=True)
    else:
        norm = nc.sqrt(nc.sum(nc.square(x), axis=axis, keepdims=True))
    zero = nc.equal(norm, const(0, x))
    safe = nc.where(zero, const(1, x), norm)  # no 0/0 in the value or its gradient
    return [nc.where(zero, const(0, x), nc.divide(x, safe))]


@converter("LpPool")
def lp_pool(ctx: NodeContext) -> list[Any]:
    """(sum of |x|^p over each window)^(1/p); padding counts as zeros."""
    x = float_input(ctx, 0)
    p = ctx.attr("p", 2)
    rank, kernel, strides, dilations, begin, end, _ = _window_args(ctx, x, "LpPool")
    k, pads = pair(kernel, rank, 1), pads4(begin, end, rank)
    powered = nc.abs(x) if p == 1 else nc.power(nc.abs(x), const(p, x))
    widths = [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])]
    padded = nc.pad(nc.as_tensor(as_2d(powered, rank)), widths)
    # the window sum, as the mean of a full window (no padding left) times its size
    avg = bind(
        "avg_pool2d",
        padded,
        kernel=k,
        strides=pair(strides, rank, 1),
        pads=(0, 0, 0, 0),
        dilations=pair(dilations, rank, 1),
        count_include_pad=False,
        layout="NCHW",
    )
    total = nc.multiply(from_2d(avg, rank), const(int(np.prod(kernel)), x))
    if p == 1:
        return [total]
    return [nc.power(total, const(1.0 / p, x))]


@converter("Swish", since=24)
def swish(ctx: NodeContext) -> list[Any]:
    x = float_input(ctx, 0)
    alpha = ctx.attr("alpha", 1.0)
    return [nc.multiply(x, nc.sigmoid(nc.multiply(x, const(alpha, x))))]


@converter("Shrink", since=9)
def shrink(ctx: NodeContext) -> list[Any]:
    """x + bias below -lambd, x - bias above lambd, else 0. Integer inputs need an
    integral bias (the reference adds a float bias, then truncates)."""
    x = ctx.input(0)
    bias, lambd = ctx.attr("bias", 0.0), ctx.attr("lambd", 0.5)
    dt = dtype_of(x)
    if dt == np.bool_:
        ctx.unsupported("bool input")
    if dt.kind == "i" and bias != int(bias):
        ctx.unsupported(f"bias={bias} with an integer input (a fractional shift)")
    # compare in float64, so a fractional lambd bounds integers exactly
    wide = x if dt.kind == "f" else nc.astype(x, np.float64)
    low = nc.less(wide, const(-lambd, wide))
    high = nc.greater(wide, const(lambd, wide))
    b = const(bias, x)
    inner = nc.where(high, nc.subtract(x, b), const(0, x))
    return [nc.where(low, nc.add(x, b), inner)]


@converter("TopK", constant_inputs=(1,))
def top_k(ctx: NodeContext) -> list[Any]:
    """Values and int64 indices of the k largest (or smallest) along axis, sorted; ties
    go to the lower index, as ONNX's reference orders them. k must be known."""
    x = ctx.input(0)
    rank = len(x.shape)
    if ctx.opset < 10:
        k = ctx.attr("k")
    else:
        given = ctx.constant(1, "K")
        if given is None or given.size != 1:
            invalid(ctx, "K must hold one value")
        k = int(given.reshape(-1)[0])
    axis = ctx.attr("axis", -1)
    largest = bool(ctx.attr("largest", 1)) if ctx.opset >= 11 else True
    if ctx.opset >= 11:
        ctx.attr("sorted", 1)  # unsorted allows any order; sorted is one of them
    if not -rank <= axis < rank:
        invalid(ctx, f"axis {axis} is out of range for rank {rank}")
    axis %= rank
    if not 0 <= k <= x.shape[axis]:
        invalid(ctx, f"k={k} for an axis of length {x.shape[axis]}")
    if dtype_of(x) == np.bool_:
        ctx.unsupported("bool input")
    if k == 0:
        shape = tuple(x.shape[:axis]) + (0,) + tuple(x.shape[axis + 1 :])
        return [np.zeros(shape, dtype_of(x)), np.zeros(shape, np.int64)]
    values, indices = nc.topk(x, k, axis=axis, largest=largest)
    return [values, nc.astype(indices, np.int64)]


@converter("RotaryEmbedding", since=23)
def rotary_embedding(ctx: NodeContext) -> list[Any]:
    """Rotates pairs of the first rotary_embedding_dim features of each head by the
    angle whose cos and sin the caches hold (indexed by position_ids when given).
    Pairs are the two halves, or even and odd features with interleaved=1."""
    x = float_input(ctx, 0)
    cos, sin = ctx.input(1), ctx.input(2)
    positions = ctx.optional_input(3)
    interleaved = bool(ctx.attr("interleaved", 0))
    heads = ctx.attr("num_heads", 0)
    dim = ctx.attr("rotary_embedding_dim", 0)
    shape = tuple(x.shape)
    if len(shape) == 4:  # (batch, heads, seq, size) -> (batch, seq, heads, size)
        x4 = nc.transpose(x, (0, 2, 1, 3))
    elif len(shape) == 3:
        if not heads or shape[2] % heads:
            ctx.unsupported(f"3-D input of hidden size {shape[2]} with num_heads={heads}")
        x4 = nc.reshape(x, (shape[0], shape[1], heads, shape[2] // heads))
    else:
        invalid(ctx, f"input of rank {len(shape)} (3 or 4 required)")
    size = x4.shape[3]
    dim = dim or size
    if dim % 2 or dim > size:
        invalid(ctx, f"rotary_embedding_dim {dim} for heads of size {size}")
    if positions is not None:
        cos = nc.take(cos, nc.astype(positions, np.int64), axis=0)
        sin = nc.take(sin, nc.astype(positions, np.int64), axis=0)
    if cos.shape[-1] != dim // 2 or sin.shape[-1] != dim // 2:
        sizes = f"{cos.shape[-1]}, {sin.shape[-1]}"
        invalid(ctx, f"cos/sin caches of last size {sizes}; rotating {dim} needs {dim // 2}")
    cos, sin = nc.expand_dims(cos, 2), nc.expand_dims(sin, 2)
    if interleaved:
        first, second = np.arange(0, dim, 2), np.arange(1, dim, 2)
    else:
        first, second = np.arange(dim // 2), np.arange(dim // 2, dim)
    x1, x2 = nc.take(x4, first, axis=3), nc.take(x4, second, axis=3)
    real = nc.subtract(nc.multiply(cos, x1), nc.multiply(sin, x2))
    imag = nc.add(nc.multiply(sin, x1), nc.multiply(cos, x2))
    if interleaved:
        pairs = nc.concatenate([nc.expand_dims(real, -1), nc.expand_dims(imag, -1)], axis=-1)
        rotated = nc.reshape(pairs, tuple(real.shape[:3]) + (dim,))
    else:
        rotated = nc.concatenate([real, imag], axis=-1)
    if dim < size:
        rotated = nc.concatenate([rotated, nc.take(x4, np.arange(dim, size), axis=3)], axis=-1)
    if len(shape) == 3:
        return [nc.reshape(rotated, shape)]
    return [nc.transpose(rotated, (0, 2, 1, 3))]


@converter("SwiGLU", since=28)
def swiglu(ctx: NodeContext) -> list[Any]:
    """Swish_alpha(A) * B; A and B have one shape and dtype (no broadcasting)."""
    a, b = float_input(ctx, 0), float_input(ctx, 1)
    alpha = ctx.attr("alpha", 1.0)
    if tuple(a.shape) != tuple(b.shape) or dtype_of(a) != dtype_of(b):
        invalid(ctx, f"A {a.dtype}{tuple(a.shape)} and B {b.dtype}{tuple(b.shape)} differ")
    gate = nc.multiply(a, nc.sigmoid(nc.multiply(a, const(alpha, a))))
    return [nc.multiply(gate, b)]


def _grid_axis(n: int, align_corners: bool) -> np.ndarray:
    """Normalized sample positions along an axis of n: the pixel centres in (-1, 1), or
    the corners -1 and 1 with align_corners."""
    if align_corners:
        return np.linspace(-1.0, 1.0, n)
    return (2.0 * np.arange(n) + 1.0) / n - 1.0


@converter("AffineGrid", since=20, constant_inputs=(1,))
def affine_grid(ctx: NodeContext) -> list[Any]:
    """theta (N, 2, 3) or (N, 3, 4) applied to the normalized (x, y[, z], 1) grid of
    the known size (N, C, H, W[, D]): (N, H, W, 2) or (N, D, H, W, 3), x first."""
    theta = float_input(ctx, 0)
    size = [int(s) for s in np.asarray(ctx.constant(1, "size")).reshape(-1)]
    align = bool(ctx.attr("align_corners", 0))
    spatial = size[2:]
    if len(spatial) not in (2, 3) or tuple(theta.shape[1:]) != (
        len(spatial),
        len(spatial) + 1,
    ):
        invalid(ctx, f"theta {tuple(theta.shape)} for size {size}")
    if align and 1 in spatial:
        ctx.unsupported(f"align_corners=1 with a size-1 axis in {size}")
    axes = [_grid_axis(n, align) for n in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")  # (D,) H, W, each varying along its axis
    coords = [m.reshape(-1) for m in reversed(mesh)]  # x (width) first
    base = np.stack([*coords, np.ones_like(coords[0])], axis=0).astype(dtype_of(theta))
    grid = nc.matmul(theta, base)  # (N, dims, points)
    out_shape = (theta.shape[0], *spatial, len(spatial))
    return [nc.reshape(nc.transpose(grid, (0, 2, 1)), out_shape)]
