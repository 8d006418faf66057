"""Batch-normalization statistics that data-parallel ranks can add up.

A training step normally returns a batch-norm layer's updated moving mean and variance.
Averaging those over ranks gets the mean right but not the variance: it misses how far
the ranks' batch means lie from each other. While ``collecting()`` is active (the
distributed trainer's gradient function), a batch-norm layer returns its batch's first
and second moments, E[x] and E[x^2] per channel, in place of the moving statistics, and
registers how to finish the update. The ranks' moments, weighted by their rows, sum to
the global batch's; ``finish`` then computes exactly the moving statistics one process
would have computed on the whole global batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

import numpy as np

from ..ir.symbolic import Dim


@dataclass(frozen=True)
class MomentUpdate:
    """How to turn reduced moments into moving statistics: ``new = (1 - momentum) * old
    + momentum * batch`` (PyTorch's convention), with the unbiased variance over
    ``count`` elements per channel (rows times any spatial positions)."""

    momentum: float
    count: float  # elements per channel: in the traced call, or per row (``per_row``)
    mean_key: str
    var_key: str

    def per_row(self, rows: int | Dim) -> MomentUpdate:
        """The update with ``count`` per row of the ``rows`` the call was traced with (both
        multiples of the batch size n in a dynamic-batch trace: their ratio is exact)."""
        if type(rows) is Dim:
            return replace(self, count=float(self.count // rows))
        return replace(self, count=self.count / rows)


_registry: ContextVar[dict[str, list[MomentUpdate]] | None] = ContextVar(
    "batch_moments", default=None
)


@contextmanager
def collecting() -> Iterator[dict[str, list[MomentUpdate]]]:
    """Batch-norm layers traced inside return moments; the dict fills with their updates
    by state owner (the layer, or the wrapper whose state holds it)."""
    found: dict[str, list[MomentUpdate]] = {}
    token = _registry.set(found)
    try:
        yield found
    finally:
        _registry.reset(token)


def active() -> bool:
    return _registry.get() is not None


def register(owner: str, update: MomentUpdate) -> None:
    found = _registry.get()
    if found is not None:
        found.setdefault(owner, []).append(update)


def rename(layer: str, owner: str, prefix: str) -> None:
    """A wrapper stores its inner layer's state under its own name with a key prefix."""
    found = _registry.get()
    if found is None or layer not in found:
        return
    for u in found.pop(layer):
        renamed = replace(u, mean_key=prefix + u.mean_key, var_key=prefix + u.var_key)
        found.setdefault(owner, []).append(renamed)


def finish(
    update: MomentUpdate, rows: int, old: dict, reduced: dict
) -> tuple[np.ndarray, np.ndarray]:
    """The moving (mean, variance) from the old ones and the reduced E[x], E[x^2] of a
    global batch of ``rows`` rows (``update`` counted per row)."""
    mean = reduced[update.mean_key].astype(np.float64)
    square = reduced[update.var_key].astype(np.float64)
    count = update.count * rows
    unbiased = np.maximum(square - mean * mean, 0.0) * (count / max(count - 1.0, 1.0))
    m = update.momentum
    old_mean, old_var = old[update.mean_key], old[update.var_key]
    new_mean = (1 - m) * old_mean.astype(np.float64) + m * mean
    new_var = (1 - m) * old_var.astype(np.float64) + m * unbiased
    return new_mean.astype(old_mean.dtype), new_var.astype(old_var.dtype)
