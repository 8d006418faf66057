"""The graph interpreter: runs an ir.Graph node by node on the reference ops."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...ir.errors import DTypeError, ExecutionError, ShapeError
from ...ir.graph import Graph, Value
from ...ir.symbolic import batch_of, bound_batch, concrete, concrete_attrs
from .reference import REFERENCE


def call_reference(
    op: str, arrays: Sequence[np.ndarray], attrs: dict[str, Any]
) -> list[np.ndarray]:
    """Evaluate one primitive. Floating-point exceptions (overflow, 0/0, invalid casts)
    give IEEE results silently, as compiled code will."""
    try:
        fn = REFERENCE[op]
    except KeyError:
        raise NotImplementedError(
            f"the NumPy reference has no implementation of op {op!r}"
        ) from None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # np.asarray: some NumPy functions return scalars for 0-d results.
        return [np.asarray(a) for a in fn(list(arrays), attrs)]


def check_input(value: Value, array: Any, position: int, n: int | None = None) -> np.ndarray:
    """The array for graph input ``value``, or a clear error. No silent casts. ``n``: the
    batch size bound for a dynamic-batch graph."""
    a = np.asarray(array)
    want = value.type
    if a.dtype != want.dtype.np:
        raise DTypeError(f"input {position} (%{value.name}) expects {want.dtype}, got {a.dtype}")
    if a.shape != (want.shape if n is None else concrete(want.shape, n)):
        raise ShapeError(
            f"input {position} (%{value.name}) expects shape {want.shape}, got {a.shape}"
        )
    return a


def run_graph(graph: Graph, arrays: Sequence[Any]) -> list[np.ndarray]:
    """Run ``graph`` on flat input arrays; returns the flat list of output arrays."""
    env = evaluate_graph(graph, arrays)
    # Outputs must not alias the caller's inputs or the graph's constants.
    return [np.array(env[id(v)], copy=True) for v in graph.outputs]


def evaluate_graph(graph: Graph, arrays: Sequence[Any]) -> dict[int, np.ndarray]:
    """Every value of ``graph`` (keyed by ``id(value)``) on flat input arrays."""
    if len(arrays) != len(graph.inputs):
        raise ExecutionError(
            f"graph {graph.name} takes {len(graph.inputs)} inputs, got {len(arrays)}"
        )
    shapes = [np.shape(a) for a in arrays]
    n = batch_of([v.shape for v in graph.inputs], shapes, "input")
    env: dict[int, np.ndarray] = {}
    for i, (v, a) in enumerate(zip(graph.inputs, arrays, strict=True)):
        env[id(v)] = check_input(v, a, i, n)
    with bound_batch(n):
        for node in graph.nodes:
            _evaluate_node(node, env, n)
    return env


def _evaluate_node(node, env: dict[int, np.ndarray], n: int | None) -> None:
    attrs = node.attrs if n is None else concrete_attrs(node.attrs, n)
    outs = call_reference(node.op, [env[id(v)] for v in node.inputs], attrs)
    for v, a in zip(node.outputs, outs, strict=True):
        want = v.shape if n is None else concrete(v.shape, n)
        if a.shape != want or a.dtype != v.dtype.np:
            raise ExecutionError(
                f"reference of {node.op} (node {node.name}) returned {a.dtype}{list(a.shape)}, "
                f"expected {v.type}"
            )
        env[id(v)] = a
