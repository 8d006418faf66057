"""Lowering of the compute-heavy ops: matmul and convolutions onto the Gemm template
(convolutions through im2col / col2im in arena scratch), pooling and its gradients as
window loops, and the scatter-adds."""

from __future__ import annotations

import itertools

from ..ir import dtypes as dt
from ..ir.graph import Node, Value
from ..ir.kernel import (
    INDEX,
    Assign,
    Binary,
    Expr,
    Gemm,
    If,
    Load,
    Local,
    Loop,
    Select,
    Stmt,
    Store,
    Unary,
    Var,
    ceil_div,
    const_index,
    iadd,
    idiv,
    imul,
    linearize,
    strided,
)
from ..ir.precision import bf16_products
from ..ir.registry import broadcast_shapes
from ..ir.symbolic import Dim
from .exprs import clamp_index, combine_chunks, const
from .slots import ImageSlots
from .window_ops import (
    ConvShape,
    direct_conv_applies,
    lower_avg_pool2d,
    lower_avg_pool2d_backward,
    lower_conv2d_direct,
    lower_max_pool2d,
    lower_max_pool2d_backward,
    padded_input,
    plane_parallel,
    rounded_input,
    unfold_image,
    worth_a_padded_copy,
)


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, s = [], 1
    for d in reversed(shape):
        strides.append(s)
        s *= d
    return tuple(reversed(strides))


def _operand(kb, v: Value) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """(buffer, shape, strides) of a matmul operand; an absorbed transpose or reshape is a
    view of its input's buffer (a reshape: the same elements at the same flat indices; the
    fusion pass absorbs one only of a stored value, or under a transpose)."""
    p = v.producer
    if p is not None and p in kb.absorbed():
        buffer, _, strides = _operand(kb, p.inputs[0])
        if p.op == "reshape":
            return buffer, v.shape, contiguous_strides(v.shape)
        return buffer, v.shape, tuple(strides[i] for i in p.attrs["perm"])
    return kb.buffer(v), v.shape, contiguous_strides(v.shape)


def merge_batch_dims(batch: list, strides: list[list]) -> tuple[tuple, list[list]]:
    """Adjacent batch dims that every operand steps through as one (stride of the outer =
    extent of the inner x its stride; broadcast ones too) become one dim: attention's
    (n, heads) is one GEMM batch of n*heads, not a loop of GEMMs."""
    dims, strides = list(batch), [list(s) for s in strides]
    for i in reversed(range(len(dims) - 1)):
        if all(st[i] == dims[i + 1] * st[i + 1] for st in strides):
            dims[i : i + 2] = [dims[i] * dims[i + 1]]
            for st in strides:
                st[i : i + 2] = [st[i + 1]]
    return tuple(dims), strides


