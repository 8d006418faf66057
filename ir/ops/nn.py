"""Compute-heavy ops that get their own kernels: matmul, conv2d, pooling (NCHW / OIHW)."""

from __future__ import annotations

from ..errors import ShapeError
from ..registry import (
    AttrSpec,
    OpDef,
    broadcast_shapes,
    register_op,
    require_kind,
    require_same_dtype,
)
from ..types import TensorType


def _infer_matmul(types, attrs):
    a, b = types
    d = require_same_dtype(types)
    require_kind(a, "numeric")
    if a.rank == 0 or b.rank == 0:
        raise ShapeError("matmul: operands must have rank >= 1")
    a_shape = (1,) + a.shape if a.rank == 1 else a.shape
    b_shape = b.shape + (1,) if b.rank == 1 else b.shape
    if a_shape[-1] != b_shape[-2]:
        raise ShapeError(f"matmul: contracted dims differ ({a.shape} @ {b.shape})")
    batch = broadcast_shapes(a_shape[:-2], b_shape[:-2])
    out = batch + (a_shape[-2],) * (a.rank > 1) + (b_shape[-1],) * (b.rank > 1)
    return [TensorType(out, d)]


def window_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """Output length of a sliding window (floor mode); ShapeError when it does not fit."""
    extent = dilation * (kernel - 1) + 1
    if size + pad_total < extent:
        raise ShapeError(
            f"window of extent {extent} does not fit input {size} + padding {pad_total}"
        )
    return (size + pad_total - extent) // stride + 1


def _check_window_attrs(op: str, attrs, keys) -> None:
    for key in keys:
        v = attrs[key]
        want = 4 if key == "pads" else 2
        low = 0 if key == "pads" else 1
        if len(v) != want or any(x < low for x in v):
            raise ShapeError(f"{op}: {key} must be {want} ints >= {low}, got {v}")


def _spatial(op, x, kernel, attrs):
    sh = window_output_size(
        x.shape[2],
        kernel[0],
        attrs["strides"][0],
        attrs["pads"][0] + attrs["pads"][2],
        attrs["dilations"][0],
    )
    sw = window_output_size(
        x.shape[3],
        kernel[1],
        attrs["strides"][1],
        attrs["pads"][1] + attrs["pads"][3],
        attrs["dilations"][1],
    )
    return sh, sw


LAYOUTS = ("NCHW", "NHWC")


def to_nchw(t: TensorType, layout: str) -> TensorType:
    """The NCHW view of a 4-D type in ``layout`` (NHWC data, channels last)."""
    if layout == "NHWC" and t.rank == 4:
        n, h, w, c = t.shape
        return TensorType((n, c, h, w), t.dtype)
    return t


def from_nchw(t: TensorType, layout: str) -> TensorType:
    if layout == "NHWC" and t.rank == 4:
        n, c, h, w = t.shape
        return TensorType((n, h, w, c), t.dtype)
    return t


# For each windowed op: which inputs are activations (they take the ``layout``), and
# which outputs are weights (OIHW whatever the layout). Shared by inference, the
# reference and the lowering.
LAYOUT_OPS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "conv2d": ((0,), ()),
    "max_pool2d": ((0,), ()),
    "avg_pool2d": ((0,), ()),
    "conv2d_backward_input": ((0,), ()),
    "conv2d_backward_weight": ((0, 1), (0,)),
    "max_pool2d_backward": ((0, 1), ()),
    "avg_pool2d_backward": ((0,), ()),
}


def in_layout(op: str, infer):
    """Wrap an NCHW inference rule so the op also takes and gives NHWC activations."""
    activations, weight_outputs = LAYOUT_OPS[op]

    def wrapped(types, attrs):
        layout = attrs.get("layout", "NCHW")
        nchw = [to_nchw(t, layout) if i in activations else t for i, t in enumerate(types)]
        outs = infer(nchw, attrs)
        return [o if i in weight_outputs else from_nchw(o, layout) for i, o in enumerate(outs)]

    return wrapped


def _infer_conv2d(types, attrs):
    x, w = types
    d = require_same_dtype(types)
    require_kind(x, "float")
    if x.rank != 4 or w.rank != 4:
        raise ShapeError(f"conv2d: expects x NCHW and w OIHW (rank 4), got {x.shape} and {w.shape}")
    _check_window_attrs("conv2d", attrs, ("strides", "pads", "dilations"))
    g = attrs["groups"]
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    if g < 1 or c % g or o % g or cg * g != c:
        raise ShapeError(f"conv2d: channels {c} and weight {w.shape} disagree with groups={g}")
    sh, sw = _spatial("conv2d", x, w.shape[2:], attrs)
    return [TensorType((n, o, sh, sw), d)]


def _infer_pool(op: str):
    def infer(types, attrs):
        (x,) = types
        require_kind(x, "float")
        if x.rank != 4:
            raise ShapeError(f"{op}: expects NCHW input (rank 4), got {x.shape}")
        _check_window_attrs(op, attrs, ("kernel", "strides", "pads", "dilations"))
        k, p = attrs["kernel"], attrs["pads"]
        if max(p[0], p[2]) >= k[0] or max(p[1], p[3]) >= k[1]:
            raise ShapeError(f"{op}: pads {p} must be smaller than the kernel {k}")
        sh, sw = _spatial(op, x, k, attrs)
        return [TensorType(x.shape[:2] + (sh, sw), x.dtype)]

    return infer


_WINDOW = {
    "strides": AttrSpec("ints", (1, 1)),
    "pads": AttrSpec("ints", (0, 0, 0, 0)),
    "dilations": AttrSpec("ints", (1, 1)),
    "layout": AttrSpec("str", "NCHW", LAYOUTS),
}

register_op(OpDef("matmul", _infer_matmul, 2, {}, "contraction", doc="numpy.matmul semantics."))
register_op(
    OpDef(
        "conv2d",
        in_layout("conv2d", _infer_conv2d),
        2,
        {**_WINDOW, "groups": AttrSpec("int", 1)},
        "contraction",
        doc="ONNX Conv without bias: x NCHW (or NHWC with layout='NHWC'), w OIHW; pads "
        "[h_begin, w_begin, h_end, w_end].",
    )
)
register_op(
    OpDef(
        "max_pool2d",
        in_layout("max_pool2d", _infer_pool("max_pool2d")),
        1,
        {"kernel": AttrSpec("ints"), **_WINDOW},
        "contraction",
        doc="ONNX MaxPool (floor mode); padding never wins the max.",
    )
)
register_op(
    OpDef(
        "avg_pool2d",
        in_layout("avg_pool2d", _infer_pool("avg_pool2d")),
        1,
        {"kernel": AttrSpec("ints"), **_WINDOW, "count_include_pad": AttrSpec("bool", False)},
        "contraction",
        doc="ONNX AveragePool (floor mode); count_include_pad defaults to False as in ONNX.",
    )
)
