"""Algebraic simplification: local rewrites that never change a result.

Rules (each exact, bit for bit, signed zeros included; only where no broadcasting):
  x + (-0.0), (-0.0) + x, x - (+0.0), x * 1, 1 * x, x / 1, x ** 1 -> x   (floats: adding
      +0.0 would turn -0.0 into +0.0; for ints any zero)
  x * 0 -> 0 for integer and bool x only: for floats, NaN * 0 and inf * 0 are NaN
  -(-x) -> x;  -(a - b) -> b - a for integers only (for floats -(a - a) is -0.0)
  transpose(transpose(x)) -> one transpose; identity transpose -> x
  reshape(reshape(x)) -> one reshape; reshape/expand/cast/slice that change nothing -> x
  max/min over axes that all have size 1 -> reshape (sum and mean only for integers:
      a float sum starts from +0.0, so it turns -0.0 into +0.0)
  where(c, x, x) -> x;  concat of one input -> x
Not rewritten, because the result could change: log(exp(x)) (exp overflows),
exp(log(x)) (one rounding step apart), x ** 2 -> x * x (libm's pow is not always the
correctly rounded square).
Stability rewrites (these change values, for the better):
  exp(x) / sum(exp(x)) with x not already shifted by its max -> the max-shifted softmax
  log(exp(d) / sum(exp(d))) -> d - log(sum(exp(d)))   (log-softmax; also covers
  cross-entropy written as -sum(labels * log(softmax)))
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Value
from ..ir.ops.binary import BINARY
from ..ir.ops.unary import UNARY
from .rewriter import (
    GraphRewriter,
    constant_value,
    is_scalar_constant,
    producer_op,
    rewrite_nodes,
)

# the unary ops are declared in ir/ops/unary.py; cast is unary elementwise too
ELEMENTWISE_UNARY = set(UNARY) | {"cast"}
# binary ops with an identity operand (declared in ir/ops/binary.py): op -> its unit
UNITS = {name: b.unit for name, b in BINARY.items() if b.unit is not None}


def _same_type(a: Value, b: Value) -> bool:
    return a.type == b.type


def _is_identity_operand(v: Value, op: str, side: str, dtype) -> bool:
    """Is ``v`` a constant that leaves the other operand of ``op`` unchanged, bit for bit?"""
    unit = UNITS[op]
    a = constant_value(v)
    if a is None or a.size == 0 or not np.all(a == unit):
        return False
    if op in ("add", "sub") and dtype.is_float:
        # x + (-0.0) == x and x - (+0.0) == x for every x, -0.0 included; not with +0.0.
        negative = bool(np.all(np.signbit(a)))
        return negative if op == "add" else not bool(np.any(np.signbit(a)))
    return side == "right" or BINARY[op].left_unit


def _is_max_shifted(x: Value) -> bool:
    """x = z - m where m is a max reduction (possibly guarded by where(finite, m, 0))."""
    if producer_op(x) != "sub":
        return False
    m = x.producer.inputs[1]
    if producer_op(m) == "stop_gradient":
        m = m.producer.inputs[0]
    if producer_op(m) == "where":
        m = m.producer.inputs[1]
    return producer_op(m) in ("reduce_max", "expand", "reshape")


def _softmax_parts(v: Value) -> tuple[Value, Value, Node] | None:
    """If v = exp(d) / sum(exp(d), axes, keepdims) return (d, the sum, the sum node)."""
    if producer_op(v) != "div":
        return None
    return _exp_over_sum(*v.producer.inputs)


def _exp_over_sum(e: Value, s: Value) -> tuple[Value, Value, Node] | None:
    """If e = exp(d) and s = sum(e, axes, keepdims) return (d, s, the sum node)."""
    if producer_op(e) != "exp" or producer_op(s) != "reduce_sum":
        return None
    sum_node = s.producer
    if sum_node.inputs[0] is not e or not sum_node.attrs["keepdims"]:
        return None
    return e.producer.inputs[0], s, sum_node


def simplify_node(rw: GraphRewriter, node: Node, ins: list[Value]) -> Value | None:
    """A replacement for ``node``'s single output, or None to keep the node."""
    op, out = node.op, node.outputs[0]
    loc = node.loc

    if op in UNITS:
        a, b = ins
        if _is_identity_operand(b, op, "right", out.dtype) and _same_type(a, out):
            return a
        if (
            BINARY[op].left_unit
            and _is_identity_operand(a, op, "left", out.dtype)
            and _same_type(b, out)
        ):
            return b
        if op == "mul" and not out.dtype.is_float:
            for z in (a, b):
                if is_scalar_constant(z, 0):
                    zero = rw.constant(np.zeros((), out.dtype.np), loc)
                    return rw.emit("expand", [zero], {"shape": out.shape}, loc)
        if op == "div" and out.dtype.is_float:
            return _stable_softmax(rw, node, a, b)
        return None

    if op == "neg":
        (x,) = ins
        if producer_op(x) == "neg":
            return x.producer.inputs[0]
        if producer_op(x) == "sub" and not out.dtype.is_float:
            a, b = x.producer.inputs
            return rw.emit("sub", [b, a], loc=loc)
        return None

    if op == "log":
        parts = _softmax_parts(ins[0])
        if parts is not None:
            d, s, _ = parts
            return rw.emit("sub", [d, rw.emit("log", [s], loc=loc)], loc=loc)
        return None

    if op == "transpose":
        (x,) = ins
        perm = node.attrs["perm"]
        if producer_op(x) == "transpose":
            inner = x.producer.attrs["perm"]
            perm = tuple(inner[p] for p in perm)
            x = x.producer.inputs[0]
        if perm == tuple(range(len(perm))):
            return x
        if x is not ins[0]:
            return rw.emit("transpose", [x], {"perm": perm}, loc)
        return None

    if op == "reshape":
        (x,) = ins
        if producer_op(x) != "reshape" and x.shape != out.shape:
            return None  # nothing to fold
        return _reshaped(rw, x, out.shape, loc)

    if op in ("expand", "cast", "slice"):
        (x,) = ins
        return x if _same_type(x, out) and _is_identity_slice(node, x) else None

    if op in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min"):
        (x,) = ins
        axes = node.attrs["axes"]
        exact = op in ("reduce_max", "reduce_min") or not out.dtype.is_float
        if exact and all(x.shape[a] == 1 for a in axes):
            return _reshaped(rw, x, out.shape, loc)
        return None

    if op == "where":
        c, a, b = ins
        if a is b and _same_type(a, out):
            return a
        return None

    if op == "concat" and len(ins) == 1:
        return ins[0]
    return None