def lower_matmul(kb, node: Node, target: str) -> list[Stmt]:
    (a_buf, a_shape, a_str), (b_buf, b_shape, b_str) = (_operand(kb, v) for v in node.inputs)
    if len(a_shape) == 1:
        a_shape, a_str = (1,) + a_shape, (0,) + a_str
    if len(b_shape) == 1:
        b_shape, b_str = b_shape + (1,), b_str + (0,)
    m, k = a_shape[-2:]
    n = b_shape[-1]
    batch = broadcast_shapes(a_shape[:-2], b_shape[:-2])
    c_str = contiguous_strides(tuple(batch) + (m, n))

    def batch_strides(shape, strides):
        lead = len(batch) - (len(shape) - 2)
        out = [0] * lead
        for d, s in zip(shape[:-2], strides[:-2], strict=True):
            out.append(0 if d == 1 else s)
        return out

    sa, sb, sc = batch_strides(a_shape, a_str), batch_strides(b_shape, b_str), list(c_str[:-2])
    batch, (sa, sb, sc) = merge_batch_dims(list(batch), [sa, sb, sc])
    d = node.outputs[0].dtype
    if not batch:
        return [
            Gemm(
                a_buf,
                b_buf,
                target,
                1,
                m,
                n,
                k,
                (0, *a_str[-2:]),
                (0, *b_str[-2:]),
                (0, *c_str[-2:]),
                dtype=d,
            )
        ]

    def gemm(offsets: list) -> Gemm:
        return Gemm(
            a_buf,
            b_buf,
            target,
            batch[-1],
            m,
            n,
            k,
            (sa[-1], *a_str[-2:]),
            (sb[-1], *b_str[-2:]),
            (sc[-1], *c_str[-2:]),
            *offsets,
            dtype=d,
        )

    if any(type(x) is Dim for x in batch[:-1]):
        # a symbolic leading batch dim: loops around one Gemm, offsets computed at run time
        names = [kb.fresh("mb") for _ in batch[:-1]]
        lead_index = [Var(name, INDEX) for name in names]
        offsets = [strided(0, zip(lead_index, st[:-1], strict=True)) for st in (sa, sb, sc)]
        body: list[Stmt] = [gemm(offsets)]
        for name, extent in reversed(list(zip(names, batch[:-1], strict=True))):
            body = [Loop(name, extent, body)]
        return body
    # One Gemm per index of the leading batch dims; the last batch dim is the Gemm's.
    return [
        gemm([sum(i * s for i, s in zip(lead, st[:-1], strict=True)) for st in (sa, sb, sc)])
        for lead in itertools.product(*(range(x) for x in batch[:-1]))
    ]


# ---- convolution ----------------------------------------------------------------------------


_ConvShape = ConvShape


def _valid(h: Expr, w: Expr, cs: ConvShape) -> Expr:
    return cs.valid(h, w)


def _im2col(kb, x_buf: str, cs: _ConvShape, d: dt.DType) -> tuple[str, list[Stmt]]:
    """col[n, c, i, j, oh, ow] = x[n, c, h, w] (0 outside): (N, C*kh*kw, OH*OW) in scratch."""
    col = kb.scratch("col", d, cs.n * cs.c * cs.kh * cs.kw * cs.p)
    shape = (cs.n, cs.c, cs.kh, cs.kw, cs.oh, cs.ow)

    def body(ix: list[Expr]) -> list[Stmt]:
        n, c, i, j, oh, ow = ix
        h, w = cs.input_pos(oh, ow, i, j)
        src = cs.x_index(n, c, clamp_index(h, cs.h), clamp_index(w, cs.w))
        value = Select(_valid(h, w, cs), Load(x_buf, src, d), const(0, d), d)
        return [Store(col, linearize(ix, shape), value)]

    return col, kb.nest(shape, body)


def _zero(kb, buf: str, size: int, d: dt.DType) -> list[Stmt]:
    return kb.nest((size,), lambda ix: [Store(buf, ix[0], const(0, d))])


def lower_conv2d(kb, node: Node, target: str) -> list[Stmt]:
    x, w = node.inputs
    out = node.outputs[0]
    cs = _ConvShape(x.shape, w.shape, out.shape, node.attrs)
    on_cpu = kb.target.conv_batch == "slots"
    if on_cpu and worth_a_padded_copy(cs):
        x_buf, unpadded, stmts = padded_input(
            kb, kb.buffer(x), cs, node.attrs, out.dtype, rounded=bf16_products(out.dtype)
        )
        if direct_conv_applies(unpadded, im2col_in_memory=True):
            return stmts + lower_conv2d_direct(kb, node, target, unpadded, x_buf)
        return stmts + _conv2d_in_slots(kb, node, target, unpadded, x_buf)
    if direct_conv_applies(cs, im2col_in_memory=on_cpu):
        return lower_conv2d_direct(kb, node, target, cs)
    d = out.dtype
    if on_cpu and not cs.nhwc:
        return _conv2d_in_slots(kb, node, target, cs, kb.buffer(x))
    col, stmts = _im2col(kb, kb.buffer(x), cs, d)
    w_buf = kb.buffer(w)
    if cs.nhwc:  # out[n]^T (P x og) = col[n, g]^T (P x K) @ W_g^T (K x og): rows of C are pixels
        for g in range(cs.g):
            stmts.append(
                Gemm(
                    col,
                    w_buf,
                    target,
                    cs.n,
                    cs.p,
                    cs.og,
                    cs.k,
                    (cs.g * cs.k * cs.p, 1, cs.p),
                    (0, 1, cs.k),
                    (cs.p * cs.o, cs.o, 1),
                    g * cs.k * cs.p,
                    g * cs.og * cs.k,
                    g * cs.og,
                    dtype=d,
                    implicit="a",  # col comes from the im2col nest above, for these GEMMs
                )
            )
        return stmts
    for g in range(cs.g):
        stmts.append(
            Gemm(
                w_buf,
                col,
                target,
                cs.n,
                cs.og,
                cs.p,
                cs.k,
                (0, cs.k, 1),
                (cs.g * cs.k * cs.p, cs.p, 1),
                (cs.o * cs.p, cs.p, 1),
                g * cs.og * cs.k,
                g * cs.k * cs.p,
                g * cs.og * cs.p,
                dtype=d,
                implicit="b",  # col comes from the im2col nest above, for these GEMMs
            )
        )
    return stmts


