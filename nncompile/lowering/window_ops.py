"""Sliding-window ops: pooling, its gradients, and direct convolution.

General forms loop over the window with bounds checks. Fast forms, chosen when the
shapes allow, keep the innermost loop over output columns so it vectorizes:
- windows are unrolled (kernel sizes are static and small), so a pooled value is one
  max/add expression;
- with no padding every window position is in range: no clamps or selects;
- non-overlapping pooling (stride == kernel, no padding or dilation) differentiates as a
  gather: every input element belongs to one window, so dx is computed elementwise
  instead of by scatter-adds;
- a convolution whose contraction (in-channels per group x kernel area) is small runs
  directly, accumulating output rows in place, instead of im2col + GEMM, and so does
  the weight gradient.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir import dtypes as dt
from ..ir.graph import Node
from ..ir.kernel import (
    DIRECT_CONV_MAX_SUM,
    INDEX,
    Assign,
    Binary,
    Const,
    Expr,
    If,
    Let,
    Load,
    Local,
    Loop,
    Select,
    Stmt,
    Store,
    Unary,
    Var,
    const_index,
    iadd,
    idiv,
    imul,
    isub,
    linearize,
)
from ..ir.precision import bf16_products
from .exprs import clamp_index, const, in_range

UNROLL_WINDOW = 64  # windows up to this many elements are unrolled
DIRECT_CONV_K = DIRECT_CONV_MAX_SUM  # in-channels per group x kernel area: direct
# ... and up to this for few output channels per group: im2col pays off through the reuse
# of its matrix by every output channel, which a single one (a decoder's image) lacks
DIRECT_CONV_FEW_OUT_K, FEW_OUT = 288, 4


class ConvShape:
    """Geometry of a windowed op. Shapes are given as stored (NCHW, or NHWC with
    layout='NHWC'); ``n, c, h, w`` name the dims whatever their order, and ``order``
    arranges (n, c, h, w) indices the way the data is stored."""

    def __init__(self, x_shape, w_shape, out_shape, attrs):
        self.nhwc = attrs.get("layout", "NCHW") == "NHWC"
        self.n, self.c, self.h, self.w = self.dims(x_shape)
        self.o, self.cg, self.kh, self.kw = w_shape
        _, _, self.oh, self.ow = self.dims(out_shape)
        self.x_shape, self.out_shape = tuple(x_shape), tuple(out_shape)
        self.g = attrs["groups"]
        self.og = self.o // self.g
        self.sh, self.sw = attrs["strides"]
        self.ph, self.pw = attrs["pads"][0], attrs["pads"][1]
        self.dh, self.dw = attrs["dilations"]
        self.k = self.cg * self.kh * self.kw  # contraction length per group
        self.p = self.oh * self.ow  # output pixels
        self.padded = any(attrs["pads"])

    def dims(self, shape) -> tuple[int, int, int, int]:
        """(N, C, H, W) of a stored activation shape."""
        if self.nhwc:
            n, h, w, c = shape
            return n, c, h, w
        return tuple(shape)

    def order(self, n: Expr, c: Expr, h: Expr, w: Expr) -> list[Expr]:
        return [n, h, w, c] if self.nhwc else [n, c, h, w]

    def split(self, ix: list[Expr]) -> tuple[Expr, Expr, Expr, Expr]:
        """(n, c, h, w) of an index into stored activations."""
        if self.nhwc:
            n, h, w, c = ix
            return n, c, h, w
        n, c, h, w = ix
        return n, c, h, w

    def input_pos(self, oh: Expr, ow: Expr, i: Expr, j: Expr) -> tuple[Expr, Expr]:
        h = iadd(
            isub(imul(oh, const_index(self.sh)), const_index(self.ph)),
            imul(i, const_index(self.dh)),
        )
        w = iadd(
            isub(imul(ow, const_index(self.sw)), const_index(self.pw)),
            imul(j, const_index(self.dw)),
        )
        return h, w

    def valid(self, h: Expr, w: Expr) -> Expr:
        return Binary("and", in_range(h, self.h), in_range(w, self.w), dt.bool_)

    def x_index(self, n: Expr, c: Expr, h: Expr, w: Expr) -> Expr:
        return linearize(self.order(n, c, h, w), self.x_shape)

    def load(
        self, buf: str, n: Expr, c: Expr, h: Expr, w: Expr, d: dt.DType, outside: float
    ) -> Expr:
        """x[n, c, h, w], or ``outside`` in the padding (no checks when unpadded)."""
        if not self.padded:
            return Load(buf, self.x_index(n, c, h, w), d)
        at = self.x_index(n, c, clamp_index(h, self.h), clamp_index(w, self.w))
        return Select(self.valid(h, w), Load(buf, at, d), const(outside, d), d)


def worth_a_padded_copy(cs: ConvShape) -> bool:
    """A padded NCHW input read along contiguous rows (unit stride and dilation along w):
    copied once with its border, every load becomes a plain vector load."""
    return cs.padded and not cs.nhwc and cs.sw == 1 and cs.dw == 1


def unfold_image(
    kb, x_buf: str, cs: ConvShape, n: Expr, col: str, at: Expr, d: dt.DType
) -> list[Stmt]:
    """col[at + (c, i, j, oh, ow)] = x[n, c, h, w] (0 in the padding): image ``n``'s
    (C*kh*kw, OH*OW) im2col matrix, serial loops (a slot's or a chunk's own scratch)."""
    shape = (cs.c, cs.kh, cs.kw, cs.oh, cs.ow)

    def body(ix: list[Expr]) -> list[Stmt]:
        c, i, j, oh, ow = ix
        h, w = cs.input_pos(oh, ow, i, j)
        value = cs.load(x_buf, n, c, h, w, d, 0.0)  # no checks when unpadded
        return [Store(col, iadd(at, linearize(ix, shape)), value)]

    return kb.nest(shape, body, parallel=False)


def padded_input(
    kb, x_buf: str, cs: ConvShape, attrs: dict, d: dt.DType, rounded: bool = False
) -> tuple[str, ConvShape, list[Stmt]]:
    """An NCHW input copied once into zero-bordered scratch, and the geometry of reading
    it unpadded: every load of the convolution becomes a plain (vectorizable) one, where
    the padded form clamps each index and selects (a gather per vector). ``rounded``: the
    values rounded to bf16 as they are copied."""
    hp = max((cs.oh - 1) * cs.sh + (cs.kh - 1) * cs.dh + 1, cs.ph + cs.h)
    wp = max((cs.ow - 1) * cs.sw + (cs.kw - 1) * cs.dw + 1, cs.pw + cs.w)
    shape = (cs.n, cs.c, hp, wp)
    copy = kb.scratch("padded", d, cs.n * cs.c * hp * wp)
    stmts = kb.nest((cs.n * cs.c * hp * wp,), lambda ix: [Store(copy, ix[0], const(0, d))])

    def inside(ix: list[Expr]) -> list[Stmt]:
        n, c, h, w = ix
        at = linearize([n, c, iadd(h, const_index(cs.ph)), iadd(w, const_index(cs.pw))], shape)
        value: Expr = Load(x_buf, linearize(ix, cs.x_shape), d)
        return [Store(copy, at, Unary("round_bf16", value, d) if rounded else value)]

    stmts += kb.nest((cs.n, cs.c, cs.h, cs.w), inside)
    no_pads = {**attrs, "pads": [0] * len(attrs["pads"])}
    unpadded = ConvShape(shape, (cs.o, cs.cg, cs.kh, cs.kw), cs.out_shape, no_pads)
    return copy, unpadded, stmts


def pool_geometry(node: Node, x_shape, out_shape) -> ConvShape:
    attrs = node.attrs
    fake = {
        "groups": 1,
        "strides": attrs["strides"],
        "pads": attrs["pads"],
        "dilations": attrs["dilations"],
        "layout": attrs["layout"],
    }
    channels = x_shape[3] if attrs["layout"] == "NHWC" else x_shape[1]
    return ConvShape(x_shape, (channels, 1, *attrs["kernel"]), out_shape, fake)


def _non_overlapping(cs: ConvShape) -> bool:
    return not cs.padded and (cs.sh, cs.sw) == (cs.kh, cs.kw) and (cs.dh, cs.dw) == (1, 1)


def _own_window(cs: ConvShape, h: Expr, w: Expr) -> tuple[Expr, Expr, Expr]:
    """For non-overlapping windows: (is (h, w) inside a window, its window row, column),
    the row and column clamped so loads stay in range when it is not."""
    oh, ow = idiv(h, cs.kh), idiv(w, cs.kw)
    inside = Binary(
        "and",
        Binary("lt", oh, const_index(cs.oh), dt.bool_),
        Binary("lt", ow, const_index(cs.ow), dt.bool_),
        dt.bool_,
    )
    return inside, clamp_index(oh, cs.oh), clamp_index(ow, cs.ow)


def _positions(cs: ConvShape) -> list[tuple[int, int]]:
    return [(i, j) for i in range(cs.kh) for j in range(cs.kw)]


def _window_loops(kb, cs: ConvShape, body) -> list[Stmt]:
    i, j = kb.fresh("ki"), kb.fresh("kj")
    return [Loop(i, cs.kh, [Loop(j, cs.kw, body(Var(i, INDEX), Var(j, INDEX)))])]


# ---- pooling --------------------------------------------------------------------------------


def lower_max_pool2d(kb, node: Node, target: str) -> list[Stmt]:
    x, out = node.inputs[0], node.outputs[0]
    cs = pool_geometry(node, x.shape, out.shape)
    d, x_buf = out.dtype, kb.buffer(x)

    def body(ix: list[Expr]) -> list[Stmt]:
        n, c, oh, ow = cs.split(ix)
        if cs.kh * cs.kw <= UNROLL_WINDOW:
            best: Expr | None = None
            for i, j in _positions(cs):
                h, w = cs.input_pos(oh, ow, const_index(i), const_index(j))
                v = cs.load(x_buf, n, c, h, w, d, -np.inf)
                best = v if best is None else Binary("max", best, v, d)
            return kb.store_result(target, ix, out.shape, best)
        acc = kb.fresh("acc")

        def step(i, j):
            h, w = cs.input_pos(oh, ow, i, j)
            v = cs.load(x_buf, n, c, h, w, d, -np.inf)
            return [Assign(acc, Binary("max", Var(acc, d), v, d))]

        return [
            Local(acc, d, const(-np.inf, d)),
            *_window_loops(kb, cs, step),
            *kb.store_result(target, ix, out.shape, Var(acc, d)),
        ]

    return kb.nest(out.shape, body)


def lower_avg_pool2d(kb, node: Node, target: str) -> list[Stmt]:
    x, out = node.inputs[0], node.outputs[0]
    cs = pool_geometry(node, x.shape, out.shape)
    d, x_buf = out.dtype, kb.buffer(x)
    include_pad = node.attrs["count_include_pad"]

    def body(ix: list[Expr]) -> list[Stmt]:
        n, c, oh, ow = cs.split(ix)
        total: Expr | None = None
        count: Expr | None = None
        for i, j in _positions(cs):
            h, w = cs.input_pos(oh, ow, const_index(i), const_index(j))
            v = cs.load(x_buf, n, c, h, w, d, 0.0)
            total = v if total is None else Binary("add", total, v, d)
            if cs.padded and not include_pad:
                one = Select(cs.valid(h, w), const(1, d), const(0, d), d)
                count = one if count is None else Binary("add", count, one, d)
        if count is None:
            count = const(cs.kh * cs.kw, d)
        return kb.store_result(target, ix, out.shape, Binary("div", total, count, d))

    return kb.nest(out.shape, body)


def lower_max_pool2d_backward(kb, node: Node, target: str) -> list[Stmt]:
    x, gout = node.inputs
    cs = pool_geometry(node, x.shape, gout.shape)
    if _non_overlapping(cs) and cs.kh * cs.kw <= UNROLL_WINDOW:
        return _max_pool_backward_gather(kb, node, target, cs)
    return _max_pool_backward_scatter(kb, node, target, cs)


def _max_pool_backward_gather(kb, node: Node, target: str, cs: ConvShape) -> list[Stmt]:
    """Non-overlapping windows: each window is visited once; it finds its first maximum
    with boolean logic (m = the NaN-propagating max; element k is a maximum if it equals
    m or both are NaN, and the first one if no earlier element is) and writes all of its
    dx cells: the gradient at the first maximum, 0 elsewhere. Cells that no window covers
    are zeroed first (and then the epilogue runs as its own loop)."""
    x, gout = node.inputs
    dx = node.outputs[0]
    d, x_buf, g_buf = dx.dtype, kb.buffer(x), kb.buffer(gout)
    covered = cs.oh * cs.kh == cs.h and cs.ow * cs.kw == cs.w
    stmts = [] if covered else _zero(kb, target, dx.type.size, d)
    if not covered:
        kb.fused_epilogue = None  # uncovered cells need the epilogue too: run it separately

    def body(ix: list[Expr]) -> list[Stmt]:
        n, c, oh, ow = cs.split(ix)
        out: list[Stmt] = []
        cells, values = [], []
        for i, j in _positions(cs):
            h = iadd(imul(oh, const_index(cs.kh)), const_index(i))
            w = iadd(imul(ow, const_index(cs.kw)), const_index(j))
            cells.append(cs.order(n, c, h, w))
            name = kb.fresh("v")
            out.append(Let(name, Load(x_buf, linearize(cells[-1], x.shape), d)))
            values.append(Var(name, d))
        m = values[0]
        for v in values[1:]:
            m = Binary("max", m, v, d)
        mname, gname = kb.fresh("m"), kb.fresh("g")
        out += [Let(mname, m), Let(gname, Load(g_buf, linearize(ix, gout.shape), d))]
        m = Var(mname, d)
        m_nan = Binary("ne", m, m, dt.bool_)
        taken: Expr = Const(False, dt.bool_)
        for cell, v in zip(cells, values, strict=True):
            is_max = Binary(
                "or",
                Binary("eq", v, m, dt.bool_),
                Binary("and", Binary("ne", v, v, dt.bool_), m_nan, dt.bool_),
                dt.bool_,
            )
            first = Binary("and", is_max, Unary("not", taken, dt.bool_), dt.bool_)
            flag = kb.fresh("t")
            out.append(Let(flag, Binary("or", taken, is_max, dt.bool_)))
            out += kb.store_result(
                target, cell, dx.shape, Select(first, Var(gname, d), const(0, d), d)
            )
            taken = Var(flag, dt.bool_)
        return out

    return stmts + kb.nest(gout.shape, body)


def _zero(kb, buf: str, size: int, d: dt.DType) -> list[Stmt]:
    return kb.nest((size,), lambda ix: [Store(buf, ix[0], const(0, d))])


def plane_parallel(kb, shape: tuple[int, ...], body, nhwc: bool = False) -> list[Stmt]:
    """A nest whose leading independent dims run in parallel and the rest serially:
    windows overlap inside an image's H x W plane, so only (n, c) planes (NCHW) or
    images (NHWC, where c comes last) are independent."""
    split = 1 if nhwc else 2
    return kb.nest(
        shape[:split],
        lambda outer: kb.nest(
            shape[split:], lambda inner: body(outer + inner), parallel=False, prefix="w"
        ),
    )


def _max_pool_backward_scatter(kb, node: Node, target: str, cs: ConvShape) -> list[Stmt]:
    x, gout = node.inputs
    dx = node.outputs[0]
    d, x_buf, g_buf = dx.dtype, kb.buffer(x), kb.buffer(gout)
    stmts = _zero(kb, target, dx.type.size, d)

    def body(ix: list[Expr]) -> list[Stmt]:
        n, c, oh, ow = cs.split(ix)
        best, bh, bw = kb.fresh("best"), kb.fresh("bh"), kb.fresh("bw")
        h0, w0 = cs.input_pos(oh, ow, const_index(0), const_index(0))

        def step(i, j):
            h, w = cs.input_pos(oh, ow, i, j)
            value = cs.load(x_buf, n, c, h, w, d, -np.inf)
            cur = Var(best, d)
            better = Binary("gt", value, cur, dt.bool_)
            first_nan = Binary(
                "and",
                Binary("ne", value, value, dt.bool_),
                Unary("not", Binary("ne", cur, cur, dt.bool_), dt.bool_),
                dt.bool_,
            )
            return [
                If(
                    Binary("or", better, first_nan, dt.bool_),
                    [Assign(best, value), Assign(bh, h), Assign(bw, w)],
                )
            ]

        dst = cs.x_index(n, c, clamp_index(Var(bh, INDEX), cs.h), clamp_index(Var(bw, INDEX), cs.w))
        grad = Load(g_buf, linearize(ix, gout.shape), d)
        keep = cs.valid(Var(bh, INDEX), Var(bw, INDEX))  # a padded winner drops its grad
        return [
            Local(best, d, const(-np.inf, d)),
            Local(bh, INDEX, h0),
            Local(bw, INDEX, w0),
            *_window_loops(kb, cs, step),
            If(keep, [Store(target, dst, Binary("add", Load(target, dst, d), grad, d))]),
        ]

    return stmts + plane_parallel(kb, gout.shape, body, cs.nhwc)


def lower_avg_pool2d_backward(kb, node: Node, target: str) -> list[Stmt]:
    (gout,) = node.inputs
    dx = node.outputs[0]
    cs = pool_geometry(node, dx.shape, gout.shape)
    d, g_buf = dx.dtype, kb.buffer(gout)
    if _non_overlapping(cs):  # no padding: every window counts kh * kw cells

        def gather(ix: list[Expr]) -> list[Stmt]:
            n, c, h, w = cs.split(ix)
            inside, ohc, owc = _own_window(cs, h, w)
            at = linearize(cs.order(n, c, ohc, owc), gout.shape)
            share = Binary("div", Load(g_buf, at, d), const(cs.kh * cs.kw, d), d)
            return kb.store_result(target, ix, dx.shape, Select(inside, share, const(0, d), d))

        return kb.nest(dx.shape, gather)
    stmts = _zero(kb, target, dx.type.size, d)

    def body(ix: list[Expr]) -> list[Stmt]:
        n, c, oh, ow = cs.split(ix)
        cnt, share = kb.fresh("cnt"), kb.fresh("share")

        def count_step(i, j):
            h, w = cs.input_pos(oh, ow, i, j)
            one = Select(cs.valid(h, w), const(1, d), const(0, d), d)
            return [Assign(cnt, Binary("add", Var(cnt, d), one, d))]

        def add_step(i, j):
            h, w = cs.input_pos(oh, ow, i, j)
            dst = cs.x_index(n, c, clamp_index(h, cs.h), clamp_index(w, cs.w))
            return [
                If(
                    cs.valid(h, w),
                    [Store(target, dst, Binary("add", Load(target, dst, d), Var(share, d), d))],
                )
            ]

        grad = Load(g_buf, linearize(ix, gout.shape), d)
        if node.attrs["count_include_pad"]:
            head = [Let(share, Binary("div", grad, const(cs.kh * cs.kw, d), d))]
        else:
            head = [
                Local(cnt, d, const(0, d)),
                *_window_loops(kb, cs, count_step),
                Let(share, Binary("div", grad, Var(cnt, d), d)),
            ]
        return head + _window_loops(kb, cs, add_step)

    return stmts + plane_parallel(kb, gout.shape, body, cs.nhwc)


# ---- direct convolution ---------------------------------------------------------------------


def direct_conv_applies(cs: ConvShape, im2col_in_memory: bool) -> bool:
    """Short sums convolve directly; so do longer ones for few output channels when the
    im2col matrix would be written to memory (a CPU; a GPU's implicit GEMM computes it
    where it reads it)."""
    few_outputs = cs.og <= FEW_OUT and cs.k <= DIRECT_CONV_FEW_OUT_K
    return cs.k <= DIRECT_CONV_K or (im2col_in_memory and few_outputs)


def _rounded_copy(src: str, dst: str, ix: list[Expr], shape, d: dt.DType) -> list[Stmt]:
    at = linearize(ix, shape)
    return [Store(dst, at, Unary("round_bf16", Load(src, at, d), d))]


def rounded_input(kb, x_buf: str, shape: tuple, d: dt.DType) -> tuple[str, list[Stmt]]:
    """A copy of an input rounded to bf16 (matmul_precision="bf16"), for products that read
    each of its values many times: rounded once here, not at every load."""
    copy = kb.scratch("x_bf16", d, math.prod(shape))
    # (one loop over each leading entry's elements: rows of 28 vectorized 4 wide and left
    # the seed CNN's bf16 convolution 0.011 ms slower than its float32 one)
    flat = (shape[0], math.prod(shape[1:])) if len(shape) > 1 else tuple(shape)
    return copy, kb.nest(flat, lambda ix: _rounded_copy(x_buf, copy, ix, flat, d))


def lower_conv2d_direct(
    kb, node: Node, target: str, cs: ConvShape, x_buf: str | None = None
) -> list[Stmt]:
    """out[n, o, oh, ow] = sum over (c, i, j) of w[o, c, i, j] * x[n, g*cg + c, h, w], the
    small sum unrolled into one expression: the loop over output columns vectorizes with
    every weight a broadcast and every input row a (shifted) vector load. ``x_buf``: read
    the input from there (a padded copy, which ``cs`` describes, rounded to bf16 under
    matmul_precision="bf16") instead."""
    x, w = node.inputs
    out = node.outputs[0]
    d, w_buf = out.dtype, kb.buffer(w)
    stmts: list[Stmt] = []
    # matmul_precision="bf16": the products of a bf16 GEMM, rounded operands summed in
    # float32. The weights are rounded in their copy below, the input in a copy of its own
    # (a padded copy is rounded already: padded_input(rounded=True)).
    bf16 = bf16_products(d)
    if bf16 and x_buf is None:
        x_buf, copy = rounded_input(kb, kb.buffer(x), x.shape, d)
        stmts += copy
    x_buf = x_buf or kb.buffer(x)
    # NHWC vectorizes over the output channels o: copy the (small) weights to (cg, kh, kw, o)
    # so that each weight tap is a contiguous vector load, not a gather.
    w_shape, w_order = (cs.o, cs.cg, cs.kh, cs.kw), (0, 1, 2, 3)
    if cs.nhwc:
        w_order = (1, 2, 3, 0)  # the (o, c, i, j) axes in the copy's order
        t_shape = tuple(w_shape[k] for k in w_order)
        w_t = kb.scratch("w_t", d, cs.o * cs.k)

        def copy(ix: list[Expr]) -> list[Stmt]:
            at = linearize([ix[k] for k in w_order], t_shape)
            value: Expr = Load(w_buf, linearize(ix, w_shape), d)
            return [Store(w_t, at, Unary("round_bf16", value, d) if bf16 else value)]

        stmts += kb.nest(w_shape, copy)
        w_buf, w_shape = w_t, t_shape
    elif bf16:
        w_r = kb.scratch("w_bf16", d, cs.o * cs.k)
        stmts += kb.nest(w_shape, lambda ix: _rounded_copy(w_buf, w_r, ix, w_shape, d))
        w_buf = w_r

    def convolve(n: Expr, o: Expr, oh: Expr, ow: Expr) -> Expr:
        total: Expr | None = None
        for c in range(cs.cg):
            channel = iadd(imul(idiv(o, cs.og), const_index(cs.cg)), const_index(c))
            for i, j in _positions(cs):
                oihw = [o, const_index(c), const_index(i), const_index(j)]
                wv = Load(w_buf, linearize([oihw[k] for k in w_order], w_shape), d)
                h, wpos = cs.input_pos(oh, ow, const_index(i), const_index(j))
                xv = cs.load(x_buf, n, channel, h, wpos, d, 0.0)
                term = Binary("mul", wv, xv, d)
                total = term if total is None else Binary("add", total, term, d)
        assert total is not None
        return total

    # A few outputs per step along one axis of the output. NCHW: output channels, so that
    # each input row loaded (a vector along ow) feeds several channels' sums instead of one
    # (loads, not FMAs, bound this loop). NHWC: output columns, each weight tap (a vector
    # along o) loaded once for all of them (the seed CNN's first convolution, 2 columns a
    # step: 0.090 -> 0.069 ms on 2 Zen 5 threads); a GPU keeps a thread per output.
    if cs.nhwc:
        axis = 2  # (n, oh, ow, o)
        block = next((b for b in (4, 2) if b <= kb.target.conv_columns and cs.ow % b == 0), 1)
    else:
        axis = 1  # (n, o, oh, ow)
        block = next((b for b in (4, 2) if cs.og % b == 0), 1)

    def blocked(ix: list[Expr]) -> list[Stmt]:
        stores: list[Stmt] = []
        for r in range(block):
            full = list(ix)
            full[axis] = iadd(imul(ix[axis], const_index(block)), const_index(r))
            n, o, oh, ow = cs.split(full)
            stores += kb.store_result(target, full, out.shape, convolve(n, o, oh, ow))
        return stores

    shape = list(out.shape)
    shape[axis] //= block
    return stmts + kb.nest(tuple(shape), blocked)
