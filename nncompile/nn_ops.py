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


def _pads(padding: Any, x: Tensor, kernel, stride, dilation) -> tuple[int, int, int, int]:
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        return same_pads(x.shape[2:4], kernel, stride, dilation)
    ph, pw = _pair(padding, "padding")
    return (ph, pw, ph, pw)


def _require_nchw(op: str, x: Tensor) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{op}: expects an NCHW input of rank 4, got {x._type}")


@reports_user_line
def conv2d(
    x: ArrayLike,
    w: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """torch.nn.functional.conv2d: x (N, C, H, W), w (O, C/groups, kH, kW), bias (O,);
    padding an int, a pair, 'valid' or 'same'."""
    x, w = promote_operands(x, w)
    _require_nchw("conv2d", x)
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    kernel = w.shape[2:4] if w.ndim == 4 else (1, 1)
    pads = _pads(padding, x, kernel, stride, dilation)
    y = bind("conv2d", x, w, strides=stride, pads=pads, dilations=dilation, groups=int(groups))
    if bias is not None:
        bias = as_tensor(bias)
        if bias.shape != (y.shape[1],):
            raise ShapeError(f"conv2d: bias {bias._type} must have shape ({y.shape[1]},)")
        y = add(y, reshape(bias, (1, -1, 1, 1)))
    return y


def _pool_args(op: str, x: Tensor, kernel_size, stride, padding, dilation, ceil_mode):
    if ceil_mode:
        raise NotImplementedError(f"{op}: ceil_mode=True is not supported (floor mode only)")
    _require_nchw(op, x)
    kernel = _pair(kernel_size, "kernel_size")
    strides = kernel if stride is None else _pair(stride, "stride")
    dilation = _pair(dilation, "dilation")
    return kernel, strides, _pads(padding, x, kernel, strides, dilation), dilation


@reports_user_line
def max_pool2d(
    x: ArrayLike,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> Tensor:
    """torch.nn.functional.max_pool2d: stride defaults to the kernel size."""
    x = as_tensor(x)
    k, s, p, d = _pool_args("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    return bind("max_pool2d", x, kernel=k, strides=s, pads=p, dilations=d)


@reports_user_line
def avg_pool2d(
    x: ArrayLike,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """torch.nn.functional.avg_pool2d: count_include_pad defaults to True (ONNX: False)."""
    x = as_tensor(x)
    k, s, p, d = _pool_args("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    return bind(
        "avg_pool2d",
        x,
        kernel=k,
        strides=s,
        pads=p,
        dilations=d,
        count_include_pad=bool(count_include_pad),
    )
