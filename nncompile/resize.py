"""torch.nn.functional.interpolate for (N, C, L) and (N, C, H, W) inputs: nearest,
nearest-exact, (bi)linear and area. Resizing is separable: each spatial axis is a gather
(take) with a constant int64 index array, and for (bi)linear a lerp of two gathers with
constant weights, so it fuses as injective ops and its gradient is gather's adjoint. The
indices and weights follow torch's CPU kernels (aten/src/ATen/native/UpSample.h)."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

from .adaptive_pool import adaptive_avg_pool1d, adaptive_avg_pool2d
from .ir.errors import DTypeError, OpAttributeError, ShapeError
from .ops import ArrayLike, add, multiply, take
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor

_MODES = {
    3: ("nearest", "nearest-exact", "linear", "area"),
    4: ("nearest", "nearest-exact", "bilinear", "area"),
}
_LINEAR = ("linear", "bilinear")


def _scale(in_size: int, out_size: int, scale: float | None, dtype) -> Any:
    """torch's compute_scales_value: 1/scale_factor when one is given, else in/out."""
    if scale is not None and scale > 0:
        return dtype(1.0 / scale)
    return dtype(in_size) / dtype(out_size)


def nearest_indices(in_size: int, out_size: int, scale: float | None, exact: bool) -> np.ndarray:
    """Source index of each output: floor(dst * s) ("nearest", torch's legacy rule, with its
    shortcuts for equal and doubled sizes when no scale_factor is given) or
    floor((dst + 0.5) * s) ("nearest-exact"), clamped to the input; s in float32 as torch
    computes it."""
    dst = np.arange(out_size)
    if not exact and scale is None and out_size == in_size:
        return dst.astype(np.int64)
    if not exact and scale is None and out_size == 2 * in_size:
        return (dst >> 1).astype(np.int64)
    s = _scale(in_size, out_size, scale, np.float32)
    if exact:  # (dst + 0.5) is a double in torch's C++, the product too; floorf rounds it
        src = np.floor(((dst + 0.5) * np.float64(s)).astype(np.float32))
    else:
        src = np.floor(dst.astype(np.float32) * s)
    return np.minimum(src.astype(np.int64), in_size - 1)


def linear_weights(
    in_size: int, out_size: int, scale: float | None, align_corners: bool, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, l0, l1): output k is l0[k] * x[i0[k]] + l1[k] * x[i1[k]], with torch's
    source index (align_corners: k*(in-1)/(out-1); else (k+0.5)*s - 0.5 clamped at 0) in
    the input's float type, as torch's opmath."""
    f = np.dtype(dtype).type
    dst = np.arange(out_size)
    if out_size == in_size:  # torch copies
        i = dst.astype(np.int64)
        return i, i, np.ones(out_size, dtype), np.zeros(out_size, dtype)
    if align_corners:
        s = f(in_size - 1) / f(out_size - 1) if out_size > 1 else f(0)
        src = s * dst.astype(dtype)
    else:
        s = _scale(in_size, out_size, scale, f)
        src = np.maximum(s * (dst.astype(dtype) + f(0.5)) - f(0.5), f(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    l1 = np.clip(src - i0.astype(dtype), 0, 1).astype(dtype)
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (f(1) - l1).astype(dtype), l1


def _along(weights: np.ndarray, axis: int, ndim: int) -> Tensor:
    shape = [1] * ndim
    shape[axis] = weights.size
    return as_tensor(weights.reshape(shape))


def _output_sizes(x: Tensor, size: Any, scale_factor: Any) -> tuple[list[int], list]:
    dims = x.ndim - 2
    if (size is None) == (scale_factor is None):
        raise OpAttributeError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        sizes = list(size) if isinstance(size, (tuple, list)) else [size] * dims
        if len(sizes) != dims or not all(isinstance(s, Integral) and s >= 1 for s in sizes):
            raise ShapeError(f"interpolate: size must be {dims} positive ints, got {size!r}")
        return [int(s) for s in sizes], [None] * dims
    scales = (
        list(scale_factor) if isinstance(scale_factor, (tuple, list)) else [scale_factor] * dims
    )
    if len(scales) != dims or not all(isinstance(s, Real) and s > 0 for s in scales):
        raise ShapeError(
            f"interpolate: scale_factor must be {dims} positive numbers, got {scale_factor!r}"
        )
    sizes = [math.floor(float(n) * float(s)) for n, s in zip(x.shape[2:], scales, strict=True)]
    if min(sizes) < 1:
        raise ShapeError(
            f"interpolate: scale_factor {scale_factor!r} gives an empty output for input {x._type}"
        )
    return sizes, [float(s) for s in scales]


@reports_user_line
def interpolate(
    x: ArrayLike,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """torch.nn.functional.interpolate on (N, C, L) ('nearest', 'nearest-exact', 'linear',
    'area') and (N, C, H, W) ('nearest', 'nearest-exact', 'bilinear', 'area') inputs. With
    scale_factor (and recompute_scale_factor not True) the source index uses 1/scale_factor,
    as torch does; otherwise in/out."""
    x = as_tensor(x)
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    if x.ndim not in _MODES:
        raise NotImplementedError(
            f"interpolate: only 3-D (N, C, L) and 4-D (N, C, H, W) inputs, got {x._type}"
        )
    if mode not in _MODES[x.ndim]:
        if mode in ("linear", "bilinear", "bicubic", "trilinear"):
            raise NotImplementedError(
                f"interpolate: mode {mode!r} on a rank-{x.ndim} input is not supported "
                f"(rank {x.ndim} takes {', '.join(_MODES[x.ndim])})"
            )
        raise OpAttributeError(f"interpolate: unknown mode {mode!r}")
    if align_corners is not None and mode not in _LINEAR:
        raise OpAttributeError(
            f"interpolate: align_corners can only be set with mode 'linear'/'bilinear', "
            f"not {mode!r}"
        )
    if not x._type.dtype.is_float:
        raise DTypeError(f"interpolate: expects a float input, got {x._type}")
    sizes, scales = _output_sizes(x, size, scale_factor)
    if recompute_scale_factor:
        scales = [None] * len(sizes)
    if mode == "area":  # torch: adaptive average pooling to the output size
        pool = adaptive_avg_pool1d if x.ndim == 3 else adaptive_avg_pool2d
        return pool(x, sizes[0] if x.ndim == 3 else tuple(sizes))
    y = x
    for k, (out, scale) in enumerate(zip(sizes, scales, strict=True)):
        axis, n = 2 + k, x.shape[2 + k]
        if mode in _LINEAR:
            i0, i1, l0, l1 = linear_weights(n, out, scale, bool(align_corners), x._type.dtype.np)
            if out == n:
                continue
            y = add(
                multiply(take(y, i0, axis), _along(l0, axis, y.ndim)),
                multiply(take(y, i1, axis), _along(l1, axis, y.ndim)),
            )
        else:
            idx = nearest_indices(n, out, scale, mode == "nearest-exact")
            if out != n or np.any(idx != np.arange(n)):
                y = take(y, idx, axis)
    return y
