"""Wide concats become trees of concats of at most ``MAX_CONCAT_INPUTS`` inputs each.

Lowering stores a concat piece by piece, one loop nest per input (lowering/kernels.py).
An RNN unrolled over hundreds of steps stacks hundreds of states, and its gradient joins
hundreds of per-step cotangents: one kernel would hold hundreds of loops, and LLVM's loop
passes cost (loops x function size) on it (a 1000-way concat: 8.6 s). As a tree, every
kernel stores at most ``MAX_CONCAT_INPUTS`` pieces, for one more copy of the data per
level (two levels up to 4096 inputs).
"""

from __future__ import annotations

from ..ir.graph import Graph, Node, Value
from .rewriter import GraphRewriter

MAX_CONCAT_INPUTS = 64


def split_wide_concats(graph: Graph) -> Graph:
    rw = GraphRewriter(graph, "concat")
    for node in graph.nodes:
        if node.op != "concat" or len(node.inputs) <= MAX_CONCAT_INPUTS:
            rw.copy(node)
            continue
        parts: list[Value] = rw.inputs(node)
        while len(parts) > MAX_CONCAT_INPUTS:
            step = MAX_CONCAT_INPUTS
            chunks = [parts[k : k + step] for k in range(0, len(parts), step)]
            parts = [c[0] if len(c) == 1 else _concat(rw, node, c) for c in chunks]
        out = rw.emit("concat", parts, node.attrs, node.loc, name=node.name, scope=node.scope)
        rw.bind(node.outputs[0], out)
    return rw.finish()


def _concat(rw: GraphRewriter, node: Node, parts: list[Value]) -> Value:
    return rw.emit("concat", parts, node.attrs, node.loc, scope=node.scope)