def _conv2d_in_slots(kb, node: Node, target: str, cs: ConvShape, x_buf: str) -> list[Stmt]:
    """NCHW convolution on a CPU (Target.conv_batch "slots"): the batch split into as many
    slots as there are cores, each slot unfolding its images one at a time into its own
    (C*kh*kw, OH*OW) scratch and multiplying it, still in cache, by the weights (one
    one-thread GEMM per group), then its pointwise epilogue. Slots run in parallel."""
    x, w = node.inputs
    d = node.outputs[0].dtype
    slots = ImageSlots(kb, cs.n, "col", d, cs.c * cs.kh * cs.kw * cs.p)
    col, n, base = slots.scratch, slots.n, slots.base
    w_buf = kb.buffer(w)
    image = unfold_image(kb, x_buf, cs, n, col, base, d)
    for g in range(cs.g):
        image.append(
            Gemm(
                w_buf,
                col,
                target,
                1,
                cs.og,
                cs.p,
                cs.k,
                (0, cs.k, 1),
                (0, cs.p, 1),
                (0, cs.p, 1),
                g * cs.og * cs.k,
                iadd(base, const_index(g * cs.k * cs.p)),
                iadd(imul(n, const_index(cs.o * cs.p)), const_index(g * cs.og * cs.p)),
                dtype=d,
            )
        )
    if kb.fused_epilogue is not None:  # bias, activation...: on the image, still in cache
        out = node.outputs[0]
        out_at = imul(n, const_index(cs.o * cs.p))

        def finish(ix: list[Expr]) -> list[Stmt]:
            value = Load(target, iadd(out_at, linearize(ix, (cs.o, cs.oh, cs.ow))), d)
            return kb.store_result(target, [n, *ix], out.shape, value)

        image += kb.nest((cs.o, cs.oh, cs.ow), finish, parallel=False)
    return slots.loops(image)


