"""Constant folding: a node whose inputs are all constants is evaluated now, with the
reference ops, and replaced by its result.

Size guard: a result is materialized only if it is no larger than its inputs together
(or at most 4 KiB). So ``expand(scalar)`` to a big shape, or a big random_uniform, stays
a cheap description instead of becoming a huge array in the graph.
"""

from __future__ import annotations

from ..backends.numpy import call_reference
from ..ir.errors import NCError
from ..ir.graph import Graph, Node
from ..ir.kernel import DOT_PRODUCT_MAX_OUTPUTS, DOT_PRODUCT_MIN_K
from ..ir.symbolic import Dim, is_symbolic
from .rewriter import GraphRewriter, constant_value

SMALL_RESULT_BYTES = 4096


def fold_constants(graph: Graph) -> Graph:
    rw = GraphRewriter(graph, "fold")
    consumers = graph.consumers()
    for node in graph.nodes:
        inputs = rw.inputs(node)
        arrays = [constant_value(v) for v in inputs]
        if node.op == "constant" or not inputs or any(a is None for a in arrays):
            rw.copy(node)
            continue
        if any(is_symbolic(v.shape) for v in node.outputs):  # sized by the run-time batch
            rw.copy(node)
            continue
        if _weight_read_along_k(node, consumers):
            rw.copy(node)
            continue
        out_bytes = sum(v.type.nbytes for v in node.outputs)
        if out_bytes > max(SMALL_RESULT_BYTES, sum(a.nbytes for a in arrays)):
            rw.copy(node)
            continue
        try:
            results = call_reference(node.op, arrays, node.attrs)
        except NCError:
            rw.copy(node)  # e.g. an out-of-range gather: leave the error to run time
            continue
        for old, a in zip(node.outputs, results, strict=True):
            rw.bind(old, rw.constant(a, loc=node.loc))
    return rw.finish()


def _weight_read_along_k(node: Node, consumers: dict) -> bool:
    """A transposed constant (a weight stored (n, k), as ONNX Gemm(transB=1) and Linear
    layers hold it) that only small matrix products read as their B: left unfolded, each
    GEMM reads it in place along k (dot products); folded, it would be stored (k, n) and
    read across rows (measured, one row of 5408 against 64 outputs: 0.020 vs 0.039 ms)."""
    if node.op != "transpose" or len(node.outputs[0].shape) != 2:
        return False
    users = consumers.get(node.outputs[0], [])
    if not users:
        return False
    for user in users:
        if user.op != "matmul" or user.inputs[1] is not node.outputs[0]:
            return False
        out = user.outputs[0]
        rows, cols = (out.shape[-2], out.shape[-1]) if len(out.shape) >= 2 else (1, out.shape[-1])
        if type(rows) is Dim:  # rows of the batch: the packed GEMM, which reads B along n
            return False
        depth = node.outputs[0].shape[0]  # k: the weight is stored (n, k)
        if rows * cols > DOT_PRODUCT_MAX_OUTPUTS or depth < DOT_PRODUCT_MIN_K:
            return False
        if user.inputs[0] is node.outputs[0]:
            return False
    return True
