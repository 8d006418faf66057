"""The readable text form of a graph: one line per node."""

from __future__ import annotations

import numpy as np

from .graph import Graph, Node

_MAX_INLINE = 6  # constants with at most this many elements print their values


def format_attr(v: object) -> str:
    if isinstance(v, np.ndarray):
        if v.size <= _MAX_INLINE:
            return np.array2string(v.reshape(-1) if v.ndim > 1 else v, separator=",")
        return f"<{v.dtype}{list(v.shape)}>"
    if isinstance(v, tuple):
        return "[" + ",".join(map(str, v)) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def format_node(node: Node) -> str:
    outs = ", ".join(f"%{v.name}" for v in node.outputs)
    args = ", ".join(f"%{v.name}" for v in node.inputs)
    attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items())
    types = ", ".join(str(v.type) for v in node.outputs)
    line = f"{outs} = {node.op}({args})"
    if [v.name for v in node.outputs] != [node.name]:
        line = f"{node.name}: {line}"  # the node's own name, when it is not its output's
    if attrs:
        line += " {" + attrs + "}"
    line = f"{line:<60} : {types}"
    if node.loc:
        line += f"  # {node.loc}"
    return line


def format_graph(graph: Graph) -> str:
    params = ", ".join(repr(v) for v in graph.inputs)
    results = ", ".join(f"%{v.name}: {v.type}" for v in graph.outputs)
    lines = [f"graph {graph.name}({params}) -> ({results}) {{"]
    lines += ["  " + format_node(n) for n in graph.nodes]
    lines.append("  return " + ", ".join(f"%{v.name}" for v in graph.outputs))
    lines.append("}")
    return "\n".join(lines)
