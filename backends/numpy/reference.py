"""Reference implementations, one per primitive, keyed by op name.

Each takes the input arrays and the node's (normalized) attributes and returns the list
of output arrays, with exactly the dtypes and shapes the op's type inference promises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...ir.errors import ExecutionError
from ...ir.ops.binary import BINARY, saturating_cast  # pow needs it too, so it lives there
from ...ir.ops.movement import range_to_slice, slice_ranges
from ...ir.ops.unary import UNARY, ieee_maximum, ieee_minimum
from ...ir.symbolic import bound_batch_size

RefFn = Callable[[list[np.ndarray], dict[str, Any]], list[np.ndarray]]
REFERENCE: dict[str, RefFn] = {}


def reference(name: str):
    def deco(fn: RefFn) -> RefFn:
        REFERENCE[name] = fn
        return fn

    return deco


def _zero(x: np.ndarray) -> np.generic:
    return x.dtype.type(0)


# ---- float semantics every backend shares ---------------------------------------------------
# NumPy leaves these cases to the platform (its float -> int cast of NaN gives INT_MIN on x86,
# its max of +0 and -0 depends on operand order and SIMD path); the compiled backends follow
# the rules below, and so does the reference.


_maximum = ieee_maximum
_minimum = ieee_minimum


def _signed_zero_extreme(out: np.ndarray, x: np.ndarray, axis: Any, keepdims: bool, top: bool):
    """A max (``top``) or min reduction's zero results with IEEE 754-2019's -0 < +0: a max
    is +0 if any +0 was reduced, a min -0 if any -0 was (NumPy keeps whichever came first)."""
    if x.dtype.kind != "f" or not np.any(out == 0):
        return out
    found = np.any((x == 0) & (np.signbit(x) != top), axis=axis, keepdims=keepdims)
    zero = np.zeros_like(out)
    return np.where(out == 0, np.where(found == top, zero, -zero), out)


# ---- elementwise ------------------------------------------------------------------------


# declared once in ir/ops/unary.py; stop_gradient is an identity, not a math op
UNARY_REFERENCE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    **{name: u.reference for name, u in UNARY.items()},
    "stop_gradient": np.copy,
}


BINARY_REFERENCE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    name: b.reference for name, b in BINARY.items()
}


def _register_elementwise() -> None:
    for name, fn in UNARY_REFERENCE.items():
        REFERENCE[name] = lambda ins, attrs, fn=fn: [np.asarray(fn(ins[0]))]
    for name, fn in BINARY_REFERENCE.items():
        REFERENCE[name] = lambda ins, attrs, fn=fn: [np.asarray(fn(ins[0], ins[1]))]


_register_elementwise()


@reference("constant")
def _constant(ins, attrs):
    return [attrs["value"]]


@reference("batch_size")
def _batch_size(ins, attrs):
    n = bound_batch_size()
    return [np.asarray(attrs["scale"] * n + attrs["offset"], attrs["dtype"].np)]


@reference("where")
def _where(ins, attrs):
    return [np.asarray(np.where(*ins))]


@reference("cast")
def _cast(ins, attrs):
    return [saturating_cast(ins[0], attrs["to"].np)]


# ---- reductions -------------------------------------------------------------------------


def _lowest(d: np.dtype):
    return -np.inf if d.kind == "f" else (False if d.kind == "b" else np.iinfo(d).min)


def _highest(d: np.dtype):
    return np.inf if d.kind == "f" else (True if d.kind == "b" else np.iinfo(d).max)


@reference("reduce_sum")
def _reduce_sum(ins, attrs):
    x = ins[0]
    return [np.asarray(np.sum(x, axis=attrs["axes"], keepdims=attrs["keepdims"], dtype=x.dtype))]


@reference("reduce_mean")
def _reduce_mean(ins, attrs):
    x = ins[0]
    return [np.asarray(np.mean(x, axis=attrs["axes"], keepdims=attrs["keepdims"], dtype=x.dtype))]


@reference("reduce_max")
def _reduce_max(ins, attrs):
    x = ins[0]
    # `initial` makes an empty reduction give the lowest value (-inf), as ONNX says.
    axes, keep = attrs["axes"], attrs["keepdims"]
    out = np.max(x, axis=axes, keepdims=keep, initial=_lowest(x.dtype))
    return [np.asarray(_signed_zero_extreme(out, x, axes, keep, top=True), dtype=x.dtype)]


@reference("reduce_min")
def _reduce_min(ins, attrs):
    x = ins[0]
    axes, keep = attrs["axes"], attrs["keepdims"]
    out = np.min(x, axis=axes, keepdims=keep, initial=_highest(x.dtype))
    return [np.asarray(_signed_zero_extreme(out, x, axes, keep, top=False), dtype=x.dtype)]


@reference("argmax")
def _argmax(ins, attrs):
    out = np.argmax(ins[0], axis=attrs["axis"], keepdims=attrs["keepdims"])
    return [np.asarray(out, dtype=np.int64)]


@reference("argmin")
def _argmin(ins, attrs):
    out = np.argmin(ins[0], axis=attrs["axis"], keepdims=attrs["keepdims"])
    return [np.asarray(out, dtype=np.int64)]


# ---- movement ---------------------------------------------------------------------------


@reference("reshape")
def _reshape(ins, attrs):
    return [ins[0].reshape(attrs["shape"])]


@reference("transpose")
def _transpose(ins, attrs):
    return [np.transpose(ins[0], attrs["perm"])]


@reference("expand")
def _expand(ins, attrs):
    x = ins[0]
    shape = np.broadcast_shapes(x.shape, tuple(attrs["shape"]))
    return [np.broadcast_to(x, shape).copy()]


@reference("slice")
def _slice(ins, attrs):
    x = ins[0]
    ranges = slice_ranges(x.shape, attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"])
    return [np.asarray(x[tuple(range_to_slice(r) for r in ranges)])]


@reference("pad")
def _pad(ins, attrs):
    x = ins[0]
    n = x.ndim
    if n == 0:
        return [x.copy()]
    widths = list(zip(attrs["pads"][:n], attrs["pads"][n:], strict=True))
    if attrs["mode"] == "constant":
        value = np.array(attrs["value"]).astype(x.dtype)
        return [np.pad(x, widths, mode="constant", constant_values=value)]
    return [np.pad(x, widths, mode=attrs["mode"])]


@reference("concat")
def _concat(ins, attrs):
    return [np.concatenate(ins, axis=attrs["axis"])]


def _checked_indices(idx: np.ndarray, size: int, op: str) -> np.ndarray:
    if idx.size and (idx.min() < -size or idx.max() >= size):
        bad = idx[(idx < -size) | (idx >= size)].reshape(-1)[0]
        raise ExecutionError(f"{op}: index {bad} is out of range for an axis of size {size}")
    return np.where(idx < 0, idx + size, idx).astype(np.int64)


@reference("gather")
def _gather(ins, attrs):
    data, idx = ins
    axis = attrs["axis"] % data.ndim
    return [np.asarray(np.take(data, _checked_indices(idx, data.shape[axis], "gather"), axis))]


@reference("gather_elements")
def _gather_elements(ins, attrs):
    data, idx = ins
    axis = attrs["axis"] % data.ndim
    idx = _checked_indices(idx, data.shape[axis], "gather_elements")
    # Indices may be smaller than data off the gather axis: read only that corner.
    corner = tuple(slice(None) if i == axis else slice(0, n) for i, n in enumerate(idx.shape))
    return [np.take_along_axis(data[corner], idx, axis=axis)]


@reference("one_hot")
def _one_hot(ins, attrs):
    idx, depth = ins[0].astype(np.int64), attrs["depth"]
    idx = np.where(idx < 0, idx + depth, idx)
    hot = np.arange(depth) == idx[..., None]  # out-of-range rows stay all False
    axis = attrs["axis"] % (idx.ndim + 1)
    return [np.moveaxis(hot, -1, axis).astype(attrs["dtype"].np)]


# ---- contraction and pooling ------------------------------------------------------------


@reference("matmul")
def _matmul(ins, attrs):
    return [np.asarray(np.matmul(ins[0], ins[1]))]


def _windows(xp: np.ndarray, kernel, strides, dilations) -> np.ndarray:
    """(N, C, OH, OW, kh, kw) view of every (dilated, strided) window of a padded input."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    view = np.lib.stride_tricks.sliding_window_view(xp, (eh, ew), axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def _pad_spatial(x: np.ndarray, pads, value) -> np.ndarray:
    hb, wb, he, we = pads
    return np.pad(x, ((0, 0), (0, 0), (hb, he), (wb, we)), constant_values=value)


