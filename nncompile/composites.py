"""Composite functions: written once on the primitives, eager and traced alike.

Each uses the numerically stable form (shifted exponentials, |x| tricks), so logits of
±1e4 neither overflow nor produce NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .ir.errors import DTypeError, ShapeError
from .ir.registry import broadcasts_to
from .ops import (
    ArrayLike,
    Axis,
    abs,
    erf,
    exp,
    log,
    matmul,
    max,
    maximum,
    mean,
    minimum,
    reshape,
    sqrt,
    square,
    squeeze,
    stop_gradient,
    sum,
    take_along_axis,
    tanh,
    transpose,
    where,
)
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor


def _float_tensor(x: ArrayLike, what: str) -> Tensor:
    x = as_tensor(x)
    if not x._type.dtype.is_float:
        raise DTypeError(f"{what}: expects a float tensor, got {x._type}")
    return x


def match_target(pred: ArrayLike, target: ArrayLike, what: str) -> tuple[Tensor, Tensor]:
    """A prediction and its target, shaped to meet element by element (Keras' rule): when
    their ranks differ by one and the longer shape ends in 1, that axis is squeezed, so
    (n, 1) outputs meet (n,) labels instead of broadcasting to (n, n). After that the target
    must broadcast to the prediction's shape (a scalar, or a row against a matrix);
    anything else is a ShapeError naming both shapes."""
    pred, target = as_tensor(pred), as_tensor(target)
    p_shape, t_shape = pred.shape, target.shape
    if pred.ndim == target.ndim + 1 and p_shape[-1] == 1:
        pred = squeeze(pred, -1)
    elif target.ndim == pred.ndim + 1 and t_shape[-1] == 1:
        target = squeeze(target, -1)
    if not broadcasts_to(target.shape, pred.shape):
        raise ShapeError(
            f"{what}: target shape {t_shape} does not match prediction shape {p_shape}"
        )
    return pred, target


def _shift(m: Tensor) -> Tensor:
    """The max used to shift exponentials: a row that is all -inf has max -inf, and
    shifting by it would give NaN, so use 0 there. The shift cancels mathematically, so
    no gradient flows through it (as in JAX), which keeps the backward pass small."""
    return stop_gradient(where(abs(m) < math.inf, m, 0.0))


@reports_user_line
def logsumexp(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    x = _float_tensor(x, "logsumexp")
    m = _shift(max(x, axis, keepdims=True))
    out = log(sum(exp(x - m), axis, keepdims=True)) + m
    if keepdims:
        return out
    return sum(out, axis, keepdims=False)  # drop the kept size-1 axes exactly


@reports_user_line
def softmax(x: ArrayLike, axis: int = -1) -> Tensor:
    x = _float_tensor(x, "softmax")
    e = exp(x - _shift(max(x, axis, keepdims=True)))
    return e / sum(e, axis, keepdims=True)


@reports_user_line
def log_softmax(x: ArrayLike, axis: int = -1) -> Tensor:
    x = _float_tensor(x, "log_softmax")
    shifted = x - _shift(max(x, axis, keepdims=True))
    return shifted - log(sum(exp(shifted), axis, keepdims=True))


@reports_user_line
def cross_entropy(logits: ArrayLike, labels: ArrayLike) -> Tensor:
    """Mean over the batch of -log softmax(logits)[label]. ``logits`` is (N, C); ``labels``
    is (N,) integer class ids, or (N, C) one-hot / probability rows."""
    logits = _float_tensor(logits, "cross_entropy")
    labels = as_tensor(labels)
    if logits.ndim != 2:
        raise ShapeError(f"cross_entropy: logits must be (N, C), got {logits._type}")
    lp = log_softmax(logits, axis=1)
    if labels._type.dtype.is_int:
        if labels.shape != logits.shape[:1]:
            raise ShapeError(
                f"cross_entropy: integer labels {labels._type} must be (N,) "
                f"for logits {logits._type}"
            )
        picked = take_along_axis(lp, reshape(labels, (-1, 1)), axis=1)
        return -mean(picked)
    if labels.shape != logits.shape:
        raise ShapeError(
            f"cross_entropy: one-hot labels {labels._type} must match logits {logits._type}"
        )
    return -mean(sum(labels * lp, axis=1))


@reports_user_line
def binary_cross_entropy(probs: ArrayLike, target: ArrayLike) -> Tensor:
    """Mean BCE from probabilities; log terms are clamped at -100 as PyTorch does."""
    p, t = match_target(
        _float_tensor(probs, "binary_cross_entropy"), target, "binary_cross_entropy"
    )
    return -mean(t * maximum(log(p), -100.0) + (1 - t) * maximum(log(1 - p), -100.0))


@reports_user_line
def binary_cross_entropy_with_logits(logits: ArrayLike, target: ArrayLike) -> Tensor:
    """Mean BCE from logits: max(x, 0) - x t + log(1 + e^-|x|), which never overflows."""
    what = "binary_cross_entropy_with_logits"
    x, t = match_target(_float_tensor(logits, what), target, what)
    return mean(maximum(x, 0.0) - x * t + log(1 + exp(-abs(x))))


@reports_user_line
def mse(pred: ArrayLike, target: ArrayLike) -> Tensor:
    """Mean squared error over all elements (shapes matched by ``match_target``)."""
    pred, target = match_target(pred, target, "mse")
    return mean(square(pred - target))


@reports_user_line
def mae(pred: ArrayLike, target: ArrayLike) -> Tensor:
    """Mean absolute error over all elements (shapes matched by ``match_target``)."""
    pred, target = match_target(pred, target, "mae")
    return mean(abs(pred - target))


@reports_user_line
def linear(x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None) -> Tensor:
    """torch.nn.functional.linear: x @ weight.T + bias, weight of shape (out, in)."""
    y = matmul(x, transpose(as_tensor(weight)))
    return y if bias is None else y + bias


@reports_user_line
def gelu(x: ArrayLike, approximate: str = "none") -> Tensor:
    x = _float_tensor(x, "gelu")
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1 + tanh(inner))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))


@reports_user_line
def leaky_relu(x: ArrayLike, negative_slope: float = 0.01) -> Tensor:
    x = as_tensor(x)
    return where(x > 0, x, x * negative_slope)


@reports_user_line
def elu(x: ArrayLike, alpha: float = 1.0) -> Tensor:
    x = _float_tensor(x, "elu")
    return where(x > 0, x, alpha * (exp(minimum(x, 0.0)) - 1))


@reports_user_line
def softplus(x: ArrayLike, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """torch.nn.functional.softplus: log(1 + e^(beta x)) / beta, linear above threshold."""
    x = _float_tensor(x, "softplus")
    bx = x * beta
    smooth = (maximum(bx, 0.0) + log(1 + exp(-abs(bx)))) / beta
    return where(bx > threshold, x, smooth)


@reports_user_line
def layer_norm(
    x: ArrayLike,
    normalized_shape: int | Sequence[int],
    weight: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """torch.nn.functional.layer_norm: normalize over the trailing ``normalized_shape``."""
    x = _float_tensor(x, "layer_norm")
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or x.shape[x.ndim - k :] != shape:
        raise ShapeError(f"layer_norm: normalized_shape {shape} does not end {x._type}")
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = mean(x, axes, keepdims=True)
    centered = x - mu
    y = centered / sqrt(mean(square(centered), axes, keepdims=True) + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "elu",
    "gelu",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "logsumexp",
    "mae",
    "mse",
    "softmax",
    "softplus",
]
