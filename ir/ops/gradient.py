"""Primitives that gradients need: the adjoints of conv2d, pooling, gather and slice, plus
a counter-based random source (dropout masks from a key passed in as an input)."""

from __future__ import annotations

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError
from ..registry import (
    AttrSpec,
    OpDef,
    normalize_axis,
    register_op,
    require_kind,
    require_same_dtype,
)
from ..types import TensorType, check_shape
from .movement import axis_length, slice_ranges
from .nn import _WINDOW, _infer_conv2d, _infer_pool, in_layout


def _expect(op: str, what: str, got, want) -> None:
    if tuple(got) != tuple(want):
        raise ShapeError(f"{op}: {what} is {tuple(got)}, expected {tuple(want)}")


def _infer_conv_bwd_input(types, attrs):
    g, w = types
    d = require_same_dtype(types)
    require_kind(g, "float")
    if g.rank != 4 or w.rank != 4:
        raise ShapeError("conv2d_backward_input: g and w must have rank 4")
    h, wd = check_shape(attrs["input_hw"], "input_hw")
    x = TensorType((g.shape[0], w.shape[1] * attrs["groups"], h, wd), d)
    fwd = {k: attrs[k] for k in ("strides", "pads", "dilations", "groups")}
    (y,) = _infer_conv2d([x, w], fwd)  # the forward conv these are the adjoint of (NCHW)
    _expect("conv2d_backward_input", "g's shape", g.shape, y.shape)
    return [x]


