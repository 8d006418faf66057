"""Tracing: run a Python function on symbolic Tensors and record an ir.Graph.

Tracing is an interpreter swap: the same op functions that compute eagerly append
nodes to the innermost active Trace instead. Every op called while a trace is active is
recorded (concrete arrays it touches become constants), so the graph is the whole
computation.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from . import pytree
from .backend import is_device_array
from .ir.errors import ShapeError, TraceError
from .ir.graph import Graph, Value
from .ir.symbolic import N
from .ir.types import TensorType


class _TraceStack(threading.local):
    """The active traces of the calling thread: tracing in one thread never turns another
    thread's eager arithmetic into graph nodes."""

    def __init__(self) -> None:
        self.traces: list[Trace] = []


_STACKS = _TraceStack()


def trace_stack() -> list[Trace]:
    """This thread's stack of active traces (innermost last)."""
    return _STACKS.traces


class Trace:
    def __init__(self, name: str, allow_captures: bool = False):
        self.graph = Graph(name)
        self.active = True
        self._constants: dict[object, Value] = {}
        self._keep_alive: list[Any] = []  # ids in _constants stay valid while we trace
        # Tensors of an enclosing trace that the function closes over. A transform (grad)
        # traces with captures allowed: each becomes an extra graph input, fed back in
        # when the transformed graph is replayed in the enclosing trace.
        self.captures: list[Any] | None = [] if allow_captures else None
        self._captured: dict[int, Value] = {}

    def value_of(self, t: Any) -> Value:
        """The graph value of a Tensor; concrete tensors become (deduplicated) constants."""
        from .tensor import Tensor

        assert isinstance(t, Tensor)
        if t._trace is self:
            return t._value
        if t._trace is not None:
            if not t._trace.active:
                raise TraceError(
                    "a traced value escaped from a finished trace (stored in a global or "
                    "closure?) and was used later; return it from the traced function instead"
                )
            if self.captures is None:
                raise NotImplementedError(
                    "nc.trace inside a traced function cannot close over the outer function's "
                    "traced values; pass them as arguments"
                )
            if id(t) not in self._captured:
                v = self.graph.add_input(t._type, self.graph.fresh_name("capture"))
                self._captured[id(t)] = v
                self.captures.append(t)
            return self._captured[id(t)]
        a = t._array
        # Small constants are shared by value (every `x * 2` need not add its own 2).
        key = (a.dtype.str, a.shape, a.tobytes()) if a.size <= 16 else id(a)
        if key not in self._constants:
            self._keep_alive.append(t._array)
            node = self.graph.add_node(
                "constant", [], {"value": t._array}, name=self.graph.fresh_name("c")
            )
            self._constants[key] = node.output
        return self._constants[key]


def current_trace() -> Trace | None:
    stack = _STACKS.traces
    return stack[-1] if stack else None


def is_array_leaf(x: Any) -> bool:
    if isinstance(x, (np.ndarray, np.generic)):  # the common case, checked first: every
        return True  # compiled call flattens its arguments with this
    from .tensor import Tensor

    return isinstance(x, Tensor) or is_device_array(x)


def _arg_names(fn: Callable, n: int) -> list[str]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for i in range(n):
        p = params[i] if i < len(params) else None
        if p is not None and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p is not None and p.kind == p.VAR_POSITIONAL:
            names.append(f"{p.name}{i}")
        else:
            names.append(f"arg{i}")
    return names


def _clean(name: str) -> str:
    return re.sub(r"\W", "_", name) or "x"


def argument_leaves(args: tuple, positions: Collection[int]) -> frozenset[int]:
    """Flat leaf numbers (``pytree.flatten(args, is_array_leaf)`` order) of the arguments
    at ``positions`` (non-negative)."""
    leaves, start = set(), 0
    for k, a in enumerate(args):
        count = len(pytree.flatten(a, is_array_leaf)[0])
        if k in positions:
            leaves.update(range(start, start + count))
        start += count
    return frozenset(leaves)


def batch_shape(shape: tuple, what: str) -> tuple:
    """``shape`` with its leading axis the symbolic batch size."""
    if not shape:
        raise ShapeError(f"{what} is batched (dynamic_batch) but has no axis to batch")
    return (N, *shape[1:])


def trace(
    fn: Callable[..., Any],
    *args: Any,
    name: str | None = None,
    batched_leaves: Collection[int] = (),
) -> Graph:
    """Trace ``fn(*args)`` into an ir.Graph with static shapes and dtypes taken from args.

    Array leaves of ``args`` (NumPy arrays, scalars, Tensors; nested in tuples, lists and
    dicts) become graph inputs; any other argument is static and baked into the graph.
    The leaves numbered in ``batched_leaves`` (flat order) get the symbolic batch size
    ``n`` as their leading dimension instead of their own (see ``ir/symbolic.py``).
    """
    graph, _ = trace_with_captures(fn, args, name, False, batched_leaves)
    return graph


def trace_with_captures(
    fn: Callable[..., Any],
    args: tuple,
    name: str | None = None,
    allow_captures: bool = True,
    batched_leaves: Collection[int] = (),
) -> tuple[Graph, list[Any]]:
    """Like ``trace``; also returns the enclosing trace's Tensors that ``fn`` closed over,
    which were appended to the graph's inputs (after the arguments' leaves)."""
    from .tensor import Tensor, as_tensor

    arrays, statics, in_tree = pytree.flatten(args, is_array_leaf)
    tr = Trace(name or getattr(fn, "__name__", "graph").strip("<>"), allow_captures)
    paths = []
    for argname, sub in zip(_arg_names(fn, len(args)), in_tree["children"], strict=True):
        # dict keys become part of the names (weights like "query/kernel"), and backends
        # use the names as identifiers (CUDA C parameters)
        paths += [_clean(p) for p in pytree.leaf_paths(sub, _clean(argname))]
    trace_stack().append(tr)
    try:
        symbolic = []
        for k, (path, a) in enumerate(zip(paths, arrays, strict=True)):
            concrete = as_tensor(a)
            name_ = tr.graph.free_name(path, path + "_")
            shape = concrete._type.shape
            if k in batched_leaves:
                shape = batch_shape(shape, name_)
            v = tr.graph.add_input(TensorType(shape, concrete._type.dtype), name_)
            symbolic.append(Tensor._symbolic(v, tr))
        result = fn(*pytree.unflatten(in_tree, symbolic, statics))
        out_leaves, out_statics, out_tree = pytree.flatten(result, is_array_leaf)
        if out_statics:
            # Python numbers returned from the function become constant outputs.
            out_leaves, _, out_tree = pytree.flatten(
                result, lambda x: is_array_leaf(x) or isinstance(x, (bool, int, float))
            )
        tr.graph.set_outputs([tr.value_of(as_tensor(x)) for x in out_leaves])
    finally:
        trace_stack().pop()
        tr.active = False
    tr.graph.in_tree, tr.graph.out_tree = in_tree, out_tree
    tr.graph.verify()
    return tr.graph, list(tr.captures or [])
