"""Nested containers of arrays ("pytrees"): flatten to leaves and rebuild.

Tuples, lists, dicts and None are containers; arrays and Tensors are leaves; anything
else (Python numbers, strings, objects) is a *static* leaf, kept in the tree definition.
Tree definitions are plain JSON data so a Graph can store and serialize them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

TreeDef = dict[str, Any]


def _json_static(x: Any) -> Any:
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


# The walkers below are module-level functions taking their state as arguments: a
# recursive nested function is a reference cycle (function -> closure cell -> function)
# that would keep the arrays it saw alive until the cyclic garbage collector runs.


def flatten(tree: Any, is_array: Callable[[Any], bool]) -> tuple[list[Any], list[Any], TreeDef]:
    """Returns (array leaves, static leaves, treedef)."""
    arrays: list[Any] = []
    statics: list[Any] = []
    treedef = _flatten(tree, is_array, arrays, statics)
    return arrays, statics, treedef


# The tree definitions of an array leaf and of None: one shared object each (a training
# step flattens dozens of leaves per call; tree definitions are never mutated).
_ARRAY_LEAF: TreeDef = {"kind": "array"}
_NONE_LEAF: TreeDef = {"kind": "none"}


def _flatten(x: Any, is_array, arrays: list, statics: list) -> TreeDef:
    if type(x) is np.ndarray or is_array(x):  # (the first test: the common leaf, cheaply)
        arrays.append(x)
        return _ARRAY_LEAF
    if isinstance(x, dict) and all(isinstance(k, str) for k in x):
        keys = list(x)
        children = [_flatten(x[k], is_array, arrays, statics) for k in keys]
        return {"kind": "dict", "keys": keys, "children": children}
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return {"kind": "tuple", "children": [_flatten(c, is_array, arrays, statics) for c in x]}
    if isinstance(x, list):
        return {"kind": "list", "children": [_flatten(c, is_array, arrays, statics) for c in x]}
    if x is None:
        return _NONE_LEAF
    statics.append(x)
    return {"kind": "static", "value": _json_static(x)}


def unflatten(treedef: TreeDef, arrays: Sequence[Any], statics: Sequence[Any] = ()) -> Any:
    """Rebuild a tree; static leaves come from ``statics`` if given, else from the treedef."""
    return _unflatten(treedef, iter(arrays), iter(statics))


def _unflatten(t: TreeDef, arr_it, st_it) -> Any:
    kind = t["kind"]
    if kind == "array":
        return next(arr_it)
    if kind == "tuple":
        return tuple(_unflatten(c, arr_it, st_it) for c in t["children"])
    if kind == "list":
        return [_unflatten(c, arr_it, st_it) for c in t["children"]]
    if kind == "dict":
        return {
            k: _unflatten(c, arr_it, st_it) for k, c in zip(t["keys"], t["children"], strict=True)
        }
    if kind == "none":
        return None
    if kind == "static":
        return next(st_it, t["value"])
    raise ValueError(f"unknown tree node kind {kind!r}")


def leaf_paths(treedef: TreeDef, prefix: str) -> list[str]:
    """A readable name for every array leaf, e.g. ``params_w1`` or ``xs_0``."""
    out: list[str] = []

    def go(t: TreeDef, path: str) -> None:
        kind = t["kind"]
        if kind == "array":
            out.append(path)
        elif kind in ("tuple", "list"):
            for i, c in enumerate(t["children"]):
                go(c, f"{path}_{i}")
        elif kind == "dict":
            for k, c in zip(t["keys"], t["children"], strict=True):
                go(c, f"{path}_{k}")

    go(treedef, prefix)
    return out


def leaf_keys(treedef: TreeDef) -> list[tuple]:
    """The key path of every array leaf: tuple indices and dict keys from the root."""
    out: list[tuple] = []

    def go(t: TreeDef, path: tuple) -> None:
        kind = t["kind"]
        if kind == "array":
            out.append(path)
        elif kind in ("tuple", "list"):
            for i, c in enumerate(t["children"]):
                go(c, path + (i,))
        elif kind == "dict":
            for k, c in zip(t["keys"], t["children"], strict=True):
                go(c, path + (k,))

    go(treedef, ())
    return out
