"""Constant folding while importing: a node whose inputs are all known arrays (constants,
folded values, the static shapes ``Shape`` gives) is computed once with ONNX's own
reference implementation, so the exporters' shape arithmetic (Shape, Gather, Concat,
ConstantOfShape, ...) never reaches the graph and sizes stay static."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..ir.symbolic import evaluate
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
# ops whose result can be far bigger than their inputs, by sizes the file gives as
# constants (pads, scales, sizes, depth): checked before converting too, so a 40-byte
# file cannot ask for terabytes (see executor.py)
GROWING = ("Expand", "Tile", "Pad", "Resize", "Upsample", "OneHot")


def has_subgraph(node: Any) -> bool:
    return any(a.HasField("g") or len(a.graphs) for a in node.attribute)


# ops whose ONNX reference implementation does not follow the spec before this opset
# (the pre-13 softmaxes coerce their input to 2-D; the reference ignores that): their
# converters compute them instead
REFERENCE_WRONG_BEFORE = {"Softmax": 13, "LogSoftmax": 13, "Hardmax": 13}


def can_fold(node: Any, values: list[Any], opset: int) -> bool:
    """All inputs known, not random, and no body graph (a body may read outer values
    that are not known; control-flow converters fold what they can themselves)."""
    return (
        node.op_type not in NOT_FOLDED
        and opset >= REFERENCE_WRONG_BEFORE.get(node.op_type, 0)
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
    elif op in GROWING and values and values[0] is not None:
        count = _grown(node, values, tuple(values[0].shape))
    elif op == "Range" and all(isinstance(v, np.ndarray) for v in values[:3]):
        start, limit_, delta = (float(v.reshape(-1)[0]) for v in values[:3])
        count = max(math.ceil((limit_ - start) / delta), 0) if delta else None
    if count is not None:  # (a symbolic batch: the file's growth per row)
        count = evaluate(count, 1)
    if count is not None and count > limit:
        raise ShapeError(
            f"ONNX node {name!r} ({op}) would make an array of {count} elements "
            f"while {doing} (limit {limit})"
        )


def _const(values: list[Any], i: int) -> np.ndarray | None:
    v = values[i] if i < len(values) else None
    return v.reshape(-1) if isinstance(v, np.ndarray) and v.size else None


def _attr(node: Any, name: str) -> Any:
    onnx = require_onnx()
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return None


def _grown(node: Any, values: list[Any], shape: tuple[int, ...]) -> int | None:
    """Elements of a Pad/Resize/Upsample/OneHot result, from its constant sizes (None
    when they are not constants)."""
    op, rank = node.op_type, len(shape)
    if op == "OneHot":
        depth = _const(values, 1)
        return None if depth is None else math.prod(shape) * int(depth[0])
    if op == "Pad":
        pads = _const(values, 1)
        pads = [int(p) for p in (pads if pads is not None else _attr(node, "pads") or [])]
        axes = _const(values, 3)
        axes = [int(a) % max(rank, 1) for a in axes] if axes is not None else list(range(rank))
        if not pads or len(pads) != 2 * len(axes):
            return None
        dims = list(shape)
        for k, a in enumerate(axes):
            dims[a] += pads[k] + pads[k + len(axes)]
        return math.prod(max(d, 0) for d in dims)
    # Resize (sizes at 3, scales at 2; at 1 before opset 11) and Upsample (scales)
    sizes = _const(values, 3) if op == "Resize" else None
    scales = _const(values, 2) if len(values) > 2 else _const(values, 1)
    if scales is None and op == "Upsample":
        scales = _attr(node, "scales")
    axes = _attr(node, "axes")
    axes = [int(a) % max(rank, 1) for a in axes] if axes else list(range(rank))
    dims = list(shape)
    if sizes is not None and len(sizes) == len(axes):
        for a, n in zip(axes, sizes, strict=True):
            dims[a] = int(n)
    elif scales is not None and len(scales) == len(axes):
        for a, f in zip(axes, scales, strict=True):
            if float(f) != 1.0:  # (an unscaled axis may be the symbolic batch)
                dims[a] = math.floor(dims[a] * float(f))
    else:
        return None
    return math.prod(max(d, 0) for d in dims)