def lower_conv2d_backward_input(kb, node: Node, target: str) -> list[Stmt]:
    gout, w = node.inputs
    dx = node.outputs[0]
    cs = _ConvShape(dx.shape, w.shape, gout.shape, node.attrs)
    d = dx.dtype
    if not cs.nhwc and kb.target.conv_batch == "slots":
        return _conv2d_backward_input_in_slots(kb, node, target, cs)
    dcol = kb.scratch("dcol", d, cs.n * cs.c * cs.kh * cs.kw * cs.p)
    w_buf, g_buf = kb.buffer(w), kb.buffer(gout)
    stmts: list[Stmt] = []
    # gout[n, g] as an (og x P) matrix: pixels are contiguous in NCHW, channels in NHWC.
    g_strides = (cs.o * cs.p, 1, cs.o) if cs.nhwc else (cs.o * cs.p, cs.p, 1)
    for g in range(cs.g):  # dcol[n, g] = W_g^T @ gout[n, g]
        g_offset = g * cs.og if cs.nhwc else g * cs.og * cs.p
        stmts.append(
            Gemm(
                w_buf,
                g_buf,
                dcol,
                cs.n,
                cs.k,
                cs.p,
                cs.og,
                (0, 1, cs.k),
                g_strides,
                (cs.g * cs.k * cs.p, cs.p, 1),
                g * cs.og * cs.k,
                g_offset,
                g * cs.k * cs.p,
                dtype=d,
            )
        )
    stmts += _zero(kb, target, dx.type.size, d)
    col_shape = (cs.n, cs.c, cs.kh, cs.kw, cs.oh, cs.ow)

    def body(ix: list[Expr]) -> list[Stmt]:  # col2im: scatter-add back into dx
        n, c, i, j, oh, ow = ix
        h, wpos = cs.input_pos(oh, ow, i, j)
        dst = cs.x_index(n, c, clamp_index(h, cs.h), clamp_index(wpos, cs.w))
        add = Binary("add", Load(target, dst, d), Load(dcol, linearize(ix, col_shape), d), d)
        return [If(_valid(h, wpos, cs), [Store(target, dst, add)])]

    # Parallel over (n, c) planes only: windows overlap inside a plane.
    stmts += plane_parallel(kb, col_shape, body)
    return stmts


def _conv2d_backward_input_in_slots(kb, node: Node, target: str, cs: ConvShape) -> list[Stmt]:
    """NCHW input gradient (a transposed convolution) on a CPU, in slots as
    ``_conv2d_in_slots``: per image, dcol = W_g^T @ gout[n, g] into the slot's scratch
    (one-thread GEMMs), then dx[n] zeroed and dcol scattered into it (col2im) while
    dcol is in cache."""
    gout, w = node.inputs
    d = node.outputs[0].dtype
    slots = ImageSlots(kb, cs.n, "dcol", d, cs.c * cs.kh * cs.kw * cs.p)
    dcol, n, base = slots.scratch, slots.n, slots.base
    w_buf, g_buf = kb.buffer(w), kb.buffer(gout)
    image: list[Stmt] = []
    for g in range(cs.g):
        image.append(
            Gemm(
                w_buf,
                g_buf,
                dcol,
                1,
                cs.k,
                cs.p,
                cs.og,
                (0, 1, cs.k),
                (0, cs.p, 1),
                (0, cs.p, 1),
                g * cs.og * cs.k,
                iadd(imul(n, const_index(cs.o * cs.p)), const_index(g * cs.og * cs.p)),
                iadd(base, const_index(g * cs.k * cs.p)),
                dtype=d,
            )
        )
    plane = cs.h * cs.w
    image += kb.nest(
        (cs.c * plane,),
        lambda ix: [Store(target, iadd(imul(n, const_index(cs.c * plane)), ix[0]), const(0, d))],
        parallel=False,
    )
    shape = (cs.c, cs.kh, cs.kw, cs.oh, cs.ow)

    def scatter(ix: list[Expr]) -> list[Stmt]:
        c, i, j, oh, ow = ix
        h, wpos = cs.input_pos(oh, ow, i, j)
        dst = cs.x_index(n, c, clamp_index(h, cs.h), clamp_index(wpos, cs.w))
        value = Load(dcol, iadd(base, linearize(ix, shape)), d)
        add = Binary("add", Load(target, dst, d), value, d)
        return [If(_valid(h, wpos, cs), [Store(target, dst, add)])]

    image += kb.nest(shape, scatter, parallel=False)
    return slots.loops(image)


CHUNKS = 8  # images are split into this many chunks, summed in parallel


