"""Element expressions: the value of a graph value at a multi-index, as kernel IR.

``ElementBuilder.at(v, index)`` inlines the injective ops of a fusion group: elementwise
arithmetic becomes kernel-IR arithmetic, movement ops become index arithmetic
(broadcasting maps a size-1 dim to index 0, a transpose permutes the index, a slice is
``start + i * step``), and a value produced outside the group is a load from its buffer.
Values already computed in an enclosing scope (a reduction's result, a hoisted scalar)
are bound to variables.

Data-dependent indices (gather) are clamped into range so no load can leave its buffer;
the out-of-range condition is collected in ``checks`` so the kernel can report it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..ir import dtypes as dt
from ..ir import kernel
from ..ir.graph import Node, Value
from ..ir.kernel import (
    INDEX,
    Binary,
    Cast,
    Const,
    Expr,
    Load,
    Select,
    Unary,
    Var,
    const_index,
    delinearize,
    iadd,
    imul,
    isub,
    linearize,
)
from ..ir.ops.binary import BINARY
from ..ir.ops.movement import axis_length, slice_ranges
from ..ir.ops.unary import UNARY
from ..ir.symbolic import dim

Index = list[Expr]


def const(value: Any, dtype: dt.DType) -> Const:
    if dtype.is_float:
        return Const(float(value), dtype)
    if dtype.is_bool:
        return Const(bool(value), dtype)
    return Const(int(value), dtype)


def combine_chunks(
    buf: str, flat: Expr, chunks: int, stride: int, d: dt.DType, combine: Callable
) -> Expr:
    """The partial results that ``chunks`` parallel chunks left at ``flat + c * stride`` in
    ``buf``, folded with ``combine(a, b)``, in chunk order."""
    total: Expr = Load(buf, flat, d)
    for c in range(1, chunks):
        total = combine(total, Load(buf, iadd(flat, const_index(c * stride)), d))
    return total


def broadcast_index(index: Index, out_shape: tuple[int, ...], in_shape: tuple[int, ...]) -> Index:
    """NumPy broadcasting: align right; a size-1 input dim reads index 0."""
    lead = len(out_shape) - len(in_shape)
    return [const_index(0) if d == 1 else index[lead + i] for i, d in enumerate(in_shape)]


def clamp_index(i: Expr, size: int) -> Expr:
    lo = Binary("max", i, const_index(0), INDEX)
    return Binary("min", lo, const_index(max(size - 1, 0)), INDEX)


def in_range(i: Expr, size: int) -> Expr:
    return Binary(
        "and",
        Binary("ge", i, const_index(0), dt.bool_),
        Binary("lt", i, const_index(size), dt.bool_),
        dt.bool_,
    )


# Element rules call ``at`` for their operands, so a fused chain recurses once per op.
# Deeper than this, ``at`` stops and the outermost call builds that operand first (see
# ``_build``): the Python stack stays bounded however long the chain.
MAX_NESTED_RULES = 64


class _Deeper(Exception):
    """Raised by a nested ``at`` at the limit: build ``(value, index)`` first."""

    def __init__(self, value: Value, index: Index):
        super().__init__()
        self.value, self.index = value, index


class ElementBuilder:
    def __init__(
        self,
        members: set[int],
        buffer_of: Callable[[Value], str],
        scalar_constants: dict[int, np.ndarray],
    ):
        self.members = members  # ids of the nodes inlined here
        self.buffer_of = buffer_of
        self.scalar_constants = scalar_constants  # size-1 constants become literals
        self.bound: dict[int, Expr] = {}  # id(value) -> expression valid in this scope
        self.checks: list[tuple[Expr, str]] = []  # (bad condition, message)
        self._memo: dict[tuple, Expr] = {}
        self._nesting = 0  # element rules running inside the current outermost ``at``
        self.ranges: dict[str, tuple[int, int]] = {}  # loop variable -> [lo, hi)

    def bind(self, v: Value, e: Expr) -> None:
        self.bound[id(v)] = e

    def load(self, v: Value, index: Index) -> Expr:
        return Load(self.buffer_of(v), linearize(index, v.shape), v.dtype)

    def at(self, v: Value, index: Index) -> Expr:
        if id(v) in self.bound:
            return self.bound[id(v)]
        if id(v) in self.scalar_constants:
            return const(self.scalar_constants[id(v)].reshape(-1)[0], v.dtype)
        if v.producer is None or id(v.producer) not in self.members:
            return self.load(v, index)
        key = (id(v), tuple(index))
        if key not in self._memo:
            if self._nesting == 0:
                self._build(v, index)
            elif self._nesting >= MAX_NESTED_RULES:
                raise _Deeper(v, index)
            else:
                self._nesting += 1
                try:
                    self._memo[key] = self._node_at(v.producer, v, index)
                finally:
                    self._nesting -= 1
        return self._memo[key]

    def _build(self, v: Value, index: Index) -> None:
        """The outermost ``at``. A rule nested too deep gives up (``_Deeper``) and its
        operand is built first, from a fresh stack; the rules it interrupted then run
        again and find it in the memo. Each rule runs at most twice per operand built."""
        pending = [(v, index)]
        first_check, retried = len(self.checks), False
        while pending:
            u, ix = pending[-1]
            key = (id(u), tuple(ix))
            if key in self._memo:
                pending.pop()
                continue
            self._nesting = 1
            try:
                self._memo[key] = self._node_at(u.producer, u, ix)
                pending.pop()
            except _Deeper as deeper:
                pending.append((deeper.value, deeper.index))
                retried = True
            finally:
                self._nesting = 0
        if retried:  # an interrupted rule that ran again recorded its checks again
            unique = dict.fromkeys(self.checks[first_check:])
            self.checks[first_check:] = list(unique)

    # ---- one rule per injective op -----------------------------------------------------

    def _operand(self, node: Node, i: int, index: Index) -> Expr:
        x = node.inputs[i]
        return self.at(x, broadcast_index(index, node.outputs[0].shape, x.shape))

    def _node_at(self, node: Node, v: Value, index: Index) -> Expr:
        op, d = node.op, v.dtype
        unary = UNARY.get(op)
        if unary is not None:  # declared in ir/ops/unary.py: one kernel op or a builder
            x = self._operand(node, 0, index)
            if isinstance(unary.kernel, str):
                return Unary(unary.kernel, x, d)
            return unary.kernel(kernel, x)
        binary = BINARY.get(op)
        if binary is not None:  # declared in ir/ops/binary.py: one kernel op or a builder
            a, b = self._operand(node, 0, index), self._operand(node, 1, index)
            if isinstance(binary.kernel, str):
                return Binary(binary.kernel, a, b, dt.bool_ if binary.result_bool else d)
            return binary.kernel(kernel, a, b, d)
        rule = getattr(self, f"_op_{op}", None)
        if rule is not None:
            return rule(node, index)
        raise NotImplementedError(f"no element rule for op {op!r} (node {node.name})")

    def _op_stop_gradient(self, node, index):
        return self._operand(node, 0, index)

    def _op_where(self, node, index):
        c, a, b = (self._operand(node, i, index) for i in range(3))
        return Select(c, a, b, node.outputs[0].dtype)

    def _op_cast(self, node, index):
        return Cast(self._operand(node, 0, index), node.attrs["to"])

    def _op_batch_size(self, node, index):
        a = node.attrs
        return Cast(const_index(dim(a["scale"], a["offset"])), a["dtype"])

    # ---- movement ----------------------------------------------------------------------

    def _op_reshape(self, node, index):
        x, out = node.inputs[0], node.outputs[0]
        squeezed_in = [d for d in x.shape if d != 1]
        squeezed_out = [(i, d) for i, d in zip(index, out.shape, strict=True) if d != 1]
        if squeezed_in == [d for _, d in squeezed_out]:
            # Only size-1 dims appear or disappear: the non-trivial indices carry over.
            it = iter(i for i, _ in squeezed_out)
            return self.at(x, [const_index(0) if d == 1 else next(it) for d in x.shape])
        return self.at(x, delinearize(linearize(index, out.shape), x.shape))

    def _op_transpose(self, node, index):
        perm = node.attrs["perm"]
        inner: Index = [const_index(0)] * len(perm)
        for i, p in enumerate(perm):
            inner[p] = index[i]
        return self.at(node.inputs[0], inner)

    def _op_expand(self, node, index):
        return self._operand(node, 0, index)

    def _op_slice(self, node, index):
        x = node.inputs[0]
        a = node.attrs
        ranges = slice_ranges(x.shape, a["starts"], a["ends"], a["axes"], a["steps"])
        inner = [
            iadd(const_index(r.start if axis_length(r) else 0), imul(i, const_index(r.step)))
            for i, r in zip(index, ranges, strict=True)
        ]
        return self.at(x, inner)

    def _op_pad(self, node, index):
        x, out = node.inputs[0], node.outputs[0]
        pads, mode = node.attrs["pads"], node.attrs["mode"]
        inner, valid = [], None
        for axis, (i, size) in enumerate(zip(index, x.shape, strict=True)):
            j = isub(i, const_index(pads[axis]))
            if mode == "reflect":  # mirror without repeating the edge
                j = _reflect(j, size)
            elif mode == "edge" or size == 0:
                j = clamp_index(j, size)
            else:
                ok = in_range(j, size)
                valid = ok if valid is None else Binary("and", valid, ok, dt.bool_)
                j = clamp_index(j, size)
            inner.append(j)
        if x.type.size == 0:
            return const(node.attrs["value"], out.dtype)
        loaded = self.at(x, inner)
        if valid is None:
            return loaded
        return Select(valid, loaded, const(node.attrs["value"], out.dtype), out.dtype)

    def index_range(self, e: Expr) -> tuple[int, int] | None:
        """[lo, hi) of an index expression, when loop ranges bound it: a sum of constants
        and loop variables (summed from a stack: a chain of slices nests deeply)."""
        lo = hi = 0  # the sum's smallest and largest values
        stack = [e]
        while stack:
            x = stack.pop()
            if isinstance(x, Binary) and x.op == "add":
                stack += (x.a, x.b)
                continue
            if isinstance(x, Const):
                known = (int(x.value), int(x.value) + 1)
            elif isinstance(x, Var) and x.name in self.ranges:
                known = self.ranges[x.name]
            else:
                return None
            lo, hi = lo + known[0], hi + known[1] - 1
        return lo, hi + 1

    def _op_concat(self, node, index):
        axis = node.attrs["axis"] % len(node.outputs[0].shape)
        known = self.index_range(index[axis])
        if known is not None:  # the index stays inside one input: read it directly
            start = 0
            for x in node.inputs:
                size = x.shape[axis]
                if size and start <= known[0] and known[1] <= start + size:
                    inner = list(index)
                    inner[axis] = isub(index[axis], const_index(start))
                    return self.at(x, inner)
                start += size
        pieces, start = [], 0
        for x in node.inputs:
            size = x.shape[axis]
            if size:
                inner = list(index)
                inner[axis] = clamp_index(isub(index[axis], const_index(start)), size)
                pieces.append((start, self.at(x, inner)))
            start += size
        # The last piece whose start the index has reached.
        result = pieces[0][1]
        for begin, value in pieces[1:]:
            reached = Binary("ge", index[axis], const_index(begin), dt.bool_)
            result = Select(reached, value, result, node.outputs[0].dtype)
        return result

    def _checked(self, raw: Expr, size: int, op: str) -> Expr:
        """Normalize a negative index once, clamp it, and record the out-of-range case."""
        i = Cast(raw, INDEX)
        wrapped = Select(
            Binary("lt", i, const_index(0), dt.bool_), iadd(i, const_index(size)), i, INDEX
        )
        bad = Unary("not", in_range(wrapped, size), dt.bool_)
        self.checks.append((bad, f"{op}: index out of range for an axis of size {size}"))
        return clamp_index(wrapped, size)

    def _op_gather(self, node, index):
        data, idx = node.inputs
        axis = node.attrs["axis"] % len(data.shape)
        k = len(idx.shape)
        raw = self.at(idx, index[axis : axis + k])
        j = self._checked(raw, data.shape[axis], "gather")
        return self.at(data, index[:axis] + [j] + index[axis + k :])

    def _op_gather_elements(self, node, index):
        data, idx = node.inputs
        axis = node.attrs["axis"] % len(data.shape)
        j = self._checked(self.at(idx, index), data.shape[axis], "gather_elements")
        inner = list(index)
        inner[axis] = j
        return self.at(data, inner)

    def _op_one_hot(self, node, index):
        (idx,) = node.inputs
        out = node.outputs[0]
        depth = node.attrs["depth"]
        axis = node.attrs["axis"] % len(out.shape)
        raw = Cast(self.at(idx, index[:axis] + index[axis + 1 :]), INDEX)
        wrapped = Select(
            Binary("lt", raw, const_index(0), dt.bool_), iadd(raw, const_index(depth)), raw, INDEX
        )
        hit = Binary("eq", wrapped, index[axis], dt.bool_)
        return Select(hit, const(1, out.dtype), const(0, out.dtype), out.dtype)

    def _op_slice_backward(self, node, index):
        (g,) = node.inputs
        a, out = node.attrs, node.outputs[0]
        ranges = slice_ranges(out.shape, a["starts"], a["ends"], a["axes"], a["steps"])
        inner, valid = [], None
        for i, r in zip(index, ranges, strict=True):
            length = axis_length(r)
            if length == 0:
                return const(0, out.dtype)
            off = isub(i, const_index(r.start))
            step = r.step
            q = Binary("idiv", off, const_index(step), INDEX) if step != 1 else off
            ok = Binary("eq", imul(q, const_index(step)), off, dt.bool_)
            ok = Binary("and", ok, in_range(q, length), dt.bool_)
            valid = ok if valid is None else Binary("and", valid, ok, dt.bool_)
            inner.append(clamp_index(q, length))
        value = self.at(g, inner)
        return value if valid is None else Select(valid, value, const(0, out.dtype), out.dtype)

    def _op_scatter_elements_add(self, node, index):
        # Only reached when the indices have extent 1 on the axis (see fusion.node_class).
        g, idx = node.inputs
        out = node.outputs[0]
        axis = node.attrs["axis"] % len(out.shape)
        inner = list(index)
        inner[axis] = const_index(0)
        in_bounds = None  # updates may cover only a corner of the output
        for a, (gs, os) in enumerate(zip(g.shape, out.shape, strict=True)):
            if a != axis and gs < os:
                ok = Binary("lt", index[a], const_index(gs), dt.bool_)
                in_bounds = ok if in_bounds is None else Binary("and", in_bounds, ok, dt.bool_)
                inner[a] = clamp_index(index[a], gs)
        j = self._checked(self.at(idx, inner), out.shape[axis], "scatter_elements_add")
        hit = Binary("eq", j, index[axis], dt.bool_)
        if in_bounds is not None:
            hit = Binary("and", hit, in_bounds, dt.bool_)
        return Select(hit, self.at(g, inner), const(0, out.dtype), out.dtype)

    def _op_random_uniform(self, node, index):
        out = node.outputs[0]
        key = Cast(self.at(node.inputs[0], []), dt.int64)
        counter = linearize(index, out.shape)
        bits = _splitmix64(Binary("add", _splitmix64(key), counter, dt.int64))
        if out.dtype == dt.float32:
            top = Binary("lshr", bits, Const(40, dt.int64), dt.int64)
            return Binary("mul", Cast(top, dt.float32), Const(2.0**-24, dt.float32), dt.float32)
        top = Binary("lshr", bits, Const(11, dt.int64), dt.int64)
        return Binary("mul", Cast(top, dt.float64), Const(2.0**-53, dt.float64), dt.float64)


def _reflect(j: Expr, size: int) -> Expr:
    """Mirror an index into [0, size) without repeating the edge (pads < size)."""
    neg = Binary("lt", j, const_index(0), dt.bool_)
    j = Select(neg, isub(const_index(0), j), j, INDEX)
    over = Binary("ge", j, const_index(size), dt.bool_)
    return Select(over, isub(const_index(2 * size - 2), j), j, INDEX)


def _u64(v: int) -> Const:
    return Const(v - (1 << 64) if v >= 1 << 63 else v, dt.int64)  # the same bits as int64


def _splitmix64(z: Expr) -> Expr:
    """The splitmix64 finalizer on int64 bits (wrapping arithmetic, logical shifts)."""
    i64 = dt.int64
    z = Binary("add", z, _u64(0x9E3779B97F4A7C15), i64)
    z = Binary(
        "mul",
        Binary("xor", z, Binary("lshr", z, Const(30, i64), i64), i64),
        _u64(0xBF58476D1CE4E5B9),
        i64,
    )
    z = Binary(
        "mul",
        Binary("xor", z, Binary("lshr", z, Const(27, i64), i64), i64),
        _u64(0x94D049BB133111EB),
        i64,
    )
    return Binary("xor", z, Binary("lshr", z, Const(31, i64), i64), i64)
