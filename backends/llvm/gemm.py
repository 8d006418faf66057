"""Rendering of the Gemm template for the CPU.

The template becomes a loop nest over (batch, i, p, j) with j innermost, built as kernel
IR and emitted like any other code: with constant strides the unit-stride rows of B and
C vectorize into FMAs, and the row loop runs in parallel for large products.
"""

from __future__ import annotations

import llvmlite.ir as ir

from ...ir.kernel import (
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
    imul,
)
from .gemm_packed import MR

PARALLEL_FLOPS = 1 << 18  # below this a parallel region costs more than it saves


def _offset(base: Expr | int, terms: list[tuple[Expr, int]]) -> Expr:
    e: Expr = const_index(base) if isinstance(base, int) else base
    for var, stride in terms:
        if stride:
            e = iadd(e, imul(var, const_index(stride)))
    return e


class _Indices:
    """The loop variables of a GEMM nest (batch, i, p, j) and the element each of A, B and
    C holds at them."""

    def __init__(self, s: Gemm, prefix: str):
        self.bt, self.i, self.p, self.j = (Var(f"{prefix}{n}", INDEX) for n in "bipj")
        bt, i, p, j = self.bt, self.i, self.p, self.j
        self.a = _offset(
            s.a_offset, [(bt, s.a_strides[0]), (i, s.a_strides[1]), (p, s.a_strides[2])]
        )
        self.b = _offset(
            s.b_offset, [(bt, s.b_strides[0]), (p, s.b_strides[1]), (j, s.b_strides[2])]
        )
        self.c = _offset(
            s.c_offset, [(bt, s.c_strides[0]), (i, s.c_strides[1]), (j, s.c_strides[2])]
        )

    def over_batch(self, s: Gemm, nest: Stmt) -> list[Stmt]:
        if s.batch == 1:
            return [Let(self.bt.name, const_index(0)), nest]
        return [Loop(self.bt.name, s.batch, [nest])]


def _big(s: Gemm) -> bool:
    return 2 * s.batch * s.m * s.n * s.k >= PARALLEL_FLOPS


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


def thin_gemm_loops(s: Gemm, prefix: str, parallel: bool) -> list[Stmt]:
    """C (+)= A @ B for fewer rows than the packed micro-kernel's MR, with B's rows along
    k contiguous (a transposed weight, as a Linear layer or ONNX Gemm(transB=1) holds it):
    one dot product per element of C, reading B once and packing nothing; columns in
    parallel for large products."""
    d, ix = s.dtype, _Indices(s, prefix)
    acc = f"{prefix}acc"
    product = Binary("mul", Load(s.a, ix.a, d), Load(s.b, ix.b, d), d)
    total: Expr = Var(acc, d)
    if s.accumulate:
        total = Binary("add", Load(s.c, ix.c, d), total, d)
    dot = [
        Local(acc, d, Const(0.0, d)),
        Loop(ix.p.name, s.k, [Assign(acc, Binary("add", Var(acc, d), product, d))], vectorize=True),
        Store(s.c, ix.c, total),
    ]
    columns = Loop(ix.j.name, s.n, dot, parallel=parallel and _big(s))
    return ix.over_batch(s, Loop(ix.i.name, s.m, [columns]))


def thin_loops(s: Gemm):
    """The loop form for a GEMM of fewer rows than the packed micro-kernel's MR, or None
    (packed): dot products when B's k axis is contiguous, else, for a single row, rows of
    B scaled and added (``gemm_loops``) when its n axis is. Both read B once; packing would
    copy all of B into panels on every call and compute MR rows for these few."""
    if s.m >= MR or s.n == 1:
        return None
    if s.b_strides[1] == 1:
        return thin_gemm_loops
    # one row: the packed micro-kernel would compute five rows of padding; from two rows on
    # its register tiling wins over updating C's row in memory for every k (measured)
    return gemm_loops if s.b_strides[2] == 1 and s.m == 1 else None


def emit_gemm(emitter, s: Gemm) -> None:
    """Float GEMMs call the module's packed GEMM once per batch entry, except thin ones
    (``thin_loops``); integer ones (rare) become plain loops."""
    build = thin_loops(s) if s.dtype.is_float else gemm_loops
    if build is not None:
        prefix = f"g{len(emitter.fn.blocks)}_"
        emitter.block(build(s, prefix, parallel=not emitter.in_parallel))
        return
    from .codegen import reg_type
    from .gemm_packed import gemm_declaration
    from .parallel import CONTEXT_THREADS, CONTEXT_WORKSPACE, PTR, context_slot

    fn = gemm_declaration(emitter.module, reg_type(s.dtype))
    b = emitter.b
    t = reg_type(s.dtype)
    workspace = context_slot(b, emitter.context, CONTEXT_WORKSPACE, PTR)
    # A GEMM inside a parallel loop's body is never emitted (codegen keeps such loops
    # serial), so this is the call's thread count; without libgomp it runs on one.
    threads = context_slot(b, emitter.context, CONTEXT_THREADS, ir.IntType(64))
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
            at = _offset(off, [(batch_index, stride)])
            ptrs.append(b.gep(emitter.buffers[buf][0], [emitter.expr(at)], source_etype=t))
        consts = [
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
        b.call(fn, ptrs + [ir.Constant(ir.IntType(64), v) for v in consts] + [workspace, threads])

    if s.batch == 1:
        call(const_index(0))
        return
    emitter.loop_with_body(bt, s.batch, lambda: call(Var(bt, INDEX)))
