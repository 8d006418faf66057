"""torch.nn.functional's adaptive average / max pooling over NCHW (and NCL) inputs, with
torch's bins: output i covers [floor(i*In/Out), ceil((i+1)*In/Out)). Divisible sizes are a
plain pooling window (kernel = stride = In/Out); otherwise averages are two matmuls with
constant averaging matrices (A_h @ x @ A_w^T) and maxima are taken separably, per axis
(the max over a rectangle is the max over its columns of the max over its rows)."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from .ir.errors import DTypeError, ShapeError
from .nn_ops import avg_pool2d, max_pool2d
from .ops import ArrayLike, concatenate, matmul, max, reshape
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor


def _output_size(op: str, x: Tensor, output_size: Any) -> tuple[int, int]:
    if x.ndim != 4:
        raise ShapeError(f"{op}: expects an NCHW input of rank 4, got {x._type}")
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else output_size
    if len(size) != 2:
        raise ShapeError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
    out = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(size))
    if not all(isinstance(s, Integral) and s >= 1 for s in out):
        raise ShapeError(f"{op}: output_size must be positive ints or None, got {output_size!r}")
    if not x._type.dtype.is_float:
        raise DTypeError(f"{op}: expects a float input, got {x._type}")
    return (int(out[0]), int(out[1]))


def bins(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive pooling windows: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def averaging_matrix(size: int, out: int, dtype: np.dtype) -> np.ndarray:
    """(out, size): row i averages bin i."""
    a = np.zeros((out, size), dtype)
    for i, (s, e) in enumerate(bins(size, out)):
        a[i, s:e] = 1.0 / (e - s)
    return a


def _divisible(x: Tensor, out: tuple[int, int]) -> tuple[int, int] | None:
    h, w = x.shape[2:]
    return (h // out[0], w // out[1]) if h % out[0] == 0 and w % out[1] == 0 else None


@reports_user_line
def adaptive_avg_pool2d(x: ArrayLike, output_size: Any) -> Tensor:
    """torch.nn.functional.adaptive_avg_pool2d: x (N, C, H, W) -> (N, C, *output_size)."""
    x = as_tensor(x)
    out = _output_size("adaptive_avg_pool2d", x, output_size)
    kernel = _divisible(x, out)
    if kernel is not None:
        return avg_pool2d(x, kernel, kernel)
    d = x._type.dtype.np
    a_h = as_tensor(averaging_matrix(x.shape[2], out[0], d))
    a_w_t = as_tensor(np.ascontiguousarray(averaging_matrix(x.shape[3], out[1], d).T))
    return matmul(matmul(a_h, x), a_w_t)


def _max_bins(x: Tensor, axis: int, out: int) -> Tensor:
    """The max of each of torch's bins along ``axis`` (a slice and a max per bin)."""
    parts = []
    for s, e in bins(x.shape[axis], out):
        window = [slice(None)] * x.ndim
        window[axis] = slice(s, e)
        parts.append(max(x[tuple(window)], axis=axis, keepdims=True))
    return parts[0] if len(parts) == 1 else concatenate(parts, axis=axis)


@reports_user_line
def adaptive_max_pool2d(x: ArrayLike, output_size: Any, return_indices: bool = False) -> Tensor:
    """torch.nn.functional.adaptive_max_pool2d (values only): x (N, C, H, W) ->
    (N, C, *output_size)."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d: return_indices=True is not supported")
    x = as_tensor(x)
    out = _output_size("adaptive_max_pool2d", x, output_size)
    kernel = _divisible(x, out)
    if kernel is not None:
        return max_pool2d(x, kernel, kernel)
    return _max_bins(_max_bins(x, 2, out[0]), 3, out[1])


def _as_image(op: str, x: Tensor, output_size: Any) -> tuple[Tensor, tuple[int, int]]:
    if x.ndim != 3:
        raise ShapeError(f"{op}: expects an NCL input of rank 3, got {x._type}")
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 1:
            raise ShapeError(f"{op}: output_size must be an int or a 1-tuple, got {output_size!r}")
        output_size = output_size[0]
    n, c, length = x.shape
    return reshape(x, (n, c, 1, length)), (1, output_size)


@reports_user_line
def adaptive_avg_pool1d(x: ArrayLike, output_size: Any) -> Tensor:
    """torch.nn.functional.adaptive_avg_pool1d: x (N, C, L) -> (N, C, output_size)."""
    image, size = _as_image("adaptive_avg_pool1d", as_tensor(x), output_size)
    y = adaptive_avg_pool2d(image, size)
    return reshape(y, (y.shape[0], y.shape[1], y.shape[3]))


@reports_user_line
def adaptive_max_pool1d(x: ArrayLike, output_size: Any, return_indices: bool = False) -> Tensor:
    """torch.nn.functional.adaptive_max_pool1d (values only): x (N, C, L) -> (N, C, out)."""
    image, size = _as_image("adaptive_max_pool1d", as_tensor(x), output_size)
    y = adaptive_max_pool2d(image, size, return_indices)
    return reshape(y, (y.shape[0], y.shape[1], y.shape[3]))
