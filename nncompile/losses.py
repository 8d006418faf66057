"""Losses by Keras name, each a mean over the batch and numerically stable.

``from_logits=True`` takes raw scores; otherwise probabilities, whose logs are clamped
(log(p) >= -100, as PyTorch's BCE does) so a 0 probability gives a large finite loss.
"""

from __future__ import annotations

from collections.abc import Callable

from . import composites as C
from . import ops
from .tensor import Tensor, as_tensor

_LOG_FLOOR = -100.0


def mean_squared_error(y_true, y_pred) -> Tensor:
    return C.mse(y_pred, y_true)


def mean_absolute_error(y_true, y_pred) -> Tensor:
    return C.mae(y_pred, y_true)


def _clamped_log(p: Tensor) -> Tensor:
    return ops.maximum(ops.log(p), _LOG_FLOOR)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> Tensor:
    """Integer labels (N,) against (N, C) logits or probabilities."""
    y_pred = as_tensor(y_pred)
    if from_logits:
        return C.cross_entropy(y_pred, y_true)
    labels = ops.reshape(ops.astype(y_true, "int64"), (-1, 1))
    return -ops.mean(ops.take_along_axis(_clamped_log(y_pred), labels, axis=1))


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> Tensor:
    """One-hot (or soft) labels (N, C) against logits or probabilities."""
    y_pred, y_true = as_tensor(y_pred), as_tensor(y_true)
    if from_logits:
        return C.cross_entropy(y_pred, y_true)
    return -ops.mean(ops.sum(y_true * _clamped_log(y_pred), axis=-1))


def binary_crossentropy(y_true, y_pred, from_logits: bool = False) -> Tensor:
    if from_logits:
        return C.binary_cross_entropy_with_logits(y_pred, y_true)
    return C.binary_cross_entropy(y_pred, y_true)


LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error,
    "mean_absolute_error": mean_absolute_error,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
}


def get(name_or_fn: str | Callable[..., Tensor]) -> Callable[..., Tensor]:
    if callable(name_or_fn):
        return name_or_fn
    try:
        return LOSSES[name_or_fn]
    except KeyError:
        raise ValueError(f"unknown loss {name_or_fn!r}; known: {sorted(LOSSES)}") from None
