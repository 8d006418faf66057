"""Layout clean-up: move transposes toward the graph's outputs so pairs meet and cancel.

Keras-style layers keep data channels-last (NHWC) while the IR's conv2d and pooling are
NCHW, so every layer is wrapped in a pair of transposes: ``pool(T(relu(T'(conv))))``.
This pass moves a transpose that only one elementwise op reads to after that op:
``relu(T'(y)) -> T'(relu(y))`` (unary ops, and ops whose operands are all transposed
the same way or are scalars). Simplification then composes ``T(T'(...))``
and drops the identity, leaving ``pool(relu(conv))``. Moving only downward (never back
up) keeps the pass from oscillating, so the pipeline reaches a fixed point.

Not done: folding a remaining transpose into the convolution itself (the IR's conv2d has
no layout attribute), so the transposes at the model's input and before Flatten stay.
"""

from __future__ import annotations

from ..ir.graph import Graph, Node, Value
from .rewriter import GraphRewriter, use_counts
from .simplify import ELEMENTWISE_UNARY

# Elementwise ops with several operands: a transpose moves past them when every operand
# that is not a scalar is a single-use transpose with the same perm.
MULTI_OPERAND = {
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "maximum",
    "minimum",
    "equal",
    "not_equal",
    "less",
    "less_equal",
    "greater",
    "greater_equal",
    "logical_and",
    "logical_or",
    "logical_xor",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "where",
}


def _transposed_operand(rw: GraphRewriter, v: Value, uses: dict[int, int]) -> Value | None:
    """If source value ``v`` is used once and is now a transpose (copied, or produced by
    this pass a step earlier in a chain), that transpose's output in the new graph."""
    new = rw.value(v)
    if new.producer is None or new.producer.op != "transpose" or uses.get(id(v), 0) != 1:
        return None
    return new


def _movable(rw: GraphRewriter, node: Node, uses: dict[int, int]) -> tuple[int, ...] | None:
    """If every non-scalar operand of elementwise ``node`` is a single-use transpose with
    one common perm, that perm."""
    if len(node.outputs) != 1 or not (node.op in ELEMENTWISE_UNARY or node.op in MULTI_OPERAND):
        return None
    found = [_transposed_operand(rw, v, uses) for v in node.inputs if v.shape != ()]
    if not found or any(t is None for t in found):
        return None
    perms = {t.producer.attrs["perm"] for t in found}
    return perms.pop() if len(perms) == 1 else None


def sink_transposes(graph: Graph) -> Graph:
    uses = use_counts(graph)
    rw = GraphRewriter(graph, "layout")
    for node in graph.nodes:
        perm = _movable(rw, node, uses)
        if perm is None:
            rw.copy(node)
            continue
        # Apply the op to the untransposed operands, then transpose its result once; a
        # chain of such ops moves the transpose all the way down in one run.
        args = [
            rw.value(v) if v.shape == () else rw.value(v).producer.inputs[0] for v in node.inputs
        ]
        y = rw.emit(node.op, args, node.attrs, node.loc)
        rw.bind(node.outputs[0], rw.emit("transpose", [y], {"perm": perm}, node.loc))
    return rw.finish()
