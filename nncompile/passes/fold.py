"""Constant folding: a node whose inputs are all constants is evaluated now, with the
reference ops, and replaced by its result.

Size guard: a result is materialized only if it is no larger than its inputs together
(or at most 4 KiB). So ``expand(scalar)`` to a big shape, or a big random_uniform, stays
a cheap description instead of becoming a huge array in the graph.
"""

from __future__ import annotations

from ..backends.numpy import call_reference
from ..ir.errors import NCError
from ..ir.graph import Graph
from .rewriter import GraphRewriter, constant_value

SMALL_RESULT_BYTES = 4096


def fold_constants(graph: Graph) -> Graph:
    rw = GraphRewriter(graph, "fold")
    for node in graph.nodes:
        inputs = rw.inputs(node)
        arrays = [constant_value(v) for v in inputs]
        if node.op == "constant" or not inputs or any(a is None for a in arrays):
            rw.copy(node)
            continue
        out_bytes = sum(v.type.nbytes for v in node.outputs)
        if out_bytes > max(SMALL_RESULT_BYTES, sum(a.nbytes for a in arrays)):
            rw.copy(node)
            continue
        try:
            results = call_reference(node.op, arrays, node.attrs)
        except NCError:
            rw.copy(node)  # e.g. an out-of-range gather: leave the error to run time
            continue
        for old, a in zip(node.outputs, results, strict=True):
            rw.bind(old, rw.constant(a, loc=node.loc))
    return rw.finish()
