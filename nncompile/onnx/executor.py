"""Running an ONNX graph on nc values: each node is folded (all inputs known arrays) or
converted with nc ops (eager, or recorded under a trace). Subgraphs (If/Loop/Scan
bodies) run through the same function with the enclosing scope visible."""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import numpy as np

from ..dispatch import name_scope
from ..errors import ShapeError
from ..ir.symbolic import evaluate
from ..tensor import Tensor
from .dependency import require_onnx
from .errors import UnsupportedError
from .folding import GROWING, can_fold, check_size, fold
from .model_file import node_name, ordered_nodes
from .narrow import RANGE_PRESERVING, container_of, is_narrow, wrap, wrap_array
from .registry import NodeContext, lookup
from .tensors import tensor_to_array


class GraphRunner:
    """Runs graphs of one model: ``opset`` of its default domain, ``fold_limit`` the
    element bound for folded ops (see folding.py)."""

    def __init__(self, opset: int, fold_limit: int, value_dtypes: dict | None = None):
        self.opset, self.fold_limit = opset, fold_limit
        # ONNX's dtype of each value (shape inference): narrow integer results are wrapped
        self.value_dtypes: dict[str, np.dtype] = value_dtypes or {}
        # id(graph) -> (graph, order): the graph is kept so its id is never reused by
        # another (protobuf gives a fresh wrapper per access; a freed one's id recurs)
        self._orders: dict[int, tuple[Any, list[Any]]] = {}

    def run(self, graph: Any, scope: dict[str, Any], what: str = "the graph") -> list[Any]:
        """Values of ``graph``'s outputs; ``scope`` holds its inputs and initializers and
        every outer value it may read (it is extended, not copied, by the caller)."""
        cached = self._orders.get(id(graph))
        if cached is None:
            cached = self._orders[id(graph)] = (graph, ordered_nodes(graph, set(scope), what))
        order = cached[1]
        for index, node in enumerate(order):
            self.run_node(node, node_name(node, index), scope)
        return [scope[o.name] for o in graph.output]

    def run_node(self, node: Any, name: str, scope: dict[str, Any]) -> bool:
        """Run one node, storing its outputs in ``scope``; True when it was folded.
        (nc.onnx.check runs nodes one at a time to report each.)"""
        values = [scope[i] if i else None for i in node.input]
        folded = can_fold(node, values, self.opset)
        if folded:
            outs = fold(node, values, self.opset, name, self.fold_limit)
        else:
            if node.op_type in GROWING:
                # as many elements as this machine has memory for in float32, at most
                limit = max(self.fold_limit, _physical_memory() // 4)
                check_size(node, values, name, limit, "converting")
            conv = lookup(node.op_type, self.opset, name)
            ctx = NodeContext(node, name, self.opset, values, require_onnx(), self, scope)
            try:
                with name_scope(_scope_name(name)):
                    outs = list(conv.fn(ctx))
            except MemoryError as e:
                # sizes from the file (pads, scales, depths) asked for more than exists;
                # NumPy refuses such requests before allocating anything
                raise ResultTooLarge(
                    f"ONNX node {name!r} ({node.op_type}, opset {self.opset}): its result "
                    f"does not fit in memory: {e}"
                ) from None
            ctx.check_attributes_read()
            _check_fits(node, name, self.opset, values, outs)
            outs = self._narrow_outputs(node, name, values, outs)
        self._store(node, name, outs, scope)
        return folded

    def _narrow_outputs(self, node: Any, name: str, values: list[Any], outs: list[Any]) -> list:
        """Converted outputs of a narrow integer type (int8, uint16, ...; see narrow.py)
        wrapped into its range in their container dtype; known ones as arrays of the
        type itself. A result in another dtype, or of a type shape inference could not
        tell from narrow inputs, is refused rather than risked."""
        outs = list(outs)
        narrow_in = any(
            (isinstance(v, np.ndarray) and is_narrow(v.dtype))
            or is_narrow(self.value_dtypes.get(i))
            for i, v in zip(node.input, values, strict=True)
            if i
        )
        if narrow_in and node.op_type in ("ReduceMax", "ReduceMin"):
            data = values[0] if values else None
            if data is not None and 0 in tuple(np.shape(data)):
                # the container's identity (its own min/max) would wrap to 0, not the
                # narrow type's bound ONNX gives for an empty set
                self._refuse(node, name, "an empty reduction of a narrow integer type")
        for k, out_name in enumerate(node.output[: len(outs)]):
            v, want = outs[k], self.value_dtypes.get(out_name)
            if v is None or not out_name:
                continue
            if want is None:
                if narrow_in and isinstance(v, Tensor) and v.dtype.kind in "iu":
                    self._refuse(node, name, f"the ONNX type of output {k} is unknown")
                continue
            if not is_narrow(want):
                continue
            container = container_of(want)
            if isinstance(v, np.ndarray):
                if v.dtype == container:
                    outs[k] = wrap_array(v, want)
                elif v.dtype != want:
                    self._refuse(node, name, f"output {k} is {v.dtype}, ONNX types it {want}")
            elif np.dtype(v.dtype) != container:
                self._refuse(
                    node, name, f"output {k} is {v.dtype}, not {container} holding ONNX's {want}"
                )
            elif node.op_type not in RANGE_PRESERVING:
                outs[k] = wrap(v, want)
        return outs

    def _refuse(self, node: Any, name: str, why: str) -> None:
        raise UnsupportedError(
            f"ONNX node {name!r} ({node.op_type}, opset {self.opset}): {why}",
            name,
            node.op_type,
            self.opset,
        )

    def run_subgraph(self, graph: Any, inputs: list[Any], outer: dict[str, Any]) -> list[Any]:
        scope = dict(outer)
        for t in graph.initializer:
            scope[t.name] = tensor_to_array(t, "subgraph initializer")
        for vi, v in zip(graph.input, inputs, strict=False):
            scope[vi.name] = v
        return self.run(graph, scope, f"subgraph {graph.name!r}")

    def _store(self, node: Any, name: str, outs: list[Any], scope: dict) -> None:
        outs = outs + [None] * (len(node.output) - len(outs))
        for i, out in enumerate(node.output):
            if not out:
                continue
            if outs[i] is None:
                raise UnsupportedError(
                    f"ONNX node {name!r} ({node.op_type}, opset {self.opset}): output {i} "
                    "is not supported",
                    name,
                    node.op_type,
                    self.opset,
                )
            scope[out] = outs[i]


class ResultTooLarge(ShapeError):
    """A node's result needs more memory than the machine has (its sizes come from the
    file: pads, scales, depths, strides)."""


@functools.cache
@functools.cache  # asked for every converted output; it does not change while running
def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: no bound
        return 1 << 62


def _nbytes(v: Any) -> int:
    """Bytes of ``v``; with a symbolic batch size, at one row (what the file decides: the
    caller's batch scales inputs and results alike)."""
    return evaluate(math.prod(v.shape), 1) * np.dtype(v.dtype).itemsize


def _check_fits(node: Any, name: str, opset: int, values: list[Any], outs: list[Any]) -> None:
    """Traced outputs (their shapes only, nothing allocated) that grow beyond this
    machine's memory: refused now, before a compiled program asks for them. (A result no
    bigger than the node's largest input is the inputs' business, not the file's.)"""
    largest = max((_nbytes(v) for v in values if hasattr(v, "shape")), default=0)
    for out in outs:
        if isinstance(out, Tensor):
            size = _nbytes(out)
            if size > max(_physical_memory(), largest):
                raise ResultTooLarge(
                    f"ONNX node {name!r} ({node.op_type}, opset {opset}): its result "
                    f"{out.dtype} {out.shape} needs {size / 2**30:.3g} GiB, more than this "
                    "machine's memory"
                )


def _scope_name(name: str) -> str:
    """A name scope for an ONNX node name (scopes are path components: no slashes)."""
    return name.replace("/", ".").strip(".") or "node"