def lower_conv2d_backward_weight(kb, node: Node, target: str) -> list[Stmt]:
    """dW_g (og x K) = sum over images n of gout[n, g] (og x P) @ col[n, g]^T (P x K).

    The long pixel axis P is the GEMM's contraction, the typically small K = cg*kh*kw
    and og its rows and columns (which way round follows gout's layout). The images are split
    into chunks that run in parallel, each accumulating its own partial dW; the partials
    are summed at the end (where the epilogue, e.g. the optimizer update, is applied)."""
    if kb.target.row_sums == "blocks":
        return _conv2d_backward_weight_per_weight(kb, node, target)
    x, gout = node.inputs
    dw = node.outputs[0]
    cs = _ConvShape(x.shape, dw.shape, gout.shape, node.attrs)
    d = dw.dtype
    x_buf, stmts = kb.buffer(x), []
    # matmul_precision="bf16": the input rounded once, in a copy, so that its unfolded
    # images are the GEMMs' rounded operand (rounding each load of a register-tile GEMM's
    # broadcast operand cost 1.6x the whole kernel: the seed CNN's 9 x 32 products)
    bf16 = bf16_products(d)
    if worth_a_padded_copy(cs):
        # unfolded from a zero-bordered copy: plain loads, not a clamped gather each
        x_buf, cs, stmts = padded_input(kb, x_buf, cs, node.attrs, d, rounded=bf16)
    elif bf16:
        x_buf, stmts = rounded_input(kb, x_buf, cs.x_shape, d)
    g_buf = kb.buffer(gout)
    # (a symbolic batch: CHUNKS chunks of ceil(n / CHUNKS) images, counted at run time)
    chunks = CHUNKS if type(cs.n) is Dim else max(1, min(CHUNKS, cs.n))
    per_chunk = ceil_div(cs.n, chunks)
    size = dw.type.size
    partial = kb.scratch("dw_partial", d, chunks * size)
    stmts += _zero(kb, partial, chunks * size, d)
    t_var, i_var = kb.fresh("t"), kb.fresh("i")
    t, i = Var(t_var, INDEX), Var(i_var, INDEX)
    n = iadd(imul(t, per_chunk), i)
    # Each chunk unfolds its images one at a time into its own im2col scratch (in cache
    # when its dot products read it; a whole batch's matrix went to memory and back).
    unfolded = cs.c * cs.kh * cs.kw
    col = kb.scratch("col", d, chunks * unfolded * cs.p)

    per_n = unfold_image(kb, x_buf, cs, n, col, imul(t, const_index(unfolded * cs.p)), d)
    gout_at = imul(n, const_index(cs.o * cs.p))
    for g in range(cs.g):
        col_at = iadd(imul(t, const_index(unfolded * cs.p)), const_index(g * cs.k * cs.p))
        partial_at = iadd(imul(t, const_index(size)), const_index(g * cs.og * cs.k))
        if cs.nhwc:
            # partial[t, g]^T (K x og) += col[t, g] (K x P) @ gout[n, g] (P x og): a pixel's
            # channels are contiguous, so both operands are read in place (and a small
            # K x og stays in registers: gemm_registers.py)
            gout_g = iadd(gout_at, const_index(g * cs.og))
            strides = ((0, cs.p, 1), (0, cs.o, 1), (0, 1, cs.k))
            gemm = Gemm(
                col,
                g_buf,
                partial,
                1,
                cs.k,
                cs.og,
                cs.p,
                *strides,
                col_at,
                gout_g,
                partial_at,
                accumulate=True,
                dtype=d,
                prerounded="a" if bf16 else "",
            )
        else:
            # partial[t, g] (og x K) += gout[n, g] (og x P) @ col[t, g]^T (P x K): both
            # operands along the pixels, blocked dot products
            gout_g = iadd(gout_at, const_index(g * cs.og * cs.p))
            strides = ((0, cs.p, 1), (0, 1, cs.p), (0, cs.k, 1))
            gemm = Gemm(
                g_buf,
                col,
                partial,
                1,
                cs.og,
                cs.k,
                cs.p,
                *strides,
                gout_g,
                col_at,
                partial_at,
                accumulate=True,
                dtype=d,
                prerounded="b" if bf16 else "",
            )
        per_n.append(gemm)
    real = Binary("lt", n, const_index(cs.n), dt.bool_)
    stmts.append(Loop(t_var, chunks, [Loop(i_var, per_chunk, [If(real, per_n)])], parallel=True))

    def total(ix: list[Expr]) -> list[Stmt]:
        flat = linearize(ix, dw.shape)
        add = lambda a, b: Binary("add", a, b, d)  # noqa: E731
        value = combine_chunks(partial, flat, chunks, size, d, add)
        return kb.store_result(target, ix, dw.shape, value)

    return stmts + kb.nest(dw.shape, total)


