"""Constant folding while importing: a node whose inputs are all known arrays (constants,
folded values, the static shapes ``Shape`` gives) is computed once with ONNX's own
reference implementation, so the exporters' shape arithmetic (Shape, Gather, Concat,
ConstantOfShape, ...) never reaches the graph and sizes stay static."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ShapeError
from .dependency import require_onnx
from .errors import UnsupportedError

# random ops are not folded: each run draws again
NOT_FOLDED = {
    "RandomUniform",
    "RandomNormal",
    "RandomUniformLike",
    "RandomNormalLike",
    "Multinomial",
    "Bernoulli",
}
# folding an op that can make a big array from a small input is bounded by this many
# elements (or the model file's size in bytes, if larger)
MAX_FOLDED_ELEMENTS = 1 << 24
# an Expand or Tile of a graph value to a size the file gives as a constant is bounded
# too (a 40-byte file must not ask for terabytes): 2^28 elements, 1 GiB of float32
MAX_EXPANDED_ELEMENTS = 1 << 28


def has_subgraph(node: Any) -> bool:
    return any(a.HasField("g") or len(a.graphs) for a in node.attribute)


def can_fold(node: Any, values: list[Any]) -> bool:
    """All inputs known, not random, and no body graph (a body may read outer values
    that are not known; control-flow converters fold what they can themselves)."""
    return (
        node.op_type not in NOT_FOLDED
        and not has_subgraph(node)
        and all(v is None or isinstance(v, np.ndarray) for v in values)
    )


def fold(node: Any, values: list[Any], opset: int, name: str, limit: int) -> list[np.ndarray]:
    onnx = require_onnx()
    from onnx.reference import ReferenceEvaluator

    check_size(node, values, name, max(limit, MAX_FOLDED_ELEMENTS))
    names = [f"in{i}" if v is not None else "" for i, v in enumerate(values)]
    outs = [f"out{i}" for i in range(len(node.output))]
    clone = onnx.helper.make_node(node.op_type, names, outs, domain=node.domain)
    clone.attribute.extend(node.attribute)
    feeds = {n: v for n, v in zip(names, values, strict=True) if n}
    try:
        # a bare node would run at the reference's latest opset (its opsets= is ignored
        # for a NodeProto), so old-opset attributes (Unsqueeze's axes) failed: wrap it
        graph = onnx.helper.make_graph(
            [clone],
            "fold",
            [onnx.ValueInfoProto(name=n) for n in names if n],
            [onnx.ValueInfoProto(name=n) for n in outs],
        )
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception as e:  # noqa: BLE001  (the reference raises assorted types)
        raise UnsupportedError(
            f"ONNX node {name!r} ({node.op_type}, opset {opset}): folding its constant "
            f"inputs failed: {type(e).__name__}: {e}",
            name,
            node.op_type,
            opset,
        ) from e
    return [np.asarray(r) if r is not None else None for r in results]


def check_size(
    node: Any, values: list[Any], name: str, limit: int, doing: str = "folding constants"
) -> None:
    """Refuse before allocating when an op would make an array beyond ``limit`` elements
    from sizes given as constants (``values[0]`` may be a Tensor for Expand and Tile)."""
    op, count = node.op_type, None
    if op == "ConstantOfShape" and values and isinstance(values[0], np.ndarray):
        count = math.prod(int(d) for d in values[0].reshape(-1))
    elif op == "Expand" and len(values) > 1 and isinstance(values[1], np.ndarray):
        try:
            want = tuple(int(d) for d in values[1].reshape(-1))
            count = math.prod(np.broadcast_shapes(tuple(values[0].shape), want))
        except ValueError as e:
            raise ShapeError(f"ONNX node {name!r} (Expand): {e}") from e
    elif op == "Tile" and len(values) > 1 and isinstance(values[1], np.ndarray):
        count = math.prod(values[0].shape) * math.prod(int(r) for r in values[1].reshape(-1))
    elif op == "Range" and all(isinstance(v, np.ndarray) for v in values[:3]):
        start, limit_, delta = (float(v.reshape(-1)[0]) for v in values[:3])
        count = max(math.ceil((limit_ - start) / delta), 0) if delta else None
    if count is not None and count > limit:
        raise ShapeError(
            f"ONNX node {name!r} ({op}) would make an array of {count} elements "
            f"while {doing} (limit {limit})"
        )
