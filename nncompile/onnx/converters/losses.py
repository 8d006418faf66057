"""Loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (log_softmax over the
class axis 1, then the same NLL), on nc.nll_loss. The reductions follow ONNX's reference:
"mean" divides by the summed weights of the counted targets when there are weights or an
ignore_index, and by the element count otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .math import float_input

_REDUCTIONS = ("none", "sum", "mean")
# an ignore_index no target can equal: with none given, every target counts (and one out
# of range is refused by nll_loss rather than skipped)
_NO_INDEX = int(np.iinfo(np.int64).min)


def _loss(ctx: NodeContext, log_probs: Any, nll_quirk: bool) -> Any:
    target, weight = ctx.input(1), ctx.optional_input(2)
    reduction = ctx.attr("reduction", "mean")
    ignore_index = ctx.attr("ignore_index", None)
    if reduction not in _REDUCTIONS:
        ctx.unsupported(f"attribute reduction={reduction!r} (ONNX defines {_REDUCTIONS})")
    if np.dtype(target.dtype).kind != "i":
        ctx.unsupported(f"target of dtype {target.dtype} (integer class ids are required)")
    if len(log_probs.shape) < 2:
        ctx.unsupported(f"input of shape {tuple(log_probs.shape)} (needs N and C axes)")
    dtype = np.dtype(log_probs.dtype)
    if weight is not None and np.dtype(weight.dtype) != dtype:
        ctx.unsupported(f"weight of dtype {weight.dtype} with input of dtype {dtype}")
    index = _NO_INDEX if ignore_index is None else int(ignore_index)
    loss = nc.nll_loss(log_probs, target, weight, ignore_index=index, reduction="none")
    if reduction == "none":
        return loss
    if reduction == "sum":
        return nc.sum(loss)
    counted = nc.not_equal(nc.astype(target, np.int64), np.int64(index))
    if weight is not None:
        safe = nc.where(counted, nc.astype(target, np.int64), np.int64(0))
        gathered = nc.where(counted, nc.take(weight, safe, axis=0), np.asarray(0, dtype))
        return nc.divide(nc.sum(loss), nc.sum(gathered))
    # the reference's NegativeLogLikelihoodLoss averages over every element when
    # ignore_index is -1 and there is no weight (ignored ones count as zeros)
    if ignore_index is None or (nll_quirk and ignore_index == -1):
        return nc.mean(loss)
    return nc.divide(nc.sum(loss), nc.sum(nc.astype(counted, dtype)))


@converter("NegativeLogLikelihoodLoss", since=12)
def negative_log_likelihood_loss(ctx: NodeContext) -> list[Any]:
    return [_loss(ctx, float_input(ctx, 0), nll_quirk=True)]


@converter("SoftmaxCrossEntropyLoss", since=12)
def softmax_cross_entropy_loss(ctx: NodeContext) -> list[Any]:
    """Outputs the loss and, when asked for, the log-probabilities."""
    log_probs = nc.log_softmax(float_input(ctx, 0), axis=1)
    return [_loss(ctx, log_probs, nll_quirk=False), log_probs]
