"""The tensor-level IR: a Graph of Nodes that consume and produce Values.

Nodes are kept in topological order (a node only reads values defined before it).
Graphs are built with ``add_input`` / ``add_node`` / ``set_outputs``; passes build new
graphs rather than editing old ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .dtypes import DType
from .errors import AttributeError_, DTypeError, GraphError, NCError, ShapeError
from .registry import OpDef, get_op
from .types import Shape, TensorType

Loc = str | Callable[[], str | None] | None


class Value:
    """One tensor in a graph: a graph input, or the output of a node."""

    __slots__ = ("type", "name", "producer", "index")

    def __init__(self, type: TensorType, name: str, producer: Node | None = None, index: int = 0):
        self.type = type
        self.name = name
        self.producer = producer
        self.index = index

    @property
    def shape(self) -> Shape:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    __slots__ = ("op", "inputs", "attrs", "outputs", "name", "loc", "scope")

    def __init__(
        self,
        op: str,
        inputs: tuple[Value, ...],
        attrs: dict[str, Any],
        name: str,
        loc: str | None = None,
        scope: str = "",
    ):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.outputs: tuple[Value, ...] = ()
        self.name = name
        self.loc = loc
        # where the node came from, "/"-separated: a layer name ("dense_1"), and for
        # derived nodes the part of a training step ("backward/dense_1", "optimizer")
        self.scope = scope

    @property
    def opdef(self) -> OpDef:
        return get_op(self.op)

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise GraphError(f"node {self.name} ({self.op}) has {len(self.outputs)} outputs")
        return self.outputs[0]

    def __repr__(self) -> str:
        return f"<Node {self.name}: {self.op}>"


def describe_operands(types: Iterable[TensorType]) -> str:
    return ", ".join(str(t) for t in types)


def infer_or_raise(
    opdef: OpDef, types: list[TensorType], attrs: Mapping[str, Any], loc: Loc = None
) -> tuple[dict[str, Any], list[TensorType]]:
    """Normalize attributes and infer output types; errors name the op, the operand
    types and (when known) the user's source line, and keep their exception type."""
    try:
        norm = opdef.normalize_attrs(attrs)
        return norm, opdef.infer_types(types, norm)
    except (ShapeError, DTypeError, AttributeError_, GraphError) as e:
        where = loc() if callable(loc) else loc
        msg = f"{opdef.name}({describe_operands(types)}): {e}"
        if where:
            msg += f"\n  at {where}"
        raise type(e)(msg) from None


class Graph:
    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        # Nested structure of the traced function's arguments and results (plain JSON
        # data, interpreted by nncompile.pytree); None for hand-built graphs.
        self.in_tree: Any = None
        self.out_tree: Any = None
        # The FusedGraph that fusion returned with this graph (nc.optimize at level 2 returns
        # the graph itself, so its result keeps the link); None when never fused.
        self._fusion: Any = None
        self._names: set[str] = set()
        self._counter = 0

    @property
    def fusion(self) -> Any:
        """The FusedGraph (graph, groups, rejections) fusion made of this graph, or None."""
        return self._fusion

    @property
    def fusion_groups(self) -> list[Any] | None:
        """The fusion groups (future kernels) when this graph came out of fusion, else None."""
        return None if self._fusion is None else self._fusion.groups

    @property
    def fusion_rejections(self) -> list[Any]:
        """The edges fusion refused, with their reasons ([] when never fused)."""
        return [] if self._fusion is None else self._fusion.rejections

    # ---- building --------------------------------------------------------------------

    def fresh_name(self, prefix: str = "t") -> str:
        """An unused name ``prefix<N>``."""
        while True:
            name = f"{prefix}{self._counter}"
            self._counter += 1
            if name not in self._names:
                return name

    def has_name(self, name: str) -> bool:
        """Whether ``name`` is already a value or node name in this graph."""
        return name in self._names

    def free_name(self, preferred: str, prefix: str = "t") -> str:
        """``preferred`` when unused, else a fresh ``prefix<N>`` (passes keep names if they can)."""
        return preferred if preferred not in self._names else self.fresh_name(prefix)

    def _claim(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise GraphError(f"value and node names must be non-empty strings, got {name!r}")
        if name in self._names:
            raise GraphError(f"duplicate value name {name!r} in graph {self.name}")
        self._names.add(name)
        return name

    def add_input(self, type: TensorType, name: str | None = None) -> Value:
        v = Value(type, self._claim(self.fresh_name("in") if name is None else name))
        self.inputs.append(v)
        return v

    def add_node(
        self,
        op: str,
        inputs: Iterable[Value],
        attrs: Mapping[str, Any] | None = None,
        name: str | None = None,
        loc: Loc = None,
        output_names: Iterable[str] | None = None,
        scope: str = "",
    ) -> Node:
        opdef = get_op(op)
        inputs = tuple(inputs)
        norm, out_types = infer_or_raise(opdef, [v.type for v in inputs], attrs or {}, loc)
        return self.add_inferred(op, inputs, norm, out_types, name, loc, output_names, scope)

    def add_inferred(
        self,
        op: str,
        inputs: tuple[Value, ...],
        attrs: dict[str, Any],
        out_types: list[TensorType],
        name: str | None = None,
        loc: Loc = None,
        output_names: Iterable[str] | None = None,
        scope: str = "",
    ) -> Node:
        """``add_node`` with attributes already normalized and output types already
        inferred (a pass copying a node onto inputs of the same types); ``verify`` checks
        them again."""
        where = loc() if callable(loc) else loc
        node = Node(
            op,
            inputs,
            attrs,
            self._claim(self.fresh_name("t") if name is None else name),
            where,
            scope,
        )
        if output_names is None:
            output_names = (
                [node.name]
                if len(out_types) == 1
                else [f"{node.name}.{i}" for i in range(len(out_types))]
            )
        names = list(output_names)
        if len(names) != len(out_types):
            raise GraphError(f"{op}: {len(out_types)} outputs but {len(names)} names")
        if names != [node.name]:
            for n in names:
                self._claim(n)
        node.outputs = tuple(
            Value(t, n, node, i) for i, (t, n) in enumerate(zip(out_types, names, strict=True))
        )
        self.nodes.append(node)
        return node

    def add(self, op: str, *inputs: Value, loc: Loc = None, **attrs: Any) -> Value:
        """Shorthand for single-output nodes: ``g.add("relu", x)``."""
        return self.add_node(op, inputs, attrs, loc=loc).output

    def set_outputs(self, values: Iterable[Value]) -> None:
        self.outputs = list(values)

    # ---- inspection ------------------------------------------------------------------

    def values(self) -> list[Value]:
        return list(self.inputs) + [v for n in self.nodes for v in n.outputs]

    def consumers(self) -> dict[Value, list[Node]]:
        uses: dict[Value, list[Node]] = {v: [] for v in self.values()}
        for n in self.nodes:
            for v in n.inputs:
                uses.setdefault(v, []).append(n)
        return uses

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return counts

    def verify(self) -> Graph:
        from .verify import verify

        verify(self)
        return self

    def to_json(self, indent: int | None = None) -> str:
        from .serialize import graph_to_json

        return graph_to_json(self, indent)

    @staticmethod
    def from_json(text: str | bytes) -> Graph:
        from .serialize import graph_from_json

        return graph_from_json(text)

    def __str__(self) -> str:
        from .printer import format_graph

        return format_graph(self)

    def __repr__(self) -> str:
        return (
            f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes, "
            f"{len(self.outputs)} outputs>"
        )


__all__ = ["Graph", "Node", "Value", "infer_or_raise", "NCError"]