@reference("conv2d")
def _conv2d(ins, attrs):
    x, w = ins
    g = attrs["groups"]
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    win = _windows(
        _pad_spatial(x, attrs["pads"], 0), (kh, kw), attrs["strides"], attrs["dilations"]
    )
    oh, ow = win.shape[2:4]
    win = win.reshape(n, g, cg, oh, ow, kh, kw)
    wg = w.reshape(g, o // g, cg, kh, kw)
    out = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return [np.ascontiguousarray(out.reshape(n, o, oh, ow), dtype=x.dtype)]


@reference("max_pool2d")
def _max_pool2d(ins, attrs):
    x = ins[0]
    xp = _pad_spatial(x, attrs["pads"], -np.inf)
    win = _windows(xp, attrs["kernel"], attrs["strides"], attrs["dilations"])
    out = _signed_zero_extreme(win.max(axis=(4, 5), initial=-np.inf), win, (4, 5), False, True)
    return [np.ascontiguousarray(out, dtype=x.dtype)]


@reference("avg_pool2d")
def _avg_pool2d(ins, attrs):
    x = ins[0]
    k, s, d = attrs["kernel"], attrs["strides"], attrs["dilations"]
    total = _windows(_pad_spatial(x, attrs["pads"], 0), k, s, d).sum(axis=(4, 5), dtype=x.dtype)
    if attrs["count_include_pad"]:
        count = np.asarray(k[0] * k[1], dtype=x.dtype)
    else:
        ones = np.ones((1, 1) + x.shape[2:], dtype=x.dtype)
        count = _windows(_pad_spatial(ones, attrs["pads"], 0), k, s, d).sum(axis=(4, 5))
    return [np.ascontiguousarray(total / count, dtype=x.dtype)]
