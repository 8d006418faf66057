"""Rendering of the Gemm template for the CPU.

The template becomes a loop nest over (batch, i, p, j) with j innermost, built as kernel
IR and emitted like any other code: with constant strides the unit-stride rows of B and
C vectorize into FMAs, and the row loop runs in parallel for large products.
"""

from __future__ import annotations

from dataclasses import replace

import llvmlite.ir as ir

from ...ir.kernel import (
    DOT_PRODUCT_MAX_OUTPUTS,
    DOT_PRODUCT_MIN_K,
    INDEX,
    Assign,
    Binary,
    Const,
    Expr,
    Gemm,
    Let,
    Load,
    Local,
    Loop,
    Stmt,
    Store,
    Var,
    const_index,
    iadd,
    idiv,
    imod,
    imul,
    strided,
)
from ...ir.symbolic import Dim, hint
from .gemm_bf16 import bf16_fused_declaration, bf16_gemm_declaration
from .gemm_packed import WORKSPACE_BYTES
from .gemm_registers import (
    PACKED_MIN_ROWS,
    emit_register_gemm,
    fits_in_registers,
    register_block_loops,
    register_blocks,
)
from .machine import this_machine

PARALLEL_FLOPS = 1 << 18  # below this a parallel region costs more than it saves


class _Indices:
    """The loop variables of a GEMM nest (batch, i, p, j) and the element each of A, B and
    C holds at them."""

    def __init__(self, s: Gemm, prefix: str):
        self.bt, self.i, self.p, self.j = (Var(f"{prefix}{n}", INDEX) for n in "bipj")
        bt, i, p, j = self.bt, self.i, self.p, self.j
        self.a = strided(
            s.a_offset, [(bt, s.a_strides[0]), (i, s.a_strides[1]), (p, s.a_strides[2])]
        )
        self.b = strided(
            s.b_offset, [(bt, s.b_strides[0]), (p, s.b_strides[1]), (j, s.b_strides[2])]
        )
        self.c = strided(
            s.c_offset, [(bt, s.c_strides[0]), (i, s.c_strides[1]), (j, s.c_strides[2])]
        )

    def over_batch(self, s: Gemm, nest: Stmt | list[Stmt]) -> list[Stmt]:
        body = nest if isinstance(nest, list) else [nest]
        if s.batch == 1:
            return [Let(self.bt.name, const_index(0)), *body]
        return [Loop(self.bt.name, s.batch, body)]


def _big(s: Gemm) -> bool:
    return 2 * hint(s.batch) * hint(s.m) * hint(s.n) * hint(s.k) >= PARALLEL_FLOPS


def is_dynamic(s: Gemm) -> bool:
    """Sizes or strides that depend on the batch size (a dynamic-batch program): only the
    packed GEMM (sizes at run time) and the plain loops serve those."""
    return any(
        type(v) is Dim for v in (s.batch, s.m, s.n, s.k, *s.a_strides, *s.b_strides, *s.c_strides)
    )


def gemm_loops(s: Gemm, prefix: str, parallel: bool) -> list[Stmt]:
    """C (+)= A @ B as rows of B scaled by A's elements and added into C's row, j innermost
    (unit-stride rows of B and C vectorize); rows in parallel for large products."""
    d, ix = s.dtype, _Indices(s, prefix)
    aip = f"{prefix}a"
    update = Store(
        s.c,
        ix.c,
        Binary("add", Load(s.c, ix.c, d), Binary("mul", Var(aip, d), Load(s.b, ix.b, d), d), d),
    )
    row: list[Stmt] = []
    if not s.accumulate:
        row.append(Loop(ix.j.name, s.n, [Store(s.c, ix.c, Const(0.0, d))], vectorize=True))
    row.append(
        Loop(
            ix.p.name,
            s.k,
            [Let(aip, Load(s.a, ix.a, d)), Loop(ix.j.name, s.n, [update], vectorize=True)],
        )
    )
    rows = Loop(ix.i.name, s.m, row, parallel=parallel and _big(s) and s.m > 1)
    return ix.over_batch(s, rows)