def _infer_conv_bwd_weight(types, attrs):
    x, g = types
    d = require_same_dtype(types)
    require_kind(x, "float")
    if x.rank != 4 or g.rank != 4:
        raise ShapeError("conv2d_backward_weight: x and g must have rank 4")
    groups = attrs["groups"]
    if groups < 1 or x.shape[1] % groups:
        raise ShapeError(f"conv2d_backward_weight: {x.shape[1]} channels, groups={groups}")
    kh, kw = check_shape(attrs["kernel"], "kernel")
    w = TensorType((g.shape[1], x.shape[1] // groups, kh, kw), d)
    fwd = {k: attrs[k] for k in ("strides", "pads", "dilations", "groups")}
    (y,) = _infer_conv2d([x, w], fwd)
    _expect("conv2d_backward_weight", "g's shape", g.shape, y.shape)
    return [w]


def _infer_max_pool_bwd(types, attrs):
    x, g = types
    require_same_dtype(types)
    (y,) = _infer_pool("max_pool2d_backward")([x], attrs)
    _expect("max_pool2d_backward", "g's shape", g.shape, y.shape)
    return [x]


def _infer_avg_pool_bwd(types, attrs):
    (g,) = types
    if g.rank != 4:
        raise ShapeError(f"avg_pool2d_backward: g must be NCHW, got {g.shape}")
    h, w = check_shape(attrs["input_hw"], "input_hw")
    x = TensorType(g.shape[:2] + (h, w), g.dtype)
    fwd = {k: attrs[k] for k in ("kernel", "strides", "pads", "dilations")}
    (y,) = _infer_pool("avg_pool2d_backward")([x], fwd)
    _expect("avg_pool2d_backward", "g's shape", g.shape, y.shape)
    return [x]


def _infer_scatter_add(types, attrs):
    g, idx = types
    require_kind(idx, "int", "indices")
    shape = check_shape(attrs["shape"], "shape")
    if not shape:
        raise ShapeError("scatter_add: the target must have rank >= 1")
    axis = normalize_axis(attrs["axis"], len(shape))
    _expect("scatter_add", "updates' shape", g.shape, shape[:axis] + idx.shape + shape[axis + 1 :])
    return [TensorType(shape, g.dtype)]


def _infer_scatter_elements_add(types, attrs):
    g, idx = types
    require_kind(idx, "int", "indices")
    shape = check_shape(attrs["shape"], "shape")
    normalize_axis(attrs["axis"], len(shape))
    _expect("scatter_elements_add", "updates' shape", g.shape, idx.shape)
    if len(shape) != idx.rank or any(
        i != attrs["axis"] % len(shape) and n > m
        for i, (n, m) in enumerate(zip(idx.shape, shape, strict=True))
    ):
        raise ShapeError(f"scatter_elements_add: indices {idx.shape} do not fit target {shape}")
    return [TensorType(shape, g.dtype)]


def _infer_slice_backward(types, attrs):
    (g,) = types
    shape = check_shape(attrs["shape"], "shape")
    ranges = slice_ranges(shape, attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"])
    _expect("slice_backward", "g's shape", g.shape, tuple(axis_length(r) for r in ranges))
    return [TensorType(shape, g.dtype)]


def _infer_random_uniform(types, attrs):
    (key,) = types
    if key.shape != ():
        raise ShapeError(f"random_uniform: key must be a scalar, got {key}")
    require_kind(key, "int", "key")
    if not attrs["dtype"].is_float:
        raise DTypeError(f"random_uniform: dtype must be a float, got {attrs['dtype']}")
    return [TensorType(check_shape(attrs["shape"]), attrs["dtype"])]


_CONV = {**_WINDOW, "groups": AttrSpec("int", 1)}
_SLICE = {k: AttrSpec("ints") for k in ("shape", "starts", "ends", "axes", "steps")}

register_op(
    OpDef(
        "conv2d_backward_input",
        in_layout("conv2d_backward_input", _infer_conv_bwd_input),
        2,
        {**_CONV, "input_hw": AttrSpec("ints")},
        "contraction",
        doc="(g, w) -> dx: the adjoint of conv2d in its input (a transposed convolution).",
    )
)
register_op(
    OpDef(
        "conv2d_backward_weight",
        in_layout("conv2d_backward_weight", _infer_conv_bwd_weight),
        2,
        {**_CONV, "kernel": AttrSpec("ints")},
        "contraction",
        doc="(x, g) -> dw: the adjoint of conv2d in its weight.",
    )
)
register_op(
    OpDef(
        "max_pool2d_backward",
        in_layout("max_pool2d_backward", _infer_max_pool_bwd),
        2,
        {"kernel": AttrSpec("ints"), **_WINDOW},
        "contraction",
        doc="(x, g) -> dx: each window's g goes to its first maximal element (PyTorch's "
        "tie rule); overlapping windows add up.",
    )
)
register_op(
    OpDef(
        "avg_pool2d_backward",
        in_layout("avg_pool2d_backward", _infer_avg_pool_bwd),
        1,
        {
            "kernel": AttrSpec("ints"),
            **_WINDOW,
            "count_include_pad": AttrSpec("bool", False),
            "input_hw": AttrSpec("ints"),
        },
        "contraction",
        doc="g -> dx: the adjoint of avg_pool2d.",
    )
)
register_op(
    OpDef(
        "scatter_add",
        _infer_scatter_add,
        2,
        {"axis": AttrSpec("int"), "shape": AttrSpec("ints")},
        "scatter",
        doc="(updates, indices) -> zeros(shape) with updates added at the gathered places: "
        "the adjoint of gather.",
    )
)
register_op(
    OpDef(
        "scatter_elements_add",
        _infer_scatter_elements_add,
        2,
        {"axis": AttrSpec("int"), "shape": AttrSpec("ints")},
        "scatter",
        doc="The adjoint of gather_elements (take_along_axis).",
    )
)
register_op(
    OpDef(
        "slice_backward",
        _infer_slice_backward,
        1,
        _SLICE,
        "movement",
        doc="g -> zeros(shape) with g written at the slice's places: the adjoint of slice.",
    )
)
register_op(
    OpDef(
        "random_uniform",
        _infer_random_uniform,
        1,
        {"shape": AttrSpec("ints"), "dtype": AttrSpec("dtype", dt.float32)},
        "source",
        doc="Uniform [0, 1) numbers from an int64 key: a counter-based hash (splitmix64 of "
        "key and flat index), so every backend draws the same numbers.",
    )
)
