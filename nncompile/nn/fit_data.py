"""The arrays Keras-style training hands to compiled functions: short batches padded,
trees copied to and from the GPU or in memory, and the eager stand-in for a compiled
function (``run_eagerly``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import pytree
from ..backend import is_device_array
from ..tracing import is_array_leaf


def pad_rows(chunk: np.ndarray, batch_size: int, full: bool = False) -> np.ndarray:
    """``chunk`` with zero rows appended up to the next power of two (at most batch_size),
    or up to batch_size with ``full``."""
    n = len(chunk)
    size = batch_size if full else min(batch_size, 1 << max(n - 1, 0).bit_length())
    if size == n:
        return chunk
    pad = np.zeros((size - n, *chunk.shape[1:]), chunk.dtype)
    return np.concatenate([chunk, pad])


def to_device(tree: Any) -> Any:
    """The tree with its arrays copied to the GPU (DeviceArrays)."""
    from ..backends.cuda.executable import DeviceArray

    return _map_arrays(tree, lambda a: DeviceArray.from_numpy(np.asarray(a)))


def to_host(tree: Any) -> Any:
    """The tree with its DeviceArrays copied back into NumPy arrays."""
    return _map_arrays(tree, lambda a: a.numpy() if is_device_array(a) else a)


def _map_arrays(tree: Any, fn: Callable[[Any], Any]) -> Any:
    leaves, statics, treedef = pytree.flatten(tree, is_array_leaf)
    return pytree.unflatten(treedef, [fn(a) for a in leaves], statics)


def eager(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` op by op on NumPy and return NumPy leaves, like a compiled function."""

    def run(*args: Any) -> Any:
        leaves, statics, tree = pytree.flatten(fn(*args), is_array_leaf)
        return pytree.unflatten(tree, [np.asarray(leaf) for leaf in leaves], statics)

    return run


def data_dtype(a: Any) -> Any:
    """The dtype of a subclassed model's input before it is built: int64 for class ids,
    float32 otherwise."""
    return np.int64 if np.issubdtype(np.asarray(a).dtype, np.integer) else np.float32


def copied(tree: Any) -> Any:
    """A copy of a nested dict of arrays (weights, optimizer state)."""
    if isinstance(tree, dict):
        return {k: copied(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(copied(v) for v in tree)
    return np.array(tree) if isinstance(tree, np.ndarray) else tree
