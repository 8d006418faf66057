"""The per-call fast path of a compiled function.

A training loop calls its step with the same argument structure, shapes and dtypes every
time. The general way still flattens the arguments into a fresh tree definition, builds
and compares the call's signature, and rebuilds the outputs by reading a tree definition
node by node: tens of microseconds per call, the size of a small model's whole step. So
the last signature is also kept as closures built once: one per container that checks a
call's arguments have exactly that structure, shapes and dtypes while it collects the
array leaves, and one per output container that rebuilds the results. A call that does
not match (another structure, shape or dtype, any leaf but a NumPy array or scalar) goes
the general way, which makes the fast path follow its signature instead.

Signatures with static leaves (Python numbers, strings: their values are part of the
signature) have no fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .pytree import TreeDef

Collector = Callable[[Any, list], bool]
Builder = Callable[[Iterator[Any]], Any]


class FastPath:
    """The compiled call of one signature: ``leaves(args)`` or None, then ``run``."""

    def __init__(self, tree: TreeDef, types: list[tuple], executable, out_tree: TreeDef):
        self._collect = _collector(tree, iter(types))
        self._build = _builder(out_tree)
        self._executable = executable

    @staticmethod
    def possible(tree: TreeDef, arrays: list) -> bool:
        """Whether a call with this tree and these array leaves can have a fast path: no
        static leaves, and every array leaf a NumPy array or scalar (a DeviceArray or a
        Tensor always goes the general way, so building a path for it would be waste)."""
        numpy_leaves = all(type(a) is np.ndarray or isinstance(a, np.generic) for a in arrays)
        return numpy_leaves and _no_statics(tree)

    def leaves(self, args: tuple) -> list | None:
        """The array leaves of ``args`` if they have this signature, else None."""
        out: list = []
        return out if self._collect(args, out) else None

    def run(self, arrays: list) -> Any:
        return self._build(iter(self._executable(arrays)))


def _no_statics(tree: TreeDef) -> bool:
    if tree["kind"] == "static":
        return False
    return all(_no_statics(c) for c in tree.get("children", ()))


def _collector(tree: TreeDef, types: Iterator[tuple]) -> Collector:
    kind = tree["kind"]
    if kind == "array":
        shape, dtype = next(types)
        return _array_leaf(shape, np.dtype(dtype))
    if kind == "none":
        return lambda x, out: x is None
    children = [_collector(c, types) for c in tree["children"]]
    if kind == "dict":
        return _dict_node(tuple(tree["keys"]), children)
    return _sequence_node(tuple if kind == "tuple" else list, children)


def _array_leaf(shape: tuple, dtype: np.dtype) -> Collector:
    def leaf(x: Any, out: list) -> bool:
        kind = type(x)
        if kind is np.ndarray:
            same = x.shape == shape and x.dtype == dtype
        else:  # a NumPy scalar (np.float32(1e-3)) has a 0-d signature
            same = issubclass(kind, np.generic) and shape == () and x.dtype == dtype
        out.append(x)
        return same

    return leaf


def _dict_node(keys: tuple, children: list[Collector]) -> Collector:
    pairs = list(zip(keys, children, strict=True))

    def node(x: Any, out: list) -> bool:
        if type(x) is not dict or tuple(x) != keys:  # (flattening follows the key order)
            return False
        for key, child in pairs:
            if not child(x[key], out):
                return False
        return True

    return node


def _sequence_node(kind: type, children: list[Collector]) -> Collector:
    count = len(children)

    def node(x: Any, out: list) -> bool:
        if type(x) is not kind or len(x) != count:
            return False
        for item, child in zip(x, children):  # noqa: B905  (lengths checked above)
            if not child(item, out):
                return False
        return True

    return node


def _builder(tree: TreeDef) -> Builder:
    kind = tree["kind"]
    if kind == "array":
        return next
    if kind == "none":
        return lambda it: None
    if kind == "static":
        value = tree["value"]
        return lambda it: value
    children = [_builder(c) for c in tree["children"]]
    if kind == "dict":
        pairs = list(zip(tree["keys"], children, strict=True))
        return lambda it: {key: child(it) for key, child in pairs}
    if kind == "tuple":
        return lambda it: tuple([child(it) for child in children])
    return lambda it: [child(it) for child in children]
