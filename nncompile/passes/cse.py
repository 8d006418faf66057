"""Common-subexpression elimination: one node per (op, inputs, attributes).

Every primitive is pure (random_uniform included: its key is an input), so two nodes
with equal op, inputs and attributes compute the same value. Constants are merged by
value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.graph import Graph
from .rewriter import GraphRewriter


def _attr_key(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, float) and v != v:
        return ("nan",)
    return (type(v).__name__, v)


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    rw = GraphRewriter(graph, "cse")
    seen: dict[Any, list] = {}
    for node in graph.nodes:
        inputs = rw.inputs(node)
        key = (
            node.op,
            tuple(id(v) for v in inputs),
            tuple(sorted((k, _attr_key(v)) for k, v in node.attrs.items())),
        )
        if key in seen:
            for old, new in zip(node.outputs, seen[key], strict=True):
                rw.bind(old, new)
            continue
        seen[key] = rw.copy(node)
    return rw.finish()
