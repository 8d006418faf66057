"""The verifier: checks every invariant a Graph must hold, and names the culprit."""

from __future__ import annotations

import numpy as np

from .dtypes import DType
from .errors import GraphError, NCError
from .graph import Graph, infer_or_raise
from .registry import has_op
from .symbolic import is_symbolic
from .types import TensorType, check_shape


def _same(x: object, y: object) -> bool:
    """Equal values of the same types (so np.int64(1) is not mistaken for canonical 1)."""
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return (
            isinstance(x, np.ndarray)
            and isinstance(y, np.ndarray)
            and x.dtype == y.dtype
            and x.shape == y.shape
            and x.tobytes() == y.tobytes()
        )
    if type(x) is not type(y):
        return False
    if isinstance(x, tuple):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
    return x == y or (x != x and y != y)  # NaN equals NaN for float attributes


def _attrs_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)


def verify(graph: Graph) -> None:
    """Raise GraphError unless the graph is well formed:
    unique names, known ops, right arity and attributes, every input defined before use
    (so no cycles and no dangling values), recorded types equal to inferred types, and
    outputs that exist."""
    names: set[str] = set()
    defined: set[int] = set()

    def claim(name: str, what: str) -> None:
        if not isinstance(name, str) or not name:
            raise GraphError(f"{what} has no name")
        if name in names:
            raise GraphError(f"duplicate value name {name!r}")
        names.add(name)

    for v in graph.inputs:
        claim(v.name, "graph input")
        if v.producer is not None:
            raise GraphError(f"graph input %{v.name} has a producer")
        _check_type(v.type, f"graph input %{v.name}")
        defined.add(id(v))

    dynamic = any(is_symbolic(v.shape) for v in graph.inputs)
    for node in graph.nodes:
        where = f"node {node.name} ({node.op})"
        if not has_op(node.op):
            raise GraphError(f"{where}: unknown op {node.op!r}")
        if node.op == "batch_size" and not dynamic:
            raise GraphError(
                f"{where}: the batch size exists only in a dynamic-batch graph (one with an "
                "input whose leading axis is the symbolic n)"
            )
        for i, v in enumerate(node.inputs):
            if id(v) not in defined:
                raise GraphError(
                    f"{where}: input {i} %{v.name} is not defined before use "
                    "(dangling value or cycle)"
                )
        try:
            norm, types = infer_or_raise(node.opdef, [v.type for v in node.inputs], node.attrs)
        except NCError as e:
            raise GraphError(f"{where}: {e}") from None
        if not _attrs_equal(norm, node.attrs):
            raise GraphError(f"{where}: attributes {node.attrs} are not in canonical form {norm}")
        if len(types) != len(node.outputs):
            raise GraphError(f"{where}: has {len(node.outputs)} outputs, op gives {len(types)}")
        for i, (v, t) in enumerate(zip(node.outputs, types, strict=True)):
            claim(v.name, f"{where} output {i}")
            if v.producer is not node or v.index != i:
                raise GraphError(f"{where}: output %{v.name} does not point back to its node")
            if v.type != t:
                raise GraphError(
                    f"{where}: output %{v.name} is recorded as {v.type} but the op gives {t}"
                )
            defined.add(id(v))

    for i, v in enumerate(graph.outputs):
        if id(v) not in defined:
            raise GraphError(f"graph output {i} %{v.name} is not defined in the graph")


def _check_type(t: TensorType, what: str) -> None:
    if not isinstance(t, TensorType) or not isinstance(t.dtype, DType):
        raise GraphError(f"{what} has no valid tensor type: {t!r}")
    try:
        check_shape(t.shape, f"{what} shape")
    except NCError as e:
        raise GraphError(str(e)) from None
