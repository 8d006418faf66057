"""Dead-code elimination: drop nodes whose outputs no graph output depends on."""

from __future__ import annotations

from ..ir.graph import Graph
from .rewriter import GraphRewriter


def live_nodes(graph: Graph) -> set[int]:
    """ids of the nodes some graph output depends on."""
    live: set[int] = set()
    stack = [v.producer for v in graph.outputs if v.producer is not None]
    while stack:
        node = stack.pop()
        if id(node) in live:
            continue
        live.add(id(node))
        stack.extend(v.producer for v in node.inputs if v.producer is not None)
    return live


def eliminate_dead_code(graph: Graph) -> Graph:
    live = live_nodes(graph)
    rw = GraphRewriter(graph, "dce")
    for node in graph.nodes:
        if id(node) in live:
            rw.copy(node)
    return rw.finish()
