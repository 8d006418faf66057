"""Neural-network ops with PyTorch's functional signatures (NCHW / OIHW layout)."""

from __future__ import annotations

from typing import Any

from .dispatch import bind
from .ir.errors import ShapeError
from .ops import ArrayLike, add, promote_operands, reshape
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor


def _pair(v: Any, name: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, int) for i in v):
        return (int(v[0]), int(v[1]))
    raise ShapeError(f"{name} must be an int or a pair of ints, got {v!r}")


@reports_user_line
def same_pads(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int, int]:
    """ONNX SAME_UPPER (= TensorFlow/Keras 'same'): output ceil(size / stride); an odd total
    pad puts the extra row/column at the end. With stride 1 this is PyTorch's 'same'."""
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
        out = -(-n // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return (begin[0], begin[1], end[0], end[1])


def _spatial(x: Tensor, layout: str) -> tuple[int, int]:
    return x.shape[1:3] if layout == "NHWC" else x.shape[2:4]


def _pads(
    padding: Any, x: Tensor, kernel, stride, dilation, layout: str
) -> tuple[int, int, int, int]:
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        return same_pads(_spatial(x, layout), kernel, stride, dilation)
    ph, pw = _pair(padding, "padding")
    return (ph, pw, ph, pw)


def _require_image(op: str, x: Tensor, layout: str) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{op}: expects an {layout} input of rank 4, got {x._type}")


@reports_user_line
def conv2d(
    x: ArrayLike,
    w: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NCHW",
) -> Tensor:
    """torch.nn.functional.conv2d: x (N, C, H, W), w (O, C/groups, kH, kW), bias (O,);
    padding an int, a pair, 'valid' or 'same'. layout='NHWC' takes and gives channels-last
    activations (x (N, H, W, C)); the weights stay OIHW."""
    x, w = promote_operands(x, w)
    _require_image("conv2d", x, layout)
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    kernel = w.shape[2:4] if w.ndim == 4 else (1, 1)
    pads = _pads(padding, x, kernel, stride, dilation, layout)
    y = bind(
        "conv2d",
        x,
        w,
        strides=stride,
        pads=pads,
        dilations=dilation,
        groups=int(groups),
        layout=layout,
    )
    if bias is not None:
        bias = as_tensor(bias)
        channels = y.shape[3] if layout == "NHWC" else y.shape[1]
        if bias.shape != (channels,):
            raise ShapeError(f"conv2d: bias {bias._type} must have shape ({channels},)")
        y = add(y, bias if layout == "NHWC" else reshape(bias, (1, -1, 1, 1)))
    return y


def _pool_args(op: str, x: Tensor, kernel_size, stride, padding, dilation, ceil_mode, layout):
    if ceil_mode:
        raise NotImplementedError(f"{op}: ceil_mode=True is not supported (floor mode only)")
    _require_image(op, x, layout)
    kernel = _pair(kernel_size, "kernel_size")
    strides = kernel if stride is None else _pair(stride, "stride")
    dilation = _pair(dilation, "dilation")
    return kernel, strides, _pads(padding, x, kernel, strides, dilation, layout), dilation


@reports_user_line
def max_pool2d(
    x: ArrayLike,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    layout: str = "NCHW",
) -> Tensor:
    """torch.nn.functional.max_pool2d: stride defaults to the kernel size."""
    x = as_tensor(x)
    k, s, p, d = _pool_args(
        "max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode, layout
    )
    return bind("max_pool2d", x, kernel=k, strides=s, pads=p, dilations=d, layout=layout)


@reports_user_line
def avg_pool2d(
    x: ArrayLike,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    layout: str = "NCHW",
) -> Tensor:
    """torch.nn.functional.avg_pool2d: count_include_pad defaults to True (ONNX: False)."""
    x = as_tensor(x)
    k, s, p, d = _pool_args("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode, layout)
    return bind(
        "avg_pool2d",
        x,
        kernel=k,
        strides=s,
        pads=p,
        dilations=d,
        count_include_pad=bool(count_include_pad),
        layout=layout,
    )
