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


def gemm_loops(s: Gemm, prefix: str, parallel: bool) -> list[Stmt]:
    d = s.dtype
    bt, i, p, j = (Var(f"{prefix}{n}", INDEX) for n in ("b", "i", "p", "j"))
    a_at = _offset(s.a_offset, [(bt, s.a_strides[0]), (i, s.a_strides[1]), (p, s.a_strides[2])])
    b_at = _offset(s.b_offset, [(bt, s.b_strides[0]), (p, s.b_strides[1]), (j, s.b_strides[2])])
    c_at = _offset(s.c_offset, [(bt, s.c_strides[0]), (i, s.c_strides[1]), (j, s.c_strides[2])])
    aip = f"{prefix}a"
    update = Store(
        s.c,
        c_at,
        Binary("add", Load(s.c, c_at, d), Binary("mul", Var(aip, d), Load(s.b, b_at, d), d), d),
    )
    row: list[Stmt] = []
    if not s.accumulate:
        row.append(Loop(j.name, s.n, [Store(s.c, c_at, Const(0.0, d))], vectorize=True))
    row.append(
        Loop(
            p.name, s.k, [Let(aip, Load(s.a, a_at, d)), Loop(j.name, s.n, [update], vectorize=True)]
        )
    )
    big = 2 * s.batch * s.m * s.n * s.k >= PARALLEL_FLOPS
    rows = Loop(i.name, s.m, row, parallel=parallel and big and s.m > 1)
    return (
        [Loop(bt.name, s.batch, [rows])] if s.batch != 1 else [Let(bt.name, const_index(0)), rows]
    )


def thin_gemm_loops(s: Gemm, prefix: str, parallel: bool) -> list[Stmt]:
    """C (+)= A @ B for fewer rows than the packed micro-kernel's MR, with B's rows along
    k contiguous (a transposed weight, as a Linear layer or ONNX Gemm(transB=1) holds it):
    one dot product per element of C, reading B once and packing nothing. The packed path
    would copy all of B into panels on every call and compute MR rows for these few."""
    d = s.dtype
    bt, i, j, p = (Var(f"{prefix}{n}", INDEX) for n in ("b", "i", "j", "p"))
    a_at = _offset(s.a_offset, [(bt, s.a_strides[0]), (i, s.a_strides[1]), (p, s.a_strides[2])])
    b_at = _offset(s.b_offset, [(bt, s.b_strides[0]), (p, s.b_strides[1]), (j, s.b_strides[2])])
    c_at = _offset(s.c_offset, [(bt, s.c_strides[0]), (i, s.c_strides[1]), (j, s.c_strides[2])])
    acc = f"{prefix}acc"
    product = Binary("mul", Load(s.a, a_at, d), Load(s.b, b_at, d), d)
    total: Expr = Var(acc, d)
    if s.accumulate:
        total = Binary("add", Load(s.c, c_at, d), total, d)
    dot = [
        Local(acc, d, Const(0.0, d)),
        Loop(p.name, s.k, [Assign(acc, Binary("add", Var(acc, d), product, d))], vectorize=True),
        Store(s.c, c_at, total),
    ]
    big = 2 * s.batch * s.m * s.n * s.k >= PARALLEL_FLOPS
    columns = Loop(j.name, s.n, dot, parallel=parallel and big)
    nest = Loop(i.name, s.m, [columns])
    if s.batch == 1:
        return [Let(bt.name, const_index(0)), nest]
    return [Loop(bt.name, s.batch, [nest])]


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
