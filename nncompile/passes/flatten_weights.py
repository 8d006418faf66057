"""Flatten's transpose moved into a constant weight.

A PyTorch CNN exported to ONNX flattens its feature maps in NCHW order before its first
Linear layer; once the channels-last pass keeps the maps NHWC, that order costs a
transpose of the whole feature map before the matrix product:
``matmul(reshape(transpose(x, perm)), W)``. When ``W`` is a constant (an imported or
frozen model), its rows are permuted once, now, to follow ``x``'s own order instead:
``matmul(reshape(x), W')`` with the same products (summed in another order). A weight
stored transposed (``transpose(C)``, ONNX Gemm's transB, read in place along k) keeps
that form: the columns of ``C`` are permuted.

Only when the transpose and the reshape have no other reader (else the transpose stays
anyway) and the transpose keeps the leading (batch) axis in place.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir.graph import Graph, Node, Value
from .rewriter import GraphRewriter, constant_value, producer_op, rewrite_nodes, use_counts


def _flattened_transpose(a: Value, uses: dict[int, int]) -> tuple[Value, tuple[int, ...]] | None:
    """(x, perm) when ``a`` is reshape(transpose(x, perm)) flattening all but the batch
    axis, each read only here, and the transpose keeps axis 0."""
    if producer_op(a) != "reshape" or uses.get(id(a), 0) != 1 or len(a.shape) != 2:
        return None
    t = a.producer.inputs[0]
    if producer_op(t) != "transpose" or uses.get(id(t), 0) != 1:
        return None
    x, perm = t.producer.inputs[0], tuple(t.producer.attrs["perm"])
    if perm[0] != 0 or len(perm) < 3 or not all(type(d) is int for d in x.shape[1:]):
        return None  # (the batch axis may be symbolic: it stays where it is)
    if a.shape[0] != x.shape[0] or a.shape[1] != math.prod(x.shape[1:]):
        return None
    return x, perm


def _weight(b: Value) -> tuple[np.ndarray, bool] | None:
    """(the weight as stored, whether it is read transposed) for a constant B or the
    transpose of a constant matrix."""
    w = constant_value(b)
    if w is not None:
        return (w, False) if w.ndim == 2 else None
    if producer_op(b) == "transpose" and tuple(b.producer.attrs["perm"]) == (1, 0):
        w = constant_value(b.producer.inputs[0])
        if w is not None and w.ndim == 2:
            return w, True
    return None


def _rows_in_order_of(b: np.ndarray, x_shape: tuple[int, ...], perm: tuple[int, ...]):
    """B (k, n), its rows indexed in the transposed map's flat order, re-indexed in the
    flat order of the map ``x`` itself."""
    inner = perm[1:]  # axis i of the transposed map is axis inner[i] of x
    dims = tuple(x_shape[axis] for axis in inner)
    inverse = np.argsort(inner)  # axis j of x is axis inverse[j] of the transposed map
    order = [int(i) for i in inverse] + [len(inner)]
    return b.reshape(*dims, b.shape[1]).transpose(order).reshape(b.shape)


def _rewrite(rw: GraphRewriter, node: Node, uses: dict[int, int]) -> Value | None:
    if node.op != "matmul" or len(node.outputs[0].shape) != 2:
        return None
    a, b = node.inputs
    found, weight = _flattened_transpose(a, uses), _weight(b)
    if found is None or weight is None:
        return None
    x, perm = found
    w, transposed = weight
    loc = node.loc
    if transposed:  # C (n, k), B = C^T: permute C's columns
        permuted = np.ascontiguousarray(_rows_in_order_of(w.T, x.shape, perm).T)
        new_b = rw.emit("transpose", [rw.constant(permuted, loc)], {"perm": (1, 0)}, loc)
    else:
        new_b = rw.constant(np.ascontiguousarray(_rows_in_order_of(w, x.shape, perm)), loc)
    flat = rw.emit("reshape", [rw.value(x)], dict(a.producer.attrs), loc)
    return rw.emit("matmul", [flat, new_b], dict(node.attrs), loc)


def flatten_into_weights(graph: Graph) -> Graph:
    uses = use_counts(graph)
    return rewrite_nodes(graph, "flatw", lambda rw, node: _rewrite(rw, node, uses))
