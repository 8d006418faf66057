"""nc.run: execute a graph on the NumPy reference interpreter."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import pytree
from .backends.numpy import run_graph
from .ir.graph import Graph
from .tracing import is_array_leaf


def run(graph: Graph, *args: Any) -> Any:
    """Run ``graph`` on the reference backend. Pass the arguments as to the traced
    function (static arguments are ignored), or the flat list of input arrays. Returns
    NumPy arrays in the traced function's output structure."""
    arrays, _, _ = pytree.flatten(args, is_array_leaf)
    outs = run_graph(graph, [np.asarray(a) for a in arrays])
    if graph.out_tree is None:
        return outs[0] if len(outs) == 1 else tuple(outs)
    return pytree.unflatten(graph.out_tree, outs)
