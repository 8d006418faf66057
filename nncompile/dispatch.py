"""bind: the one place where an op call becomes either an eager computation or a node.

Eager and traced code share everything above this function; only here do they part.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from .backends.numpy import call_reference
from .ir.errors import TraceError
from .ir.graph import infer_or_raise
from .ir.registry import get_op
from .source_location import user_location
from .tensor import Tensor
from .tracing import current_trace


def bind_multi(op: str, *inputs: Tensor, **attrs: Any) -> list[Tensor]:
    return apply_op(op, inputs, attrs)


class _ThreadState(threading.local):
    """Per-thread recording state (another thread's trace must not see it)."""

    def __init__(self) -> None:
        self.loc_override: list[str | None] = []
        self.scope: list[str] = []


_STATE = _ThreadState()


def location_override() -> str | None:
    """The innermost ``source_location_override`` of this thread, if any."""
    overrides = _STATE.loc_override
    return overrides[-1] if overrides else None


class source_location_override:
    """Within this block, recorded nodes get ``loc`` instead of the caller's line (the
    backward pass labels its nodes with the forward node they differentiate)."""

    def __init__(self, loc: str | None):
        self.loc = loc

    def __enter__(self) -> None:
        _STATE.loc_override.append(self.loc)

    def __exit__(self, *exc: object) -> None:
        _STATE.loc_override.pop()


# The scope stack: name_scope pushes a part, scope_override replaces the whole path.
def current_scope() -> str:
    scope = _STATE.scope
    return scope[-1] if scope else ""


class name_scope:
    """Nodes recorded in this block get ``name`` appended to their scope ("dense_1",
    "optimizer"); graph pictures group nodes by scope."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> None:
        outer = current_scope()
        _STATE.scope.append(f"{outer}/{self.name}" if outer else self.name)

    def __exit__(self, *exc: object) -> None:
        _STATE.scope.pop()


class scope_override(name_scope):
    """Nodes recorded in this block get exactly ``scope`` (graph transforms label the nodes
    they derive from a node with that node's scope)."""

    def __enter__(self) -> None:
        _STATE.scope.append(self.name)


def apply_op(
    op: str,
    inputs: Sequence[Tensor],
    attrs: dict[str, Any],
    loc: str | None = None,
    scope: str | None = None,
) -> list[Tensor]:
    """Run ``op`` now (eager) or record it in the innermost trace. ``loc`` and ``scope``
    override the source location and scope (graph transforms pass on the original's)."""
    opdef = get_op(op)
    tr = current_trace()
    if tr is None:
        for t in inputs:
            if t._trace is not None:
                raise TraceError(
                    f"{op}: a traced value escaped from a finished trace and was used eagerly; "
                    "return it from the traced function instead"
                )
        norm, _ = infer_or_raise(opdef, [t._type for t in inputs], attrs, loc=user_location)
        outs = call_reference(op, [t._array for t in inputs], norm)
        return [Tensor._concrete(a) for a in outs]
    values = [tr.value_of(t) for t in inputs]
    if loc is None:
        loc = location_override()
    node = tr.graph.add_node(
        op,
        values,
        attrs,
        loc=loc or user_location,
        scope=current_scope() if scope is None else scope,
    )
    return [Tensor._symbolic(v, tr) for v in node.outputs]


def bind(op: str, *inputs: Tensor, **attrs: Any) -> Tensor:
    """Apply a single-output primitive to tensors (attributes as keywords)."""
    (out,) = bind_multi(op, *inputs, **attrs)
    return out