# Register block of the dot-product form: DOT_ROWS rows of A against DOT_COLS rows of B^T,
# 16 vector accumulators and 8 loads per step of k: FMA-bound, as the packed micro-kernel.
DOT_ROWS, DOT_COLS = 4, 4
DOT_MIN_CHUNK = 256  # k per pass of the dot-product form at least (see dot_chunk)


def dot_gemm_loops(s: Gemm, prefix: str, parallel: bool) -> list[Stmt]:
    """C (+)= A @ B as dot products, for A's and B's elements along k contiguous (B a
    transposed weight, as a Linear layer or ONNX Gemm(transB=1) holds it): register blocks
    of DOT_ROWS x DOT_COLS elements of C, each a set of sums over k that vectorize along k.
    Reads B in place, where packing would transpose all of it into panels on every call.
    Blocks run in parallel for large products."""
    d, ix = s.dtype, _Indices(s, prefix)
    rows, cols = min(DOT_ROWS, s.m), min(DOT_COLS, s.n)
    bt, p = ix.bt, ix.p

    def at(base: Expr | int, batch_stride: int, terms: list[tuple[Expr, int]]) -> Expr:
        return strided(base, [(bt, batch_stride), *terms])

    def block(
        i0: Expr, j0: Expr, nrows: int, ncols: int, p0: Expr, extent: int, accumulate: bool
    ) -> list[Stmt]:
        """Elements (i0 + r, j0 + c) of C for r < nrows, c < ncols, summed over k in
        [p0, p0 + extent) (and added to C when ``accumulate``)."""
        row = [iadd(i0, const_index(r)) for r in range(nrows)]
        col = [iadd(j0, const_index(c)) for c in range(ncols)]
        a_sa, b_sb, c_sc = s.a_strides, s.b_strides, s.c_strides
        kk = iadd(p0, p)
        accs = [[f"{prefix}acc{r}_{c}" for c in range(ncols)] for r in range(nrows)]
        # each row's start named before the k loop: LLVM proved some rows' loads along k
        # consecutive and gathered the others (1.75x on 128x512x128^T, one thread)
        a_rows = [f"{prefix}ar{r}" for r in range(nrows)]
        b_rows = [f"{prefix}bc{c}" for c in range(ncols)]
        out: list[Stmt] = [
            Let(a_rows[r], at(s.a_offset, a_sa[0], [(row[r], a_sa[1])])) for r in range(nrows)
        ]
        out += [Let(b_rows[c], at(s.b_offset, b_sb[0], [(col[c], b_sb[2])])) for c in range(ncols)]
        step: list[Stmt] = []
        for r in range(nrows):
            a = Load(s.a, iadd(Var(a_rows[r], INDEX), imul(kk, const_index(a_sa[2]))), d)
            for c in range(ncols):
                b = Load(s.b, iadd(Var(b_rows[c], INDEX), imul(kk, const_index(b_sb[1]))), d)
                total = Binary("add", Var(accs[r][c], d), Binary("mul", a, b, d), d)
                step.append(Assign(accs[r][c], total))
        out += [Local(name, d, Const(0.0, d)) for names in accs for name in names]
        out.append(Loop(p.name, extent, step, vectorize=True))
        for r in range(nrows):
            for c in range(ncols):
                where = at(s.c_offset, c_sc[0], [(row[r], c_sc[1]), (col[c], c_sc[2])])
                value: Expr = Var(accs[r][c], d)
                if accumulate:
                    value = Binary("add", Load(s.c, where, d), value, d)
                out.append(Store(s.c, where, value))
        return out

    whole_rows, whole_cols = s.m // rows, s.n // cols
    extra_rows, extra_cols = s.m - whole_rows * rows, s.n - whole_cols * cols
    t, g, h, q = (Var(f"{prefix}{name}", INDEX) for name in ("t", "g", "h", "q"))
    last_cols, last_rows = const_index(whole_cols * cols), const_index(whole_rows * rows)

    def all_blocks(p0: Expr, extent: int, accumulate: bool) -> list[Stmt]:
        """Every block of C over k in [p0, p0 + extent): whole blocks (in parallel for a
        large product), then the columns left over (fewer than a block) beside every
        whole block of rows, then the rows left over against all columns."""
        span = (p0, extent, accumulate)
        tiles = block(
            imul(idiv(t, whole_cols), const_index(rows)),
            imul(imod(t, whole_cols), const_index(cols)),
            rows,
            cols,
            *span,
        )
        nest: list[Stmt] = [
            Loop(t.name, whole_rows * whole_cols, tiles, parallel=parallel and _big(s))
        ]
        if extra_cols:
            edge = block(imul(g, const_index(rows)), last_cols, rows, extra_cols, *span)
            nest.append(Loop(g.name, whole_rows, edge))
        if extra_rows:
            edge = block(last_rows, imul(h, const_index(cols)), extra_rows, cols, *span)
            nest.append(Loop(h.name, whole_cols, edge))
            if extra_cols:
                nest += block(last_rows, last_cols, extra_rows, extra_cols, *span)
        return nest

    # A long k in chunks whose rows of A and B stay in L2 while every block reads them
    # (a block reads 4 rows of each; unchunked, A's rows came from memory once per
    # column block and B's once per row block).
    chunk = dot_chunk(s)
    if chunk >= s.k:
        nest = all_blocks(const_index(0), s.k, s.accumulate)
    else:
        full, rest = s.k // chunk, s.k % chunk
        nest = all_blocks(const_index(0), chunk, s.accumulate)
        if full > 1:
            later = all_blocks(imul(iadd(q, const_index(1)), const_index(chunk)), chunk, True)
            nest.append(Loop(q.name, full - 1, later))
        if rest:
            nest += all_blocks(const_index(full * chunk), rest, True)
    return ix.over_batch(s, nest)


