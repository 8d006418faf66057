"""nll_loss: torch.nn.functional.nll_loss as a composite of gather, where and sums."""

from __future__ import annotations

import numpy as np

from .ir.errors import ConfigError, DTypeError, ShapeError
from .ops import (
    ArrayLike,
    astype,
    equal,
    expand_dims,
    not_equal,
    reshape,
    squeeze,
    sum,
    take,
    where,
)
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor

_REDUCTIONS = ("mean", "sum", "none")


def _check_shapes(log_probs: Tensor, target: Tensor) -> None:
    lp, t = log_probs.shape, target.shape
    if lp[:1] + lp[2:] != t:
        raise ShapeError(
            f"nll_loss: target {target._type} must be log_probs' shape without the class "
            f"axis 1, {lp[:1] + lp[2:]}, for log_probs {log_probs._type}"
        )


def _check_values(target: np.ndarray, classes: int, ignore_index: int) -> None:
    """Eagerly, where the targets are known: torch raises on a class id outside [0, C)."""
    bad = (target != ignore_index) & ((target < 0) | (target >= classes))
    if bad.any():
        raise ShapeError(
            f"nll_loss: target {int(target[bad].flat[0])} is out of bounds for {classes} "
            f"classes (ignore_index is {ignore_index})"
        )


@reports_user_line
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """torch.nn.functional.nll_loss: -weight[t] * log_probs[n, t, ...] for each target t.

    ``log_probs`` is (N, C) or (N, C, d1, ...) (or (C,) with a scalar target); ``target``
    holds integer class ids, shaped like ``log_probs`` without axis 1. Targets equal to
    ``ignore_index`` contribute 0 and do not count. ``reduction="mean"`` divides by the sum
    of the weights of the counted targets (NaN when none counts, as in torch).

    A target outside [0, C) that is not ``ignore_index`` raises ShapeError eagerly. While
    tracing the values are unknown: compiled code (and the reference interpreter) raise
    ExecutionError from a gather of the class ids instead; negative targets are sent out of
    range first so that they raise too instead of wrapping around as NumPy indices would.
    Costs O(N C) (a comparison with every class id), as log_softmax does.
    """
    log_probs, target = as_tensor(log_probs), as_tensor(target)
    if not log_probs._type.dtype.is_float:
        raise DTypeError(f"nll_loss: log_probs must be a float tensor, got {log_probs._type}")
    if not target._type.dtype.is_int:
        raise DTypeError(f"nll_loss: target must hold integer class ids, got {target._type}")
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"nll_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if log_probs.ndim == 0:
        raise ShapeError(f"nll_loss: log_probs must have a class axis, got {log_probs._type}")
    if log_probs.ndim == 1:  # (C,) with a scalar target: a batch of one
        log_probs, target = expand_dims(log_probs, 0), reshape(target, (1,) + target.shape)
        out = nll_loss(log_probs, target, weight, ignore_index, reduction)
        return squeeze(out, 0) if reduction == "none" else out
    _check_shapes(log_probs, target)
    classes = log_probs.shape[1]
    if target._array is not None:
        _check_values(target._array, classes, ignore_index)
    if weight is not None:
        weight = as_tensor(weight)
        if weight.shape != (classes,):
            raise ShapeError(
                f"nll_loss: weight {weight._type} must be ({classes},), one per class of "
                f"log_probs {log_probs._type}"
            )

    target = astype(target, "int64")
    counted = not_equal(target, ignore_index)
    # Ignored targets read class 0 (their term is masked out); negative class ids go to C
    # so that the gather below reports them instead of wrapping around.
    safe = where(counted, where(target < 0, classes, target), 0)
    checked = take(np.arange(classes), safe, axis=0)  # == safe; raises when out of range
    # Pick by comparing with every class id (a reduction over C, like log_softmax's) rather
    # than gathering from log_probs: the CUDA backend cannot yet run a gather with its
    # index check inside a whole-tensor sum (NotImplementedError), which mean/sum would be.
    class_ids = np.arange(classes).reshape((1, classes) + (1,) * (log_probs.ndim - 2))
    hit = equal(expand_dims(checked, 1), class_ids)
    picked = sum(where(hit, log_probs, 0.0), 1)
    if weight is None:
        w = astype(counted, log_probs._type.dtype)
    else:
        per_class = reshape(astype(weight, log_probs._type.dtype), class_ids.shape)
        w = where(counted, sum(where(hit, per_class, 0.0), 1), 0.0)
    loss = where(counted, -picked * w, 0.0)  # not 0 * picked: an ignored -inf would be NaN
    if reduction == "none":
        return loss
    if reduction == "sum":
        return sum(loss)
    return sum(loss) / sum(w)


__all__ = ["nll_loss"]
