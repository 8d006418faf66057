"""Feed-forward building blocks: dense, convolution, pooling, flatten, dropout, batch norm,
embedding and activations by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import activations as A
from .. import composites as C
from .. import ops
from ..dispatch import bind
from ..ir.errors import ShapeError
from ..ir.symbolic import Dim
from ..nn_ops import avg_pool2d, conv2d, max_pool2d
from ..tensor import Tensor, as_tensor

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "relu": ops.relu,
    "sigmoid": ops.sigmoid,
    "tanh": ops.tanh,
    "softmax": lambda x: C.softmax(x, axis=-1),
    "log_softmax": lambda x: C.log_softmax(x, axis=-1),
    "gelu": C.gelu,
    "elu": C.elu,
    "leaky_relu": C.leaky_relu,
    "softplus": C.softplus,
    "relu6": A.relu6,
    "silu": A.silu,
    "swish": A.silu,  # Keras' other name for silu
    "hardswish": ops.hardswish,
    "hardtanh": A.hardtanh,
}


def activation(x: Any, name: str | Callable | None) -> Tensor:
    if name is None:
        return as_tensor(x)
    if callable(name):
        return name(x)
    try:
        return ACTIVATIONS[name](as_tensor(x))
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}") from None


def dense(x: Any, kernel: Any, bias: Any = None, act: str | Callable | None = None) -> Tensor:
    """Keras Dense: x @ kernel + bias with a kernel of shape (in, out)."""
    y = matmul_last_axis(x, kernel)
    if bias is not None:
        y = y + bias
    return activation(y, act)


def matmul_last_axis(x: Any, w: Any) -> Tensor:
    """x @ w over x's last axis. Leading axes fold into the rows first, so it is one
    matrix product (and so is its weight gradient) rather than a batch of small ones."""
    x = as_tensor(x)
    if x.ndim <= 2 or as_tensor(w).ndim != 2:
        return ops.matmul(x, w)
    rows = ops.reshape(x, (-1, x.shape[-1]))
    return ops.reshape(ops.matmul(rows, w), x.shape[:-1] + (as_tensor(w).shape[1],))


def _layout(x: Any, data_format: str) -> tuple[Tensor, str]:
    """The op layout for Keras' data_format. channels_last data goes to the NHWC ops as it
    is: no transposes around every layer (the lowering handles both layouts)."""
    x = as_tensor(x)
    if x.ndim != 4:
        raise ShapeError(f"expected 4-D image data, got {x._type}")
    layouts = {"channels_last": "NHWC", "channels_first": "NCHW"}
    if data_format not in layouts:
        raise ValueError("data_format must be 'channels_last' or 'channels_first'")
    return x, layouts[data_format]


def conv2d_layer(
    x: Any,
    kernel: Any,
    bias: Any = None,
    strides: Any = 1,
    padding: str | Any = "valid",
    dilation: Any = 1,
    groups: int = 1,
    data_format: str = "channels_last",
    act: str | Callable | None = None,
) -> Tensor:
    """A convolution layer: ``kernel`` is OIHW; the data is NHWC (channels_last) or NCHW."""
    x, layout = _layout(x, data_format)
    y = conv2d(x, kernel, bias, strides, padding, dilation, groups, layout=layout)
    return activation(y, act)


def max_pool(
    x: Any,
    pool_size: Any = 2,
    strides: Any = None,
    padding: str | Any = "valid",
    data_format: str = "channels_last",
) -> Tensor:
    x, layout = _layout(x, data_format)
    return max_pool2d(x, pool_size, strides, padding, layout=layout)


def avg_pool(
    x: Any,
    pool_size: Any = 2,
    strides: Any = None,
    padding: str | Any = "valid",
    data_format: str = "channels_last",
) -> Tensor:
    """Average pooling; padded cells are not counted (as Keras does)."""
    x, layout = _layout(x, data_format)
    return avg_pool2d(x, pool_size, strides, padding, count_include_pad=False, layout=layout)


def flatten(x: Any) -> Tensor:
    """(N, ...) -> (N, prod(...)), in the data's own element order."""
    x = as_tensor(x)
    return ops.reshape(x, (x.shape[0], -1)) if x.ndim != 2 else x


def dropout(x: Any, rate: float, key: Any, training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability ``rate`` and scale the rest
    by 1 / (1 - rate). The mask comes from ``key`` (an int64 scalar input), so a graph
    stays a pure function and different keys give different masks."""
    x = as_tensor(x)
    if not training or rate == 0:
        return x
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    u = bind("random_uniform", ops.astype(key, "int64"), shape=x.shape, dtype=x._type.dtype)
    return ops.where(u >= rate, x * (1 / (1 - rate)), 0)


def batch_norm(
    x: Any,
    gamma: Any,
    beta: Any,
    running_mean: Any,
    running_var: Any,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
    axis: int = 1,
) -> tuple[Tensor, Tensor, Tensor]:
    """torch.nn.functional.batch_norm over channel ``axis`` (1 for NCHW, -1 for NHWC).
    Training normalizes with the batch's biased variance and updates the running stats with
    the unbiased one; inference uses the running stats. Returns (y, mean, var)."""
    x = as_tensor(x)
    axis %= x.ndim
    reduce = tuple(i for i in range(x.ndim) if i != axis)
    shape = tuple(d if i == axis else 1 for i, d in enumerate(x.shape))
    rm, rv = as_tensor(running_mean), as_tensor(running_var)
    if training:
        mean = ops.mean(x, reduce, keepdims=True)
        centered = x - mean
        var = ops.mean(centered * centered, reduce, keepdims=True)
        n = x.size // max(x.shape[axis], 1)
        if type(n) is Dim:  # a symbolic batch: n / (n - 1) computed at run time
            count = ops.batch_size(n, var.dtype)
            correction = count / ops.maximum(count - 1, 1)
        else:
            correction = n / max(n - 1, 1)
        unbiased = ops.reshape(var, rm.shape) * correction
        new_mean = (1 - momentum) * rm + momentum * ops.reshape(mean, rm.shape)
        new_var = (1 - momentum) * rv + momentum * unbiased
    else:
        mean, var = ops.reshape(rm, shape), ops.reshape(rv, shape)
        centered = x - mean
        new_mean, new_var = rm, rv
    y = centered / ops.sqrt(var + eps) * ops.reshape(gamma, shape) + ops.reshape(beta, shape)
    return y, new_mean, new_var


def embedding(ids: Any, table: Any) -> Tensor:
    """Rows of ``table`` (vocab, dim) for integer ``ids`` of any shape."""
    return ops.take(table, ids, axis=0)
