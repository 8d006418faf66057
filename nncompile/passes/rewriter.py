"""GraphRewriter: rebuild a graph node by node; the common machinery of every pass.

A pass walks the source graph in order and, per node, either copies it or emits other
nodes in its place; ``value(v)`` maps a source value to its replacement. Passes stay
pure (``Graph -> Graph``): the source graph is never modified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..ir.graph import Graph, Node, Value


class GraphRewriter:
    def __init__(self, src: Graph, prefix: str):
        self.src = src
        self.dst = Graph(src.name)
        self.prefix = prefix  # names of new nodes; never clashes with copied ones
        self._map: dict[int, Value] = {}
        for v in src.inputs:
            self._map[id(v)] = self.dst.add_input(v.type, v.name)

    def value(self, v: Value) -> Value:
        return self._map[id(v)]

    def inputs(self, node: Node) -> list[Value]:
        return [self._map[id(v)] for v in node.inputs]

    def bind(self, old: Value, new: Value) -> None:
        """Record that source value ``old`` is now ``new``."""
        if new.type != old.type:
            raise AssertionError(f"rewrite changed %{old.name} from {old.type} to {new.type}")
        self._map[id(old)] = new

    def emit(
        self,
        op: str,
        inputs: Sequence[Value],
        attrs: dict[str, Any] | None = None,
        loc: str | None = None,
        name: str | None = None,
        scope: str = "",
    ) -> Value:
        name = (
            self.dst.fresh_name(self.prefix)
            if name is None
            else self.dst.free_name(name, self.prefix)
        )
        return self.dst.add_node(op, inputs, attrs or {}, name=name, loc=loc, scope=scope).output

    def constant(self, array: np.ndarray, loc: str | None = None) -> Value:
        # (np.ascontiguousarray would turn a 0-d array into a 1-d one)
        contiguous = array if array.flags.c_contiguous else np.array(array, order="C")
        return self.emit("constant", [], {"value": contiguous}, loc=loc)

    def copy(self, node: Node) -> list[Value]:
        """Copy ``node`` with its inputs remapped; keeps its name when free."""
        name = self.dst.free_name(node.name, self.prefix)
        multi = len(node.outputs) > 1
        out_names = None
        if multi:
            out_names = [
                v.name if not self.dst.has_name(v.name) else f"{name}.{i}"
                for i, v in enumerate(node.outputs)
            ]
        inputs = self.inputs(node)
        if all(a.type == b.type for a, b in zip(inputs, node.inputs, strict=True)):
            # Same operand types: the node's attributes and types hold as they are (graph
            # passes copy every node of big graphs several times; verify re-infers).
            types, attrs = [v.type for v in node.outputs], dict(node.attrs)
            new = self.dst.add_inferred(
                node.op, tuple(inputs), attrs, types, name, node.loc, out_names, node.scope
            )
        else:
            new = self.dst.add_node(
                node.op,
                inputs,
                node.attrs,
                name=name,
                loc=node.loc,
                output_names=out_names,
                scope=node.scope,
            )
        for old, v in zip(node.outputs, new.outputs, strict=True):
            self._map[id(old)] = v
        return list(new.outputs)

    def finish(self) -> Graph:
        self.dst.set_outputs([self._map[id(v)] for v in self.src.outputs])
        self.dst.in_tree, self.dst.out_tree = self.src.in_tree, self.src.out_tree
        return self.dst


def rewrite_nodes(
    graph: Graph, prefix: str, replacement: Callable[[GraphRewriter, Node], Value | None]
) -> Graph:
    """The graph with each node copied, or its single output bound to what
    ``replacement(rw, node)`` returns instead when that is not None."""
    rw = GraphRewriter(graph, prefix)
    for node in graph.nodes:
        new = replacement(rw, node)
        if new is None:
            rw.copy(node)
        else:
            rw.bind(node.outputs[0], new)
    return rw.finish()


def use_counts(graph: Graph) -> dict[int, int]:
    """How many times each value (by id) is read: as a node's input or a graph output."""
    uses: dict[int, int] = {}
    for node in graph.nodes:
        for v in node.inputs:
            uses[id(v)] = uses.get(id(v), 0) + 1
    for v in graph.outputs:
        uses[id(v)] = uses.get(id(v), 0) + 1
    return uses


def producer_op(v: Value) -> str | None:
    return v.producer.op if v.producer is not None else None


def constant_value(v: Value) -> np.ndarray | None:
    """The array of a value produced by a constant node, else None."""
    if v.producer is not None and v.producer.op == "constant":
        return v.producer.attrs["value"]
    return None


def is_scalar_constant(v: Value, x: float) -> bool:
    """True if ``v`` is a constant whose every element equals ``x`` (and is not NaN)."""
    a = constant_value(v)
    return a is not None and a.size > 0 and bool(np.all(a == x))
