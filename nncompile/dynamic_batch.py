"""Which arguments of a dynamic-batch compile carry the batch (``nc.compile(fn,
dynamic_batch=...)``): their leading axis becomes the symbolic size ``n`` of the traced
graph (ir/symbolic.py), so one native compile serves every batch size.

- ``True``: every top-level array argument whose leading size equals that of the first
  top-level array argument (containers such as a parameter dict are never batched);
- a dict ``{"x": 0, "y": 0}``: those parameters, by name (axis 0 is the only one);
- a tuple of argnums.

A batched argument that is a container has all its leaves batched.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from .ir.errors import ConfigError, ShapeError
from .tracing import argument_leaves, is_array_leaf

DynamicBatch = bool | dict[str, int] | tuple[int, ...] | list[int] | None


def check_spec(spec: DynamicBatch) -> DynamicBatch:
    """Validate ``dynamic_batch`` when the function is compiled (not on its first call)."""
    if spec is None or spec is False or spec is True:
        return spec or None
    if isinstance(spec, dict):
        for name, axis in spec.items():
            if not isinstance(name, str) or isinstance(axis, bool) or not isinstance(axis, int):
                raise ConfigError(
                    f"dynamic_batch maps parameter names to axes ({{'x': 0}}), got {spec!r}"
                )
            if axis != 0:
                raise NotImplementedError(
                    f"dynamic_batch: only the leading axis can be the batch (got {name!r}: "
                    f"{axis}); move the batch axis first"
                )
        return dict(spec)
    if isinstance(spec, (tuple, list)) and all(
        isinstance(k, int) and not isinstance(k, bool) for k in spec
    ):
        return tuple(spec)
    raise ConfigError(
        f"dynamic_batch must be True, a dict of parameter names to 0, or a tuple of "
        f"argnums; got {spec!r}"
    )


def batched_arguments(fn: Callable[..., Any], args: tuple, spec: DynamicBatch) -> list[int]:
    """Positions of the arguments (after keywords became positions) that carry the batch."""
    if spec is None:
        return []
    if spec is True:
        arrays = [k for k, a in enumerate(args) if is_array_leaf(a) and len(np.shape(a)) >= 1]
        if not arrays:
            raise ShapeError("dynamic_batch=True needs an array argument with a leading axis")
        lead = np.shape(args[arrays[0]])[0]
        return [k for k in arrays if np.shape(args[k])[0] == lead]
    if isinstance(spec, dict):
        names = _parameter_names(fn)
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ConfigError(
                f"dynamic_batch names {unknown}, which are not parameters of "
                f"{getattr(fn, '__name__', fn)} ({names})"
            )
        return sorted(names.index(name) for name in spec if names.index(name) < len(args))
    out = []
    for k in spec:
        if not -len(args) <= k < len(args):
            raise ConfigError(f"dynamic_batch argnum {k} is out of range for {len(args)} arguments")
        out.append(k % len(args))
    return sorted(set(out))


def batched_leaves(fn: Callable[..., Any], args: tuple, spec: DynamicBatch) -> frozenset[int]:
    """Flat leaf numbers (``pytree.flatten(args, is_array_leaf)`` order) that carry the
    batch."""
    return argument_leaves(args, set(batched_arguments(fn, args, spec)))


def _parameter_names(fn: Callable[..., Any]) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