def _conv2d_backward_weight_per_weight(kb, node: Node, target: str) -> list[Stmt]:
    """dW[o, c, i, j] = sum over (n, oh, ow) of gout[n, o, oh, ow] * x[n, g*cg + c, h, w]:
    one reduction per weight, read straight from the activations (no im2col), for a GPU,
    where each becomes a thread block's reduction."""
    x, gout = node.inputs
    dw = node.outputs[0]
    cs = _ConvShape(x.shape, dw.shape, gout.shape, node.attrs)
    d, x_buf, g_buf = dw.dtype, kb.buffer(x), kb.buffer(gout)

    def body(ix: list[Expr]) -> list[Stmt]:
        o, c, i, j = ix
        acc = kb.fresh("acc")
        n, oh, ow = (Var(kb.fresh(p), INDEX) for p in ("n", "h", "w"))
        channel = iadd(imul(idiv(o, cs.og), const_index(cs.cg)), c)
        h, w = cs.input_pos(oh, ow, i, j)
        g: Expr = Load(g_buf, linearize(cs.order(n, o, oh, ow), gout.shape), d)
        xv = cs.load(x_buf, n, channel, h, w, d, 0.0)
        if bf16_products(d):  # (bf16 products, as the GEMMs' under matmul_precision="bf16")
            g, xv = Unary("round_bf16", g, d), Unary("round_bf16", xv, d)
        product = Binary("mul", g, xv, d)
        step = Assign(acc, Binary("add", Var(acc, d), product, d))
        loops = Loop(n.name, cs.n, [Loop(oh.name, cs.oh, [Loop(ow.name, cs.ow, [step])])])
        return [Local(acc, d, const(0, d)), loops] + kb.store_result(
            target, ix, dw.shape, Var(acc, d)
        )

    return kb.nest(dw.shape, body)


ANCHORS = {
    "matmul": lower_matmul,
    "conv2d": lower_conv2d,
    "conv2d_backward_input": lower_conv2d_backward_input,
    "conv2d_backward_weight": lower_conv2d_backward_weight,
    "max_pool2d": lower_max_pool2d,
    "avg_pool2d": lower_avg_pool2d,
    "max_pool2d_backward": lower_max_pool2d_backward,
    "avg_pool2d_backward": lower_avg_pool2d_backward,
}


def lower_anchor(kb, node: Node, target: str) -> list[Stmt]:
    try:
        rule = ANCHORS[node.op]
    except KeyError:
        raise NotImplementedError(f"no contraction lowering for op {node.op!r}") from None
    if node.outputs[0].type.size == 0:
        return []
    return rule(kb, node, target)


# ---- scatter-adds ---------------------------------------------------------------------------


def lower_scatter(kb, node: Node) -> list[Stmt]:
    g, idx = node.inputs
    out = node.outputs[0]
    d, target = out.dtype, kb.buffer(out)
    axis = node.attrs["axis"] % len(out.shape)
    stmts = _zero(kb, target, out.type.size, d)
    size = out.shape[axis]

    def body(ix: list[Expr]) -> list[Stmt]:
        start = len(kb.elements.checks)
        if node.op == "scatter_add":
            k = len(idx.shape)
            raw = kb.elements.at(idx, ix[axis : axis + k])
            j = kb.elements._checked(raw, size, "scatter_add")
            dst_ix = ix[:axis] + [j] + ix[axis + k :]
        else:
            j = kb.elements._checked(kb.elements.at(idx, ix), size, "scatter_elements_add")
            dst_ix = list(ix)
            dst_ix[axis] = j
        dst = linearize(dst_ix, out.shape)
        add = Binary("add", Load(target, dst, d), kb.elements.at(g, ix), d)
        return kb.checked([Store(target, dst, add)], start)

    if g.type.size:
        stmts += kb.nest(g.shape, body, parallel=False)
    return stmts
