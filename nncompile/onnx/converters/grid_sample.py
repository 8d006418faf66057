"""GridSample (N-D): X sampled at the normalized positions of grid, by nearest, linear or
cubic (Keys, a = -0.75) interpolation, with zeros, border or reflection padding, as ONNX's
reference computes it. Separable: each spatial axis gives 1, 2 or 4 taps (an index and a
weight); every combination of taps is one gather from the flattened spatial axes. The
gradient reaches X through the gathers and grid through the weights (as PyTorch's)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .math import _integral, const, dtype_of, float_input
from .shape import invalid

_MODES = {"bilinear": "linear", "linear": "linear", "nearest": "nearest"}
_MODES |= {"bicubic": "cubic", "cubic": "cubic"}
_CUBIC_A = -0.75


def _reflect(v: Any, lo: float, hi: float) -> Any:
    """v reflected at the borders lo and hi until it lies between them."""
    span = const(hi - lo, v)
    lo_t, hi_t = const(lo, v), const(hi, v)
    below, above = nc.less(v, lo_t), nc.greater(v, hi_t)
    dx = nc.where(below, nc.subtract(lo_t, v), nc.subtract(v, hi_t))
    n = _integral(nc.divide(dx, span), "floor")  # dx >= 0 where used: floor is trunc
    r = nc.subtract(dx, nc.multiply(n, span))
    half = _integral(nc.multiply(n, const(0.5, v)), "floor")
    even = nc.equal(nc.subtract(n, nc.multiply(half, const(2, v))), const(0, v))
    from_lo, from_hi = nc.add(lo_t, r), nc.subtract(hi_t, r)
    moved = nc.where(below, nc.where(even, from_lo, from_hi), nc.where(even, from_hi, from_lo))
    return nc.where(nc.logical_or(below, above), moved, v)


def _cubic_weights(t: Any) -> list[Any]:
    """Keys' cubic convolution weights for taps at -1, 0, 1, 2 around a fraction t."""
    a = _CUBIC_A

    def near(d: Any) -> Any:  # |d| <= 1
        return nc.add(
            nc.multiply(
                nc.multiply(nc.subtract(nc.multiply(d, const(a + 2, d)), const(a + 3, d)), d), d
            ),
            const(1, d),
        )

    def far(d: Any) -> Any:  # 1 < |d| < 2
        inner = nc.add(
            nc.multiply(nc.subtract(nc.multiply(d, const(a, d)), const(5 * a, d)), d),
            const(8 * a, d),
        )
        return nc.subtract(nc.multiply(inner, d), const(4 * a, d))

    one, two = const(1, t), const(2, t)
    return [far(nc.add(t, one)), near(t), near(nc.subtract(one, t)), far(nc.subtract(two, t))]


@converter("GridSample", since=16)
def grid_sample(ctx: NodeContext) -> list[Any]:
    x, grid = float_input(ctx, 0), float_input(ctx, 1)
    mode_name = ctx.attr("mode", "bilinear" if ctx.opset < 20 else "linear")
    padding = ctx.attr("padding_mode", "zeros")
    align = bool(ctx.attr("align_corners", 0))
    mode = _MODES.get(mode_name)
    if mode is None:
        ctx.unsupported(f"attribute mode={mode_name!r}")
    if padding not in ("zeros", "border", "reflection"):
        ctx.unsupported(f"attribute padding_mode={padding!r}")
    dims = tuple(x.shape[2:])
    rank = len(dims)
    if rank < 1 or len(grid.shape) != rank + 2 or grid.shape[-1] != rank:
        invalid(ctx, f"grid {tuple(grid.shape)} for X {tuple(x.shape)}")
    if grid.shape[0] != x.shape[0]:
        invalid(ctx, f"grid batch {grid.shape[0]} for X batch {x.shape[0]}")
    if align and padding == "reflection" and 1 in dims:
        ctx.unsupported(f"reflection with align_corners=1 on a size-1 axis of {dims}")
    n, c = x.shape[0], x.shape[1]
    out = tuple(grid.shape[1:-1])
    taps_per_axis = []
    for i, size in enumerate(dims):
        g = grid[..., rank - 1 - i]  # grid lists x (the last axis) first
        lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
        if align:
            u = nc.multiply(nc.add(g, const(1, g)), const((size - 1) / 2, g))
        else:
            u = nc.divide(
                nc.subtract(nc.multiply(nc.add(g, const(1, g)), const(size, g)), const(1, g)),
                const(2, g),
            )
        if mode == "nearest":
            u = _integral(u, "round")
        if padding == "border":  # only positions past the borders move (to the edge)
            outside = nc.logical_or(nc.less(u, const(lo, u)), nc.greater(u, const(hi, u)))
            u = nc.where(outside, nc.clip(u, const(0, u), const(size - 1, u)), u)
        elif padding == "reflection":
            u = _reflect(u, lo, hi)
        taps_per_axis.append(_taps(u, mode, size, padding, lo, hi))
    flat = nc.reshape(x, (n, c, -1))
    strides = [int(np.prod(dims[i + 1 :])) for i in range(rank)]
    total: Any = None
    for combo in itertools.product(*taps_per_axis):
        index: Any = None
        weight: Any = None
        for (idx, w), stride in zip(combo, strides, strict=True):
            part = nc.multiply(idx, np.int64(stride))
            index = part if index is None else nc.add(index, part)
            if w is not None:
                weight = w if weight is None else nc.multiply(weight, w)
        picked = nc.take_along_axis(
            flat, nc.broadcast_to(nc.reshape(index, (n, 1, -1)), (n, c, int(np.prod(out)))), 2
        )
        picked = nc.reshape(picked, (n, c) + out)
        if weight is not None:
            if dtype_of(weight) != dtype_of(x):
                weight = nc.astype(weight, dtype_of(x))
            picked = nc.multiply(picked, nc.expand_dims(weight, 1))
        total = picked if total is None else nc.add(total, picked)
    return [total]


def _taps(u: Any, mode: str, size: int, padding: str, lo: float, hi: float) -> list[Any]:
    """(int64 index, weight or None) per tap along one axis; a tap outside the axis
    reads 0 (zeros), the nearest edge (border) or its reflection."""
    if mode == "nearest":
        starts, weights = [nc.astype(u, np.int64)], [None]
    else:
        base = _integral(u, "floor")
        t = nc.subtract(u, base)
        start = nc.astype(base, np.int64)
        if mode == "linear":
            starts = [start, nc.add(start, np.int64(1))]
            weights = [nc.subtract(const(1, t), t), t]
        else:
            starts = [nc.add(start, np.int64(k)) for k in (-1, 0, 1, 2)]
            weights = _cubic_weights(t)
    taps = []
    for i, w in zip(starts, weights, strict=True):
        if padding == "zeros":
            inside = nc.logical_and(nc.greater_equal(i, np.int64(0)), nc.less(i, np.int64(size)))
            i = nc.where(inside, i, np.int64(0))
            mask = nc.astype(inside, dtype_of(u))
            w = mask if w is None else nc.multiply(w, mask)
        elif padding == "border":
            i = nc.clip(i, np.int64(0), np.int64(size - 1))
        else:
            i = nc.astype(_reflect(nc.astype(i, dtype_of(u)), lo, hi), np.int64)
        taps.append((i, w))
    return taps