def dot_chunk(s: Gemm) -> int:
    """The k of one pass of the dot-product form: passes of equal length (a multiple of
    16), each short enough that its rows of A and of B (all m and n of them) fit in half
    of L2, and at least DOT_MIN_CHUNK long. One pass where all of A and B fit in L2
    (64x784x256^T in two passes ran 0.146 ms instead of 0.133), or where so many rows
    and columns leave passes far shorter than DOT_MIN_CHUNK (32x1024x1000^T in four:
    0.449 ms instead of 0.396; each pass adds a horizontal sum per element of C). Zen 5,
    one thread: 32x5408x64^T 0.160 -> 0.121 ms, 64x5408x64^T 0.314 -> 0.237, 32x2048x512^T
    0.619 -> 0.364, 8x4096x256^T 0.162 -> 0.106."""
    per_k = (s.m + s.n) * s.dtype.itemsize  # (static sizes: the dot form's only)
    l2 = this_machine().l2
    fits = l2 // 2 // per_k
    if per_k * s.k <= l2 or fits < DOT_MIN_CHUNK * 3 // 4:
        return s.k
    # (k > 2 fits here, so at least two passes)
    passes = -(-s.k // max(fits, DOT_MIN_CHUNK))
    even = -(-s.k // passes)
    return (even + 15) // 16 * 16


def few_columns(s: Gemm) -> bool:
    """At most DOT_COLS columns (a Dense head of 1 to 4 units over many features, a GEMV),
    A's rows contiguous along k and sums long enough for vectors: dot products along k,
    which read A once, in vectors, and B's few columns as interleaved vectors. The
    register blocks loaded A element by element from 30 rows at once, and one column went
    to the packed GEMM, which pads B to 64 columns. Measured on Zen 5, one thread:
    2048x2048x2 2.2 -> 0.25 ms (NumPy 0.96), 2048x2048x1 1.4 -> 0.21, 4096x128x2 0.073 ->
    0.027, 512x64x3 0.008 -> 0.006; with 6 columns or more the blocks' row-major B wins."""
    return s.dtype.is_float and s.n <= DOT_COLS and s.a_strides[2] == 1 and s.k >= DOT_PRODUCT_MIN_K


def thin_loops(s: Gemm):
    """The loop form for a GEMM that the packed GEMM would serve badly, or None (packed):
    blocked dot products when B's k axis is contiguous and the product is small or has
    fewer rows than the packed micro-kernel's; for a single row, rows of B scaled and
    added (``gemm_loops``) when B's n axis is contiguous. Both read B once, in place."""
    if s.n == 1:
        return None
    if s.b_strides[1] == 1:
        # (the limits and their measurements: ir.kernel)
        small = s.m * s.n <= DOT_PRODUCT_MAX_OUTPUTS and s.k >= DOT_PRODUCT_MIN_K
        if s.m < PACKED_MIN_ROWS or (s.a_strides[2] == 1 and small):
            return dot_gemm_loops
        return None
    if s.m >= PACKED_MIN_ROWS:
        return None
    # one row: the packed micro-kernel would compute five rows of padding; from two rows on
    # its register tiling wins over updating C's row in memory for every k (measured)
    return gemm_loops if s.b_strides[2] == 1 and s.m == 1 else None


def emit_gemm(emitter, s: Gemm, epilogue: Loop | None = None) -> bool:
    """Float GEMMs call the module's packed GEMM once per batch entry, except those whose
    output fits in registers (gemm_registers.py) and thin ones (``thin_loops``); integer
    ones (rare) become plain loops. ``epilogue``: the loop over C that follows ``s`` in
    its kernel, when gemm_epilogue.fuses_epilogue allows it; the form that can run it as
    part of the product does (the runtime's bf16 GEMM), and the result says whether it
    did (else the caller emits the loop after)."""
    dynamic = is_dynamic(s)
    if s.tile.get("registers") or (not dynamic and fits_in_registers(s)):
        # (a whole product, or a block of one: register_block_loops; rounds under bf16)
        emit_register_gemm(emitter, s)
        return False
    if s.bf16:
        # the other forms compute float32 products: the runtime's bf16 GEMM serves them
        if epilogue is not None:
            from .gemm_epilogue import emit_runtime_gemm_with_epilogue

            emit_runtime_gemm_with_epilogue(emitter, s, epilogue)
            return True
        emit_packed_call(emitter, s)
        return False
    if not dynamic and few_columns(s):
        prefix = f"g{len(emitter.fn.blocks)}_"
        emitter.block(dot_gemm_loops(s, prefix, parallel=not emitter.in_parallel))
        return False
    # narrow and tall, or few rows and wide: register-tile blocks (a team's when the
    # product is worth one). (Running an epilogue in each block of whole rows was tried: an
    # Adam update's constants, hoisted out of the block loop, pushed the 6 x 4 register
    # tile into spills, and the seed CNN's dense weight gradient + Adam went 0.33 -> 0.58
    # ms on one Zen 5 core; an SGD update gained 4 %.)
    team = emitter.parallel.threads if _big(s) and not emitter.in_parallel else 1
    blocks = None if dynamic else register_blocks(s, team)
    if blocks is not None:
        prefix = f"g{len(emitter.fn.blocks)}_"
        emitter.block(register_block_loops(s, *blocks, prefix, parallel=team > 1))
        return False
    if dynamic:
        build = None if s.dtype.is_float else gemm_loops
    else:
        build = thin_loops(s) if s.dtype.is_float else gemm_loops
    if build is not None:
        prefix = f"g{len(emitter.fn.blocks)}_"
        emitter.block(build(s, prefix, parallel=not emitter.in_parallel))
        return False
    if dynamic and _few_rows_at_run_time(s):
        _emit_by_row_count(emitter, s)
        return False
    emit_packed_call(emitter, s)
    return False


def _few_rows_at_run_time(s: Gemm) -> bool:
    """Only the row count is symbolic (a batch times a weight) and B's rows are contiguous:
    the forms the specialized code picks for a few rows apply, chosen at run time."""
    fixed = (s.batch, s.n, s.k, *s.a_strides, *s.b_strides, *s.c_strides)
    return type(s.m) is Dim and not any(type(v) is Dim for v in fixed) and s.b_strides[2] == 1


def _emit_by_row_count(emitter, s: Gemm) -> None:
    """A switch on the run-time row count m: the register-tiled GEMM for each small m it
    serves, one row as a row of B scaled and added, the packed GEMM otherwise (packing B
    for a few rows costs more than their product: single-sample inference)."""
    cases = {}
    for m in range(1, PACKED_MIN_ROWS):
        fixed = replace(s, m=m)
        if fits_in_registers(fixed):
            cases[m] = lambda fixed=fixed: emit_register_gemm(emitter, fixed)
    if 1 not in cases:
        prefix = f"g{len(emitter.fn.blocks)}_"
        cases[1] = lambda: emitter.block(gemm_loops(replace(s, m=1), prefix, parallel=False))
    b, fn = emitter.b, emitter.fn
    tag = f"g{len(fn.blocks)}"
    merge, packed = fn.append_basic_block(f"{tag}.rows.done"), fn.append_basic_block(f"{tag}.many")
    switch = b.switch(emitter.index(s.m), packed)
    for m, emit in cases.items():
        block = fn.append_basic_block(f"{tag}.rows{m}")
        switch.add_case(ir.Constant(ir.IntType(64), m), block)
        b.position_at_end(block)
        emit()
        b.branch(merge)
    b.position_at_end(packed)
    emit_packed_call(emitter, s)
    b.branch(merge)
    b.position_at_end(merge)


def emit_packed_call(emitter, s: Gemm, epilogue: tuple | None = None) -> ir.Value | None:
    """The module's packed GEMM, once per batch entry (sizes passed at run time). With
    ``epilogue`` (its function and table, gemm_epilogue.py; a single bf16 product), the
    runtime's bf16 GEMM that runs it, and its result: whether it ran it."""
    from .codegen import reg_type
    from .gemm_packed import gemm_declaration
    from .parallel import CONTEXT_THREADS, CONTEXT_WORKSPACE, PTR, context_slot

    if epilogue is not None:
        fn = bf16_fused_declaration(emitter.module)
    elif s.bf16:
        fn = bf16_gemm_declaration(emitter.module)
    else:
        fn = gemm_declaration(emitter.module, reg_type(s.dtype))
    b = emitter.b
    t = reg_type(s.dtype)
    workspace = context_slot(b, emitter.context, CONTEXT_WORKSPACE, PTR)
    threads = context_slot(b, emitter.context, CONTEXT_THREADS, ir.IntType(64))
    if emitter.in_parallel:
        # one of a team's threads: a serial GEMM packing into this thread's own buffers
        # (the call context holds one workspace per thread of the team then)
        offset = b.mul(emitter.thread_number, ir.Constant(ir.IntType(64), WORKSPACE_BYTES))
        workspace = b.gep(workspace, [offset], source_etype=ir.IntType(8))
        threads = ir.Constant(ir.IntType(64), 1)
    if not emitter.parallel.enabled:
        threads = ir.Constant(ir.IntType(64), 1)
    bt = f"g{len(emitter.fn.blocks)}_b"

    def call(batch_index: Expr) -> None:
        ptrs = []
        for buf, off, stride in (
            (s.a, s.a_offset, s.a_strides[0]),
            (s.b, s.b_offset, s.b_strides[0]),
            (s.c, s.c_offset, s.c_strides[0]),
        ):
            at = strided(off, [(batch_index, stride)])
            ptrs.append(b.gep(emitter.buffers[buf][0], [emitter.expr(at)], source_etype=t))
        sizes = [
            s.m,
            s.n,
            s.k,
            s.a_strides[1],
            s.a_strides[2],
            s.b_strides[1],
            s.b_strides[2],
            s.c_strides[1],
            s.c_strides[2],
            int(s.accumulate),
        ]
        values = [emitter.index(const_index(v)) for v in sizes]
        return b.call(fn, ptrs + values + [workspace, threads, *(epilogue or ())])

    if s.batch == 1:
        return call(const_index(0))
    assert epilogue is None, "an epilogue runs after a single product"
    emitter.loop_with_body(bt, s.batch, lambda: call(Var(bt, INDEX)))
    return None
