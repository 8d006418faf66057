"""Splitting and batching helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..ir.errors import ConfigError, ShapeError


def check_same_length(*arrays: Any) -> int:
    lengths = {len(a) for a in arrays if a is not None}
    if len(lengths) > 1:
        raise ShapeError(f"inputs and labels differ in length: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def train_test_split(
    x: np.ndarray,
    y: np.ndarray,
    test_fraction: float = 0.2,
    seed: int | None = 0,
    stratify: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A shuffled split; ``stratify`` keeps each class's share the same in both parts."""
    n = check_same_length(x, y)
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    if stratify:
        test = []
        for label in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == label))
            test.append(members[: int(round(len(members) * test_fraction))])
        is_test = np.zeros(n, bool)
        is_test[np.concatenate(test)] = True
        order = rng.permutation(n)
        train_idx, test_idx = order[~is_test[order]], order[is_test[order]]
    else:
        order = rng.permutation(n)
        cut = n - int(round(n * test_fraction))
        train_idx, test_idx = order[:cut], order[cut:]
    return (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx])


def split_tail(x: Any, y: Any, fraction: float) -> tuple[tuple, tuple]:
    """Keras' validation_split: the last ``fraction`` of the samples, taken before shuffling."""
    n = check_same_length(x, y)
    if not 0 < fraction < 1:
        raise ConfigError(f"validation_split must be in (0, 1), got {fraction}")
    cut = n - int(n * fraction)
    if cut <= 0 or cut >= n:
        raise ConfigError(f"validation_split={fraction} leaves no data on one side ({n} samples)")
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def batch_slices(
    n: int, batch_size: int, shuffle: bool = False, rng: np.random.Generator | None = None
) -> Iterator[np.ndarray]:
    """Index arrays of consecutive batches covering 0..n-1 (the last one may be smaller)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    order = (rng or np.random.default_rng()).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]
