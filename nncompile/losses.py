"""Losses by Keras name, each a mean over the batch and numerically stable.

Predictions and targets are matched as Keras does (``composites.match_target``): a
trailing size-1 axis is squeezed when the ranks differ by one, so a ``Dense(1)`` output
(n, 1) meets labels (n,) element by element; other mismatches are a ShapeError.

``from_logits=True`` takes raw scores; otherwise probabilities, whose logs are clamped
(log(p) >= -100, as PyTorch's BCE does) so a 0 probability gives a large finite loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import composites as C
from . import ops
from .tensor import Tensor, as_tensor

__all__ = [
    "LOSSES",
    "PER_SAMPLE",
    "binary_crossentropy",
    "categorical_crossentropy",
    "get",
    "mean_absolute_error",
    "mean_squared_error",
    "per_sample",
    "sparse_categorical_crossentropy",
]

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
    y_pred, y_true = C.match_target(y_pred, y_true, "categorical_crossentropy")
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


# ---- per-sample forms ------------------------------------------------------------------
# The same losses without the mean over the batch: one value per sample, so an evaluation
# can pad its last batch and count only the real samples.


def _mean_per_sample(t: Tensor) -> Tensor:
    """The mean over every axis but the first (batch) axis."""
    return ops.mean(t, tuple(range(1, t.ndim))) if t.ndim > 1 else t


def _log_probs(y_pred: Any, from_logits: bool) -> Tensor:
    y_pred = as_tensor(y_pred)
    return C.log_softmax(y_pred, axis=-1) if from_logits else _clamped_log(y_pred)


def _sparse_ce_per_sample(y_true, y_pred, from_logits: bool = False) -> Tensor:
    labels = ops.reshape(ops.astype(y_true, "int64"), (-1, 1))
    picked = ops.take_along_axis(_log_probs(y_pred, from_logits), labels, axis=1)
    return -ops.reshape(picked, (-1,))


def _categorical_ce_per_sample(y_true, y_pred, from_logits: bool = False) -> Tensor:
    y_pred, y_true = C.match_target(y_pred, y_true, "categorical_crossentropy")
    terms = ops.sum(y_true * _log_probs(y_pred, from_logits), axis=-1)
    return -_mean_per_sample(terms)


def _bce_per_sample(y_true, y_pred, from_logits: bool = False) -> Tensor:
    x, t = C.match_target(y_pred, y_true, "binary_crossentropy")
    if from_logits:
        terms = ops.maximum(x, 0.0) - x * t + ops.log(1 + ops.exp(-ops.abs(x)))
    else:
        terms = -(t * _clamped_log(x) + (1 - t) * _clamped_log(1 - x))
    return _mean_per_sample(terms)


def _mse_per_sample(y_true, y_pred, from_logits: bool = False) -> Tensor:
    y_pred, y_true = C.match_target(y_pred, y_true, "mse")
    return _mean_per_sample(ops.square(y_pred - y_true))


def _mae_per_sample(y_true, y_pred, from_logits: bool = False) -> Tensor:
    y_pred, y_true = C.match_target(y_pred, y_true, "mae")
    return _mean_per_sample(ops.abs(y_pred - y_true))


PER_SAMPLE: dict[str, Callable[..., Tensor]] = {
    "mse": _mse_per_sample,
    "mae": _mae_per_sample,
    "sparse_categorical_crossentropy": _sparse_ce_per_sample,
    "categorical_crossentropy": _categorical_ce_per_sample,
    "binary_crossentropy": _bce_per_sample,
}
for _alias, _name in (("mean_squared_error", "mse"), ("mean_absolute_error", "mae")):
    PER_SAMPLE[_alias] = PER_SAMPLE[_name]


def per_sample(name_or_fn: Any) -> Callable[..., Tensor] | None:
    """The per-sample form of a loss given by name (None for user functions)."""
    return PER_SAMPLE.get(name_or_fn) if isinstance(name_or_fn, str) else None


def get(name_or_fn: str | Callable[..., Tensor]) -> Callable[..., Tensor]:
    if callable(name_or_fn):
        return name_or_fn
    try:
        return LOSSES[name_or_fn]
    except KeyError:
        raise ValueError(f"unknown loss {name_or_fn!r}; known: {sorted(LOSSES)}") from None
