"""1-D convolution and pooling (torch.nn.functional's conv1d, max_pool1d, avg_pool1d): each
is its 2-D op on a unit-height image, (N, C, L) -> (N, C, 1, L) (or "NWC" (N, L, C) ->
NHWC (N, 1, L, C)), so it reuses the 2-D GEMM/pooling kernels and their gradients."""

from __future__ import annotations

from typing import Any

from .ir.errors import OpAttributeError, ShapeError
from .nn_ops import avg_pool2d, conv2d, max_pool2d
from .ops import ArrayLike, reshape
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor

_LAYOUTS_2D = {"NCW": "NCHW", "NWC": "NHWC"}


def _single(v: Any, name: str) -> int:
    if isinstance(v, (tuple, list)) and len(v) == 1:
        v = v[0]
    if isinstance(v, int) and not isinstance(v, bool):
        return int(v)
    raise ShapeError(f"{name} must be an int or a 1-tuple of ints, got {v!r}")


def _padding(v: Any) -> Any:
    """A 1-D padding as the 2-D op's: no padding along the unit height."""
    return v if v in ("same", "valid") else (0, _single(v, "padding"))


def _to_2d(op: str, x: Tensor, layout: str) -> tuple[Tensor, str]:
    if layout not in _LAYOUTS_2D:
        raise OpAttributeError(f"{op}: layout must be 'NCW' or 'NWC', got {layout!r}")
    if x.ndim != 3:
        raise ShapeError(f"{op}: expects an {layout} input of rank 3, got {x._type}")
    n, a, b = x.shape
    image = (n, a, 1, b) if layout == "NCW" else (n, 1, a, b)
    return reshape(x, image), _LAYOUTS_2D[layout]


def _from_2d(y: Tensor, layout: str) -> Tensor:
    n, a, b, c = y.shape
    return reshape(y, (n, a, c) if layout == "NCW" else (n, b, c))


@reports_user_line
def conv1d(
    x: ArrayLike,
    w: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NCW",
) -> Tensor:
    """torch.nn.functional.conv1d: x (N, C, L), w (O, C/groups, K), bias (O,); padding an
    int, 'valid' or 'same'. layout='NWC' takes and gives channels-last activations
    (x (N, L, C), as Keras Conv1D); the weights stay (O, C/groups, K)."""
    x, w = as_tensor(x), as_tensor(w)
    if w.ndim != 3:
        raise ShapeError(f"conv1d: weight must be (O, C/groups, K), got {w._type}")
    x2, layout2 = _to_2d("conv1d", x, layout)
    c = x.shape[2] if layout == "NWC" else x.shape[1]
    g = int(groups)
    if g < 1 or w.shape[1] * g != c or w.shape[0] % g:
        raise ShapeError(f"conv1d: input {x._type} and weight {w._type} disagree with groups={g}")
    y = conv2d(
        x2,
        reshape(w, (w.shape[0], w.shape[1], 1, w.shape[2])),
        bias,
        (1, _single(stride, "stride")),
        _padding(padding),
        (1, _single(dilation, "dilation")),
        groups,
        layout2,
    )
    return _from_2d(y, layout)


def _no_ceil(op: str, ceil_mode: bool) -> None:
    if ceil_mode:
        raise NotImplementedError(f"{op}: ceil_mode=True is not supported (floor mode only)")


@reports_user_line
def max_pool1d(
    x: ArrayLike,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    layout: str = "NCW",
) -> Tensor:
    """torch.nn.functional.max_pool1d on (N, C, L) (or 'NWC' (N, L, C)); stride defaults
    to the kernel size."""
    _no_ceil("max_pool1d", ceil_mode)
    x2, layout2 = _to_2d("max_pool1d", as_tensor(x), layout)
    k = _single(kernel_size, "kernel_size")
    s = k if stride is None else _single(stride, "stride")
    d = (1, _single(dilation, "dilation"))
    y = max_pool2d(x2, (1, k), (1, s), _padding(padding), d, False, layout2)
    return _from_2d(y, layout)


@reports_user_line
def avg_pool1d(
    x: ArrayLike,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    layout: str = "NCW",
) -> Tensor:
    """torch.nn.functional.avg_pool1d on (N, C, L) (or 'NWC' (N, L, C)); stride defaults
    to the kernel size, count_include_pad to True."""
    _no_ceil("avg_pool1d", ceil_mode)
    x2, layout2 = _to_2d("avg_pool1d", as_tensor(x), layout)
    k = _single(kernel_size, "kernel_size")
    s = k if stride is None else _single(stride, "stride")
    y = avg_pool2d(x2, (1, k), (1, s), _padding(padding), False, count_include_pad, layout2)
    return _from_2d(y, layout)