def _reshaped(rw: GraphRewriter, x: Value, shape: tuple[int, ...], loc) -> Value:
    """``x`` reshaped to ``shape``, folding a reshape that produced ``x`` and dropping
    the reshape when nothing changes (so simplification is idempotent)."""
    if producer_op(x) == "reshape":
        x = x.producer.inputs[0]
    if x.shape == shape:
        return x
    return rw.emit("reshape", [x], {"shape": shape}, loc)


def _is_identity_slice(node: Node, x: Value) -> bool:
    if node.op != "slice":
        return True
    return all(s == 1 for s in node.attrs["steps"])  # same shape + step 1 = everything


def _stable_softmax(rw: GraphRewriter, node: Node, a: Value, b: Value) -> Value | None:
    """exp(x) / sum(exp(x)) with an unshifted x -> exp(x - max) / sum(exp(x - max))."""
    parts = _exp_over_sum(a, b)
    if parts is None:
        return None
    x, _, sum_node = parts
    if _is_max_shifted(x):
        return None
    axes, loc = sum_node.attrs["axes"], node.loc
    m = rw.emit("reduce_max", [x], {"axes": axes, "keepdims": True}, loc)
    e = rw.emit("exp", [rw.emit("sub", [x, m], loc=loc)], loc=loc)
    s = rw.emit("reduce_sum", [e], {"axes": axes, "keepdims": True}, loc)
    return rw.emit("div", [e, s], loc=loc)


def simplify(graph: Graph) -> Graph:
    def replacement(rw: GraphRewriter, node: Node) -> Value | None:
        if len(node.outputs) != 1 or node.op == "constant":
            return None
        return simplify_node(rw, node, rw.inputs(node))

    return rewrite_nodes(graph, "simp", replacement)
