"""Reference implementations of the gradient primitives (ir/ops/gradient.py)."""

from __future__ import annotations

import numpy as np

from ...ir.ops.movement import range_to_slice, slice_ranges
from ...ir.ops.nn import LAYOUT_OPS
from .reference import REFERENCE, _checked_indices, _pad_spatial, _windows, reference


def _crop(xp: np.ndarray, pads, hw) -> np.ndarray:
    hb, wb = pads[0], pads[1]
    return np.ascontiguousarray(xp[:, :, hb : hb + hw[0], wb : wb + hw[1]])


def _window_slices(k_i: int, k_j: int, oh: int, ow: int, strides, dilations):
    """The padded-input positions that kernel offset (k_i, k_j) touches, for every output."""
    (sh, sw), (dh, dw) = strides, dilations
    return (
        slice(k_i * dh, k_i * dh + sh * (oh - 1) + 1, sh),
        slice(k_j * dw, k_j * dw + sw * (ow - 1) + 1, sw),
    )


@reference("conv2d_backward_input")
def _conv2d_backward_input(ins, attrs):
    g, w = ins
    groups, pads, (h, wd) = attrs["groups"], attrs["pads"], attrs["input_hw"]
    n, o, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    xp = np.zeros((n, cg * groups, h + pads[0] + pads[2], wd + pads[1] + pads[3]), g.dtype)
    gg = g.reshape(n, groups, o // groups, oh, ow)
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    view = xp.reshape(n, groups, cg, *xp.shape[2:])
    for i in range(kh):
        for j in range(kw):
            rows, cols = _window_slices(i, j, oh, ow, attrs["strides"], attrs["dilations"])
            view[:, :, :, rows, cols] += np.einsum("ngohw,goc->ngchw", gg, wg[:, :, :, i, j])
    return [_crop(xp, pads, (h, wd))]


@reference("conv2d_backward_weight")
def _conv2d_backward_weight(ins, attrs):
    x, g = ins
    groups = attrs["groups"]
    kh, kw = attrs["kernel"]
    n, c = x.shape[:2]
    o, oh, ow = g.shape[1:]
    win = _windows(
        _pad_spatial(x, attrs["pads"], 0), (kh, kw), attrs["strides"], attrs["dilations"]
    )[:, :, :oh, :ow]
    win = win.reshape(n, groups, c // groups, oh, ow, kh, kw)
    gg = g.reshape(n, groups, o // groups, oh, ow)
    dw = np.einsum("ngchwij,ngohw->gocij", win, gg, optimize=True)
    return [np.ascontiguousarray(dw.reshape(o, c // groups, kh, kw), dtype=x.dtype)]


@reference("max_pool2d_backward")
def _max_pool2d_backward(ins, attrs):
    x, g = ins
    k, s, d, pads = attrs["kernel"], attrs["strides"], attrs["dilations"], attrs["pads"]
    xp = _pad_spatial(x, pads, -np.inf)
    win = _windows(xp, k, s, d)
    n, c, oh, ow = win.shape[:4]
    # First maximal element of each window in row-major order: PyTorch's tie rule.
    flat = np.argmax(win.reshape(n, c, oh, ow, k[0] * k[1]), axis=-1)
    ki, kj = np.divmod(flat, k[1])
    rows = np.arange(oh)[:, None] * s[0] + ki * d[0]
    cols = np.arange(ow)[None, :] * s[1] + kj * d[1]
    dxp = np.zeros_like(xp)
    nn_, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    np.add.at(dxp, (nn_[..., None, None], cc[..., None, None], rows, cols), g)
    return [_crop(dxp, pads, x.shape[2:])]


@reference("avg_pool2d_backward")
def _avg_pool2d_backward(ins, attrs):
    (g,) = ins
    k, s, d, pads = attrs["kernel"], attrs["strides"], attrs["dilations"], attrs["pads"]
    h, w = attrs["input_hw"]
    n, c, oh, ow = g.shape
    shape = (n, c, h + pads[0] + pads[2], w + pads[1] + pads[3])
    if attrs["count_include_pad"]:
        share = g / g.dtype.type(k[0] * k[1])
    else:
        ones = np.ones((1, 1, h, w), g.dtype)
        count = _windows(_pad_spatial(ones, pads, 0), k, s, d).sum(axis=(4, 5))
        share = g / count
    dxp = np.zeros(shape, g.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            rows, cols = _window_slices(i, j, oh, ow, s, d)
            dxp[:, :, rows, cols] += share
    return [_crop(dxp, pads, (h, w))]


@reference("scatter_add")
def _scatter_add(ins, attrs):
    g, idx = ins
    shape = attrs["shape"]
    axis = attrs["axis"] % len(shape)
    out = np.zeros(shape, g.dtype)
    idx = _checked_indices(idx, shape[axis], "scatter_add")
    # Put the gather axis first in the target and the index dims first in the updates.
    target = np.moveaxis(out, axis, 0)
    updates = np.moveaxis(g, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
    np.add.at(target, idx, updates)
    return [out]


@reference("scatter_elements_add")
def _scatter_elements_add(ins, attrs):
    g, idx = ins
    shape = attrs["shape"]
    axis = attrs["axis"] % len(shape)
    idx = _checked_indices(idx, shape[axis], "scatter_elements_add")
    where = list(np.indices(idx.shape, sparse=True))
    where[axis] = idx
    out = np.zeros(shape, g.dtype)
    np.add.at(out, tuple(where), g)
    return [out]


@reference("slice_backward")
def _slice_backward(ins, attrs):
    (g,) = ins
    shape = attrs["shape"]
    ranges = slice_ranges(shape, attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"])
    out = np.zeros(shape, g.dtype)
    out[tuple(range_to_slice(r) for r in ranges)] = g
    return [out]


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer on uint64 (wrapping arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@reference("random_uniform")
def _random_uniform(ins, attrs):
    key = np.asarray(ins[0]).astype(np.int64).astype(np.uint64)
    shape, d = attrs["shape"], attrs["dtype"].np
    counter = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.uint64)
    bits = splitmix64(splitmix64(key) + counter)
    if d == np.float32:
        u = (bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)
    else:
        u = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return [u.reshape(shape)]


def _with_layout(op: str) -> None:
    """Let the NCHW reference of a windowed op take NHWC activations (layout='NHWC')."""
    activations, weight_outputs = LAYOUT_OPS[op]
    nchw_fn = REFERENCE[op]

    def fn(ins, attrs):
        if attrs.get("layout", "NCHW") == "NCHW":
            return nchw_fn(ins, attrs)
        ins = [np.transpose(a, (0, 3, 1, 2)) if i in activations else a for i, a in enumerate(ins)]
        outs = nchw_fn(ins, attrs)
        return [
            o if i in weight_outputs else np.ascontiguousarray(np.transpose(o, (0, 2, 3, 1)))
            for i, o in enumerate(outs)
        ]

    REFERENCE[op] = fn


for _op in LAYOUT_OPS:
    _with_layout(_op)
