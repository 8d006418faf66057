"""Transposed convolution (torch.nn.functional.conv_transpose2d / conv_transpose1d) as the
adjoint of conv2d in its input: conv_transpose2d(x, w) IS conv2d_backward_input(x, w) for
the convolution whose output is x. torch's transposed weight (C_in, C_out/groups, kH, kW)
is that convolution's OIHW weight as is (O = C_in, C/groups = C_out/groups, groups split
both channel axes the same way), so it lowers through the same GEMM + col2im kernel as
conv2d's input gradient, and its gradients are conv2d and conv2d_backward_weight."""

from __future__ import annotations

from typing import Any

from .dispatch import bind
from .ir.errors import OpAttributeError, ShapeError
from .nn_ops import _pair
from .nn_ops_1d import _from_2d, _single, _to_2d
from .ops import ArrayLike, add, pad, promote_operands, reshape
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor


def _int_pair(v: Any, name: str) -> tuple[int, int]:
    if isinstance(v, str):
        raise OpAttributeError(f"conv_transpose2d: {name} must be ints, got {v!r}")
    return _pair(v, name)


def _axis_plan(op: str, size: int, k: int, s: int, p: int, op_: int, d: int):
    """(output length, conv input length, end pad, zero rows appended) along one axis.

    torch's output is (size-1)*s - 2p + d*(k-1) + output_padding + 1. The adjoint conv
    must map that length back to ``size``, so its end pad is p - output_padding; when that
    is negative the last output_padding - p rows lie beyond every window and are zeros."""
    if s < 1 or d < 1 or p < 0 or op_ < 0:
        raise ShapeError(f"{op}: stride/dilation must be >= 1, padding >= 0, got {s}, {d}, {p}")
    if op_ >= s and op_ >= d:
        raise ShapeError(
            f"{op}: output_padding {op_} must be smaller than stride {s} or dilation {d}"
        )
    out = (size - 1) * s - 2 * p + d * (k - 1) + op_ + 1
    if out < 1:
        raise ShapeError(f"{op}: input length {size} gives an empty output ({out})")
    end = p - op_
    if end >= 0:
        return out, out, end, 0
    return out, out + end, 0, -end


@reports_user_line
def conv_transpose2d(
    x: ArrayLike,
    w: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    layout: str = "NCHW",
) -> Tensor:
    """torch.nn.functional.conv_transpose2d: x (N, C_in, H, W), w (C_in, C_out/groups, kH,
    kW), bias (C_out,); padding and output_padding ints or pairs. layout='NHWC' takes and
    gives channels-last activations; the weight layout stays torch's."""
    x, w = promote_operands(x, w)
    if layout not in ("NCHW", "NHWC"):
        raise OpAttributeError(f"conv_transpose2d: layout must be 'NCHW' or 'NHWC', got {layout!r}")
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(
            f"conv_transpose2d: expects x {layout} and w (C_in, C_out/groups, kH, kW) of rank 4, "
            f"got {x._type} and {w._type}"
        )
    g = int(groups)
    c_in = x.shape[3] if layout == "NHWC" else x.shape[1]
    if g < 1 or c_in % g or w.shape[0] != c_in:
        raise ShapeError(
            f"conv_transpose2d: input channels {c_in} and weight {w._type} disagree with groups={g}"
        )
    stride, dilation = _int_pair(stride, "stride"), _int_pair(dilation, "dilation")
    pads, outp = _int_pair(padding, "padding"), _int_pair(output_padding, "output_padding")
    hw = x.shape[1:3] if layout == "NHWC" else x.shape[2:4]
    plans = [
        _axis_plan(
            "conv_transpose2d", hw[i], w.shape[2 + i], stride[i], pads[i], outp[i], dilation[i]
        )
        for i in range(2)
    ]
    y = bind(
        "conv2d_backward_input",
        x,
        w,
        input_hw=(plans[0][1], plans[1][1]),
        strides=stride,
        pads=(pads[0], pads[1], plans[0][2], plans[1][2]),
        dilations=dilation,
        groups=g,
        layout=layout,
    )
    if plans[0][3] or plans[1][3]:
        h_axis = 1 if layout == "NHWC" else 2
        widths = [(0, 0)] * 4
        widths[h_axis], widths[h_axis + 1] = (0, plans[0][3]), (0, plans[1][3])
        y = pad(y, widths)
    if bias is not None:
        bias = as_tensor(bias)
        channels = w.shape[1] * g
        if bias.shape != (channels,):
            raise ShapeError(f"conv_transpose2d: bias {bias._type} must have shape ({channels},)")
        y = add(y, bias if layout == "NHWC" else reshape(bias, (1, -1, 1, 1)))
    return y


@reports_user_line
def conv_transpose1d(
    x: ArrayLike,
    w: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    layout: str = "NCW",
) -> Tensor:
    """torch.nn.functional.conv_transpose1d: x (N, C_in, L), w (C_in, C_out/groups, K),
    bias (C_out,); layout='NWC' for channels-last activations. Runs as conv_transpose2d on
    a unit-height image."""
    x, w = as_tensor(x), as_tensor(w)
    if w.ndim != 3:
        raise ShapeError(f"conv_transpose1d: weight must be (C_in, C_out/groups, K), got {w._type}")
    x2, layout2 = _to_2d("conv_transpose1d", x, layout)
    y = conv_transpose2d(
        x2,
        reshape(w, (w.shape[0], w.shape[1], 1, w.shape[2])),
        bias,
        (1, _single(stride, "stride")),
        (0, _single(padding, "padding")),
        (0, _single(output_padding, "output_padding")),
        groups,
        (1, _single(dilation, "dilation")),
        layout2,
    )
    return _from_2d(y, layout)
