"""Resize and Upsample, one axis at a time: each output position along an axis reads a
few input positions (1 for nearest, 2 for linear, 4 for cubic, more when antialiasing)
with weights computed here in NumPy from ONNX's coordinate transformation (the same
arithmetic as ONNX's reference implementation), so the graph holds only ``nc.take``s,
products and sums, and the sizes stay static. scales/sizes/roi must be constants."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import nncompile as nc
from nncompile.ir.symbolic import Dim

from ..registry import NodeContext, converter

_COORDINATES = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_crop_and_resize",
    "tf_half_pixel_for_nn",
)
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _source_coords(mode: str, n_in: int, n_out: int, scale: float, roi: Any) -> np.ndarray:
    """Input coordinate of each output position (float64), per coordinate_transformation_mode."""
    y = np.arange(n_out, dtype=np.float64)
    out_width = scale * n_in
    if mode == "align_corners":
        return np.zeros(n_out) if out_width == 1 else y * (n_in - 1) / (out_width - 1)
    if mode == "asymmetric":
        return y / scale
    if mode == "tf_crop_and_resize":
        lo, hi = roi
        if out_width == 1:
            x = np.full(n_out, (hi - lo) * (n_in - 1) / 2)
        else:
            x = y * (hi - lo) * (n_in - 1) / (out_width - 1)
        return x + lo * (n_in - 1)
    if mode == "pytorch_half_pixel":
        return np.full(n_out, -0.5) if out_width == 1 else (y + 0.5) / scale - 0.5
    if mode == "tf_half_pixel_for_nn":  # opset 11-12 only
        return (y + 0.5) / scale
    if mode == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / out_width)
        return offset + (y + 0.5) / scale - 0.5
    return (y + 0.5) / scale - 0.5  # half_pixel


def _nearest_coeffs(ratio: float, rounding: str) -> list[float]:
    if ratio == 1.0:  # an exact input position: the right-hand tap is it
        return [0.0, 1.0]
    if rounding == "round_prefer_floor":
        return [float(ratio <= 0.5), float(ratio > 0.5)]
    if rounding == "round_prefer_ceil":
        return [float(ratio < 0.5), float(ratio >= 0.5)]
    return [1.0, 0.0] if rounding == "floor" else [0.0, 1.0]


def _cubic_kernel(t: float, a: float) -> float:
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a if t < 2 else 0.0


def _cubic_coeffs(ratio: float, a: float) -> list[float]:
    return [_cubic_kernel(t, a) for t in (ratio + 1, ratio, 1 - ratio, 2 - ratio)]


def _antialias_coeffs(ratio: float, scale: float, mode: str, a: float) -> list[float]:
    """Downsampling widens the kernel by 1 / scale (normalized to sum 1)."""
    scale = min(scale, 1.0)
    support = 1 if mode == "linear" else 2
    start = math.floor(-support / scale) + 1
    args = [scale * (i - ratio) for i in range(start, 2 - start)]
    if mode == "linear":
        w = [max(0.0, 1 - abs(t)) for t in args]
    else:
        w = [_cubic_kernel(t, a) for t in args]
    total = sum(w)
    return [v / total for v in w]


def _coeff_fn(mode: str, antialias: bool, rounding: str, scale: float, a: float) -> Any:
    """ratio in (0, 1] -> the weights of the taps around it."""
    if mode == "nearest":
        return lambda r: _nearest_coeffs(r, rounding)
    if antialias:
        return lambda r: _antialias_coeffs(r, scale, mode, a)
    if mode == "linear":
        return lambda r: [1 - r, r]
    return lambda r: _cubic_coeffs(r, a)


def _taps(x_src: np.ndarray, coeff_fn: Any, n_in: int, exclude_outside: bool):
    """(indices, weights), both (n_out, taps): the taps nearest each source coordinate
    (ties to the smaller index), indices clamped into the input (edge padding)."""
    base = np.ceil(x_src).astype(np.int64) - 1  # largest integer below x: ratio in (0, 1]
    ratios = x_src - base
    weights = np.asarray([coeff_fn(float(r)) for r in ratios], np.float64)
    taps = weights.shape[1]
    idx = base[:, None] + np.arange(taps)[None, :] - (taps // 2 - 1)
    if exclude_outside:
        weights = np.where((idx < 0) | (idx >= n_in), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    return np.clip(idx, 0, n_in - 1), weights


def _resize_axis(x: Any, axis: int, idx: np.ndarray, weights: np.ndarray, exact: bool) -> Any:
    shape = [1] * len(x.shape)
    shape[axis] = idx.shape[0]
    if exact:  # one weight of 1 per row: a plain gather (exact, and for integer data)
        return nc.take(x, idx[np.arange(idx.shape[0]), weights.argmax(axis=1)], axis=axis)
    y = None
    for j in range(idx.shape[1]):
        w = weights[:, j]
        if not w.any():
            continue
        term = nc.take(x, idx[:, j], axis=axis) * w.astype(x.dtype).reshape(shape)
        y = term if y is None else y + term
    return y


def _resize(
    ctx: NodeContext,
    x: Any,
    scales: list[float],
    sizes: list[int],
    mode: str,
    coords: str,
    rounding: str | list[str],
    roi: list[float] | None,
) -> Any:
    cubic_a = ctx.attr("cubic_coeff_a", -0.75)
    exclude = bool(ctx.attr("exclude_outside", 0))
    extrapolation = ctx.attr("extrapolation_value", 0.0)
    antialias = bool(ctx.attr("antialias", 0))
    if mode not in ("nearest", "linear", "cubic"):
        ctx.unsupported(f"attribute mode={mode!r} is not supported")
    if coords not in _COORDINATES:
        ctx.unsupported(f"coordinate_transformation_mode={coords!r} is not supported")
    roundings = rounding if isinstance(rounding, list) else [rounding] * len(x.shape)
    if mode == "nearest" and rounding not in _NEAREST and not isinstance(rounding, list):
        ctx.unsupported(f"nearest_mode={rounding!r} is not supported")
    if mode == "nearest" and antialias:
        ctx.unsupported("antialias=1 with mode='nearest'")
    if mode != "nearest" and np.dtype(x.dtype).kind != "f":
        ctx.unsupported(f"mode={mode!r} on {x.dtype} data (only nearest resizes integers)")
    rank = len(x.shape)
    for axis in range(rank):
        n_in, n_out, scale = x.shape[axis], sizes[axis], scales[axis]
        axis_roi = None if roi is None else (roi[axis], roi[axis + rank])
        if math.isclose(scale, 1.0) and n_out == n_in and axis_roi in (None, (0.0, 1.0)):
            continue
        if coords == "tf_crop_and_resize" and axis_roi is None:
            ctx.unsupported("coordinate_transformation_mode='tf_crop_and_resize' needs roi")
        x_src = _source_coords(coords, n_in, n_out, scale, axis_roi)
        coeff_fn = _coeff_fn(mode, antialias, roundings[axis], scale, cubic_a)
        idx, weights = _taps(x_src, coeff_fn, n_in, exclude)
        x = _resize_axis(x, axis, idx, weights, mode == "nearest")
        if coords == "tf_crop_and_resize":
            outside = (x_src < 0) | (x_src > n_in - 1)
            if outside.any():
                shape = [1] * rank
                shape[axis] = n_out
                fill = np.asarray(extrapolation, x.dtype)
                x = nc.where(outside.reshape(shape), fill, x)
    return x


def _output_plan(ctx: NodeContext, x: Any, scales: Any, sizes: Any) -> tuple[list, list]:
    """Per-axis scales and output sizes from the scales or sizes input, the axes
    attribute and keep_aspect_ratio_policy."""
    shape = [d if type(d) is Dim else int(d) for d in x.shape]  # (n: the symbolic batch)
    rank = len(shape)
    axes = ctx.attr("axes", None)
    policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
    axes = [a % rank for a in axes] if axes else list(range(rank))
    given = sizes if sizes is not None and sizes.size else scales
    if given is None or given.size != len(axes):
        ctx.unsupported(f"needs {len(axes)} scales or sizes, one per resized axis")
    if sizes is not None and sizes.size:
        out = list(shape)
        for a, s in zip(axes, sizes.reshape(-1), strict=True):
            out[a] = int(s)
        factors = [1.0 if o is n else o / n for o, n in zip(out, shape, strict=True)]
        if policy not in ("stretch", "not_larger", "not_smaller"):
            ctx.unsupported(f"keep_aspect_ratio_policy={policy!r} is not supported")
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            s = pick(factors[a] for a in axes)
            factors = [s if i in axes else 1.0 for i in range(rank)]
            out = [int(s * shape[i] + 0.5) if i in axes else shape[i] for i in range(rank)]
        return factors, out
    factors = [1.0] * rank
    for a, s in zip(axes, scales.reshape(-1), strict=True):
        factors[a] = float(s)
    if min(factors) <= 0:
        ctx.unsupported(f"scales {factors} must be positive")
    return factors, [n if f == 1.0 else int(f * n) for f, n in zip(factors, shape, strict=True)]


@converter("Resize", since=10, constant_inputs=(1, 2, 3))
def resize(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    mode = ctx.attr("mode", "nearest")
    if ctx.opset < 11:
        # Resize-10: (X, scales), asymmetric coordinates; nearest floors when enlarging
        # and rounds up when shrinking an axis (as ONNX Runtime does; the spec is silent)
        scales = ctx.constant(1, "scales").astype(np.float64)
        factors, out = _output_plan(ctx, x, scales, None)
        roundings = ["ceil" if f < 1 else "floor" for f in factors]
        return [_resize(ctx, x, factors, out, mode, "asymmetric", roundings, None)]
    roi = ctx.constant(1, "roi")
    scales = ctx.constant(2, "scales")
    sizes = ctx.constant(3, "sizes")
    coords = ctx.attr("coordinate_transformation_mode", "half_pixel")
    rounding = ctx.attr("nearest_mode", "round_prefer_floor")
    factors, out = _output_plan(
        ctx,
        x,
        None if scales is None else scales.astype(np.float64),
        None if sizes is None else sizes.astype(np.int64),
    )
    full_roi = None
    if coords == "tf_crop_and_resize" and roi is not None and roi.size:
        full_roi = _full_roi(ctx, roi.astype(np.float64).reshape(-1), len(x.shape))
    return [_resize(ctx, x, factors, out, mode, coords, rounding, full_roi)]


def _full_roi(ctx: NodeContext, roi: np.ndarray, rank: int) -> list[float]:
    """roi as [starts..., ends...] over every axis (the axes attribute names a subset)."""
    axes = ctx.attr("axes", None)
    if not axes:
        return [float(v) for v in roi]
    axes = [a % rank for a in axes]
    full = [0.0] * rank + [1.0] * rank
    for i, a in enumerate(axes):
        full[a], full[rank + a] = float(roi[i]), float(roi[len(axes) + i])
    return full


@converter("Upsample", constant_inputs=(1,))
def upsample(ctx: NodeContext) -> list[Any]:
    """Upsample (deprecated since opset 10): output floor(size * scale), asymmetric
    coordinates; nearest floors, linear is (bi)linear. Scales are an attribute before
    opset 9, an input from 9."""
    x = ctx.input(0)
    mode = ctx.attr("mode", "nearest")
    if ctx.opset < 9:
        scales = np.asarray(ctx.attr("scales"), np.float64)
    else:
        scales = ctx.constant(1, "scales").astype(np.float64)
    if mode == "bilinear":  # opset 7's spelling
        mode = "linear"
    if mode not in ("nearest", "linear"):
        ctx.unsupported(f"attribute mode={mode!r} is not supported")
    factors, out = _output_plan(ctx, x, scales, None)
    return [_resize(ctx, x, factors, out, mode, "asymmetric", "floor", None)]
