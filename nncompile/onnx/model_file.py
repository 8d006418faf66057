"""Reading an ONNX model from a path, bytes or a ModelProto, and the checks every model
passes before it is converted: a parseable protobuf, known domains and opsets, and a
graph whose nodes can be ordered (no cycles, no undefined names)."""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from ..errors import SerializationError
from .dependency import require_onnx
from .errors import UnsupportedError

DEFAULT_DOMAINS = ("", "ai.onnx")
OLDEST_OPSET = 7  # before opset 7 broadcasting needed an attribute; not supported


def read_model(source: Any) -> tuple[Any, int]:
    """(ModelProto, size in bytes of the serialized model)."""
    onnx = require_onnx()
    if isinstance(source, onnx.ModelProto):
        return source, source.ByteSize()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _parse(onnx, data, "the given bytes"), len(data)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise SerializationError(f"no ONNX model file at {path!r}")
        try:
            model = onnx.load(path)  # reads external data next to the file, if any
        except Exception as e:  # noqa: BLE001  (protobuf's DecodeError and onnx's errors)
            raise SerializationError(f"{path}: not a readable ONNX model: {e}") from e
        return model, os.path.getsize(path)
    raise SerializationError(
        f"an ONNX model is a path, bytes or onnx.ModelProto, got {type(source).__name__}"
    )


def _parse(onnx: Any, data: bytes, where: str) -> Any:
    try:
        return onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001
        raise SerializationError(f"{where}: not a readable ONNX model: {e}") from e


def default_opset(model: Any) -> int:
    versions = [int(o.version) for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        raise UnsupportedError("the model imports no version of the default ONNX domain")
    opset = max(versions)
    if opset < OLDEST_OPSET:
        raise UnsupportedError(f"opset {opset} is older than the oldest supported ({OLDEST_OPSET})")
    return opset


def node_name(node: Any, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


def ordered_nodes(graph: Any, known: set[str], what: str = "the graph") -> list[Any]:
    """The graph's nodes in an order where every input is defined first (Kahn's
    algorithm); a cycle, an undefined input or a name defined twice is an error."""
    nodes = list(graph.node)
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if node.domain not in DEFAULT_DOMAINS:
            raise UnsupportedError(
                f"ONNX node {node_name(node, i)!r}: op {node.op_type} of domain "
                f"{node.domain!r} is not supported (only the default ONNX domain)",
                node_name(node, i),
                node.op_type,
            )
        for out in node.output:
            if not out:
                continue
            if out in producer or out in known:
                raise SerializationError(f"{what}: value {out!r} is defined twice")
            producer[out] = i
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in set(node.input) | _captured(node):
            if not name or name in known:
                continue
            if name not in producer:
                if name in _captured(node):
                    continue  # an outer scope's value, checked when the subgraph runs
                raise SerializationError(
                    f"{what}: node {node_name(node, i)!r} reads {name!r}, which nothing defines"
                )
            waiting[i] += 1
            users.setdefault(producer[name], []).append(i)
    ready = deque(i for i, n in enumerate(waiting) if n == 0)
    order = []
    while ready:
        i = ready.popleft()
        order.append(nodes[i])
        for j in users.get(i, ()):
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):
        stuck = [node_name(nodes[i], i) for i, n in enumerate(waiting) if n][:5]
        raise SerializationError(f"{what} has a cycle through nodes {stuck}")
    return order


def _captured(node: Any) -> set[str]:
    """Names a node's subgraphs (If/Loop/Scan bodies) read from the enclosing scope."""
    onnx = require_onnx()
    names: set[str] = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for g in graphs:
            local = {i.name for i in g.input} | {t.name for t in g.initializer}
            for n in g.node:
                local |= set(n.output)
            for n in g.node:
                names |= {x for x in n.input if x and x not in local}
                names |= {x for x in _captured(n) if x not in local}
    return names


def check_declarations(graph: Any) -> None:
    """Names declared twice (initializers, graph inputs) and tensors in attributes
    (Constant values, at any depth) whose data does not match their shape are errors
    before anything runs."""
    from .tensors import tensor_to_array

    onnx = require_onnx()
    for kind, names in (
        ("initializer", [t.name for t in graph.initializer]),
        ("graph input", [vi.name for vi in graph.input]),
    ):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                what = "given" if kind == "initializer" else "declared"
                raise SerializationError(f"{kind} {name!r} is {what} twice")
            seen.add(name)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                tensor_to_array(attr.t, f"attribute {attr.name} of node {node.name!r}")
            for t in attr.tensors:
                tensor_to_array(t, f"attribute {attr.name} of node {node.name!r}")
            for g in [attr.g] if attr.HasField("g") else list(attr.graphs):
                check_declarations(g)
