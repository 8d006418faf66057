"""What makes two calls of a compiled function the same compiled graph.

A compiled graph bakes in its static arguments (anything that is not an array leaf), so
its cache key must tell apart every two statics the function could treat differently:
``0.0`` and ``-0.0`` (1/x), ``1``, ``1.0`` and ``True`` (the result dtype), two arrays that
differ in one element. Keys are built from types and exact values, never ``==`` (which
equates all of those) and never ``repr`` (which elides the middle of large arrays).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np


def static_key(x: Any) -> Any:
    """An exact, hashable key for one static leaf."""
    kind = type(x)
    if x is None or kind in (bool, int, str, bytes):
        return (kind, x)
    if kind is float:
        return (float, x.hex())  # tells -0.0 from 0.0; NaN equals NaN
    if kind is complex:
        return (complex, x.real.hex(), x.imag.hex())
    if isinstance(x, np.ndarray) or (hasattr(x, "__array__") and hasattr(x, "shape")):
        # Arrays baked in as constants (inside a namedtuple, a torch tensor): by content.
        a = np.asarray(x.detach() if hasattr(x, "detach") else x)
        return (kind, a.dtype.str, a.shape, a.tobytes())
    if isinstance(x, (tuple, list)):
        return (kind, tuple(static_key(v) for v in x))
    if isinstance(x, dict):
        return (kind, tuple((static_key(k), static_key(v)) for k, v in x.items()))
    if isinstance(x, (set, frozenset)):
        return (kind, frozenset(static_key(v) for v in x))
    try:
        hash(x)
    except TypeError:
        # An unhashable object (a mutable config): by identity; the cache entry keeps it
        # alive so the id is not reused. Mutating it in place is not seen (documented).
        return (kind, "id", id(x))
    return (kind, "value", x)


def structure_key(tree: dict) -> Any:
    """A hashable form of a tree definition without its static values (``static_key``
    covers those exactly)."""
    kind = tree["kind"]
    children = tree.get("children")
    if children is None:
        return kind
    keys = tuple(tree.get("keys", ()))
    return (kind, keys, tuple(structure_key(c) for c in children))


def positional_call(
    fn: Callable[..., Any], args: tuple, kwargs: dict
) -> tuple[Callable[..., Any], tuple, tuple[str, ...]]:
    """Bind keyword arguments to ``fn``'s parameters: (function to trace, positional
    arguments, names of the keyword-only parameters moved to the end of them).
    Positional parameters given by keyword take their place, so ``f(x, s=2)`` and
    ``f(x, 2)`` share one compiled graph; defaults are filled in."""
    from .ir.errors import TraceError

    try:
        signature = inspect.signature(fn)
        bound = signature.bind(*args, **kwargs)
    except (TypeError, ValueError) as e:
        name = getattr(fn, "__name__", fn)
        raise TraceError(f"cannot call {name!r} with these arguments: {e}") from None
    bound.apply_defaults()
    if not bound.kwargs:
        return fn, tuple(bound.args), ()
    names = tuple(bound.kwargs)
    values = tuple(bound.kwargs[n] for n in names)
    n = len(bound.args)

    def call(*flat: Any) -> Any:
        return fn(*flat[:n], **dict(zip(names, flat[n:], strict=True)))

    # The traced graph's inputs are named after the parameters.
    positional: list[str] = []
    for p in signature.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            positional += [f"{p.name}{i}" for i in range(n - len(positional))]
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional.append(p.name)
    params = [
        inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for p in positional[:n] + list(names)
    ]
    call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    call.__name__ = getattr(fn, "__name__", "fn")
    return call, tuple(bound.args) + values, names
