"""ONNX op type -> converter. A converter receives a ``NodeContext`` and returns the
node's outputs as nc Tensors (or NumPy arrays when they are known while converting, as
``Shape`` gives); it is written with nc ops, so imported models run eagerly, trace,
differentiate and compile like any nc code.

    @converter("Relu")
    def relu(ctx: NodeContext) -> list:
        return [nc.relu(ctx.input(0))]

``constant_inputs`` names the inputs that must be known when converting (a Reshape's
shape, a Slice's starts): initializers used only there are constants, not parameters,
and ``ctx.constant(i)`` returns them as arrays. ``since`` is the lowest opset the
converter implements; converters branch on ``ctx.opset`` where ONNX changed the op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import UnsupportedError
from .narrow import widen
from .tensors import COMPUTE_DTYPES

_REQUIRED = object()


@dataclass(frozen=True)
class Converter:
    op_type: str
    fn: Callable[[NodeContext], list[Any]]
    since: int
    constant_inputs: tuple[int, ...]


CONVERTERS: dict[str, Converter] = {}


def converter(
    *op_types: str, since: int = 1, constant_inputs: tuple[int, ...] = ()
) -> Callable[[Callable[[NodeContext], list[Any]]], Callable[[NodeContext], list[Any]]]:
    def register(fn: Callable[[NodeContext], list[Any]]) -> Callable[[NodeContext], list[Any]]:
        for op_type in op_types:
            if op_type in CONVERTERS:
                raise AssertionError(f"ONNX op {op_type} has two converters")
            CONVERTERS[op_type] = Converter(op_type, fn, since, tuple(constant_inputs))
        return fn

    return register


def lookup(op_type: str, opset: int, node_name: str) -> Converter:
    conv = CONVERTERS.get(op_type)
    if conv is None:
        raise UnsupportedError(
            f"ONNX node {node_name!r}: op {op_type} (opset {opset}) is not supported",
            node_name,
            op_type,
            opset,
        )
    if opset < conv.since:
        raise UnsupportedError(
            f"ONNX node {node_name!r}: op {op_type} is supported from opset {conv.since}, "
            f"the model uses opset {opset}",
            node_name,
            op_type,
            opset,
        )
    return conv


def attribute_value(attr: Any, onnx: Any) -> Any:
    """An AttributeProto as a Python value (ints, floats, str, lists, arrays, graphs)."""
    kind = onnx.AttributeProto
    if attr.type == kind.INT:
        return int(attr.i)
    if attr.type == kind.FLOAT:
        return float(attr.f)
    if attr.type == kind.STRING:
        return attr.s.decode("utf-8", "replace")
    if attr.type == kind.INTS:
        return [int(v) for v in attr.ints]
    if attr.type == kind.FLOATS:
        return [float(v) for v in attr.floats]
    if attr.type == kind.STRINGS:
        return [s.decode("utf-8", "replace") for s in attr.strings]
    if attr.type == kind.TENSOR:
        from .tensors import tensor_to_array

        return tensor_to_array(attr.t, f"attribute {attr.name}")
    if attr.type == kind.GRAPH:
        return attr.g
    if attr.type == kind.GRAPHS:
        return list(attr.graphs)
    return _UNREADABLE


_UNREADABLE = object()


class NodeContext:
    """One node being converted: its inputs (nc Tensors, arrays when known, None when
    absent), attributes, opset and name for error messages. Reading an attribute marks
    it used; an attribute the converter never reads makes the node unsupported, so an
    attribute nobody implemented can never be silently ignored."""

    def __init__(
        self,
        node: Any,
        name: str,
        opset: int,
        values: list[Any],
        onnx: Any,
        runner: Any = None,
        scope: dict[str, Any] | None = None,
    ):
        self.node, self.name, self.opset, self._onnx = node, name, opset, onnx
        self._runner, self._scope = runner, scope
        self.op_type = node.op_type
        self._values = values
        self._attrs = {a.name: a for a in node.attribute}
        self._read: set[str] = set()

    # -- inputs ---------------------------------------------------------------------------
    @property
    def num_inputs(self) -> int:
        return len(self._values)

    def has_input(self, i: int) -> bool:
        return i < len(self._values) and self._values[i] is not None

    def input(self, i: int) -> Any:
        """Input ``i`` (a Tensor, or an array when known), in a dtype nncompile computes in
        (a known array of a narrow integer type widened to its container, see narrow.py)."""
        if not self.has_input(i):
            self.unsupported(f"input {i} is required")
        v = self._values[i]
        if isinstance(v, np.ndarray):
            v = widen(v)
            if v.dtype not in COMPUTE_DTYPES:
                self.unsupported(
                    f"input {i} has dtype {v.dtype}, which nncompile does not compute in"
                )
        return v

    def optional_input(self, i: int) -> Any:
        v = self._values[i] if self.has_input(i) else None
        return widen(v) if isinstance(v, np.ndarray) else v

    def inputs(self) -> list[Any]:
        return [widen(v) if isinstance(v, np.ndarray) else v for v in self._values if v is not None]

    def constant(self, i: int, what: str = "") -> np.ndarray | None:
        """Input ``i`` as an array (None when absent); it must be known when converting."""
        if not self.has_input(i):
            return None
        v = self._values[i]
        if isinstance(v, np.ndarray):
            return v
        label = f"input {i}" + (f" ({what})" if what else "")
        self.unsupported(
            f"{label} must be a constant, but it is computed from the graph inputs (a size "
            "given as a graph input must be concrete: pass it to a compiled function as a "
            "Python list or int, which becomes part of the compile key)"
        )
        return None  # unreachable

    def run_subgraph(self, graph: Any, inputs: list[Any]) -> list[Any]:
        """Outputs of a body graph (If/Loop/Scan) given its inputs, with this node's
        scope visible to it."""
        return self._runner.run_subgraph(graph, inputs, self._scope)

    # -- attributes -----------------------------------------------------------------------
    def has_attr(self, name: str) -> bool:
        return name in self._attrs

    def attr(self, name: str, default: Any = _REQUIRED) -> Any:
        self._read.add(name)
        if name not in self._attrs:
            if default is _REQUIRED:
                self.unsupported(f"attribute {name!r} is required")
            return default
        value = attribute_value(self._attrs[name], self._onnx)
        if value is _UNREADABLE:
            self.unsupported(f"attribute {name!r} has a type nncompile cannot read")
        return value

    def check_attributes_read(self) -> None:
        unread = sorted(set(self._attrs) - self._read)
        if unread:
            values = ", ".join(f"{n}={self._describe(self._attrs[n])}" for n in unread)
            self.unsupported(f"attribute {values} is not supported")

    def _describe(self, attr: Any) -> str:
        v = attribute_value(attr, self._onnx)
        return "<graph>" if v is _UNREADABLE or hasattr(v, "node") else repr(v)[:60]

    def unsupported(self, message: str) -> None:
        raise UnsupportedError(
            f"ONNX node {self.name!r} ({self.op_type}, opset {self.opset}): {message}",
            self.name,
            self.op_type,
            self.opset,
        )
