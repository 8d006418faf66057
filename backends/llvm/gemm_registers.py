"""GEMMs whose whole output fits in the vector registers: few rows, few columns, a long k.

A convolution's weight gradient per image (9 rows of unfolded input against 32 output
channels, k = the pixels), a batch-1 dense layer (1 row, 64 columns, k = 5408): the packed
GEMM would pad them to its 6 x 64 tile, pack A and B, and store C once per rank update;
the row-update loop (gemm.gemm_loops) would load and store C's row for every k. Here each
accumulator is a register for the whole product: per step of k, the row of B is loaded
once (its last vector masked when n is not a multiple of the vector), each row's element of
A broadcast, and m x ceil(n / lanes) FMAs issued; C is read and written once at the end.
A's strides are free (broadcasts are scalar loads); B needs contiguous rows.
"""

from __future__ import annotations

from dataclasses import replace

import llvmlite.ir as ir

from ...ir import dtypes as dt
from ...ir.kernel import (
    INDEX,
    Binary,
    Expr,
    Gemm,
    If,
    Loop,
    Stmt,
    Var,
    const_index,
    idiv,
    imod,
    imul,
    strided,
)
from .bf16 import rounded_to_bf16
from .llvm_builders import Loops, declare, masked_load
from .machine import Machine, this_machine
from .parallel import store_untyped

I1, I32, I64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
MIN_K = 16  # shorter products: the loop forms cost no more


def _lanes(s: Gemm) -> int:
    return this_machine().vector_bytes // s.dtype.itemsize


def fits_in_registers(s: Gemm) -> bool:
    """Float, B's rows contiguous and at least half a vector long (narrower products are
    matrix-vector ones: the dot-product form vectorizes them along k), a long k, and the
    m x ceil(n / lanes) accumulators fit in the registers beside one step's row of B and a
    broadcast."""
    if not s.dtype.is_float or s.b_strides[2] != 1 or s.k < MIN_K:
        return False
    if s.n < _lanes(s) // 2:
        return False
    vectors = -(-s.n // _lanes(s))
    return s.m * vectors + vectors + 1 <= this_machine().vector_registers


# Products the registers hold only a block at a time run as register-tile GEMMs over
# blocks, where the packed GEMM would pad them to its 6 x 64 tile and pack both operands
# (3-8x NumPy's time on such shapes, measured):
# - narrow ones, at most NARROW_VECTORS vectors wide (a classifier head 64 x 128 x 10, its
#   weight gradient, 512 x 64 x 3): blocks of rows, each reading B again (from L2, so B
#   must fit in half of it);
# - few rows (2 to PACKED_MIN_ROWS - 1) and wide (3 x 3000 x 300): blocks of columns, each
#   reading A (a few rows) again.
NARROW_VECTORS = 4
PACKED_MIN_ROWS = 6  # the packed micro-kernel's rows: fewer, and it mostly computes padding


# Rows per block when A streams from memory, at least (see streamed_rows).
MIN_STREAMED_ROWS = 8


def streamed_rows(s: Gemm, machine: Machine) -> int:
    """The most rows a block of a narrow product should take. A block reads its rows of A
    side by side, one element of each per step of k: when A is larger than L2 each row
    is a stream from memory, and long rows (KiBs apart) are separate streams, more than
    the prefetchers follow - 2048x2048x10 ran 2.26 ms in blocks of 30 rows, 0.65 ms in
    blocks of 8 (Zen 5, one thread; 2048x512x8 0.19 -> 0.16). Short rows lie together
    (4096x128x16 kept 30: 0.072 ms, 0.085 with 8): as many as a third of L1d holds."""
    row_bytes = s.k * s.dtype.itemsize
    if s.m * row_bytes <= machine.l2:
        return machine.vector_registers
    return max(MIN_STREAMED_ROWS, machine.l1d // 3 // row_bytes)


def register_blocks(s: Gemm, threads: int) -> tuple[int, int] | None:
    """(rows, columns) of the blocks for a GEMM that fits in the registers only a block at
    a time, or None. Row blocks are as tall as the registers allow, and for a team of
    ``threads`` (> 1) no taller than gives each thread two of them, so it shares them
    evenly."""
    machine = this_machine()
    if s.batch != 1 or not s.dtype.is_float or s.b_strides[2] != 1 or s.k < 1:
        return None
    if s.n < 2 or fits_in_registers(s):
        return None
    lanes, registers = _lanes(s), machine.vector_registers
    vectors = -(-s.n // lanes)
    if vectors <= NARROW_VECTORS and s.k * s.n * s.dtype.itemsize <= machine.l2 // 2:
        most = min((registers - 1 - vectors) // vectors, streamed_rows(s, machine))
        if threads > 1:
            most = min(most, -(-s.m // (2 * threads)))
        return max(1, most), s.n
    if 2 <= s.m < PACKED_MIN_ROWS:
        return s.m, (registers - 1) // (s.m + 1) * lanes
    return None


def register_block_loops(s: Gemm, rows: int, cols: int, prefix: str, parallel: bool) -> list:
    """C (+)= A @ B as register-tile GEMMs of ``rows`` x ``cols`` blocks (the last row and
    column of blocks shorter), the blocks in parallel when ``parallel``."""
    row_blocks, col_blocks = -(-s.m // rows), -(-s.n // cols)
    blk = Var(f"{prefix}blk", INDEX)
    i = idiv(blk, col_blocks) if col_blocks > 1 else blk
    j = imod(blk, col_blocks) if col_blocks > 1 else const_index(0)
    first_row, first_col = imul(i, const_index(rows)), imul(j, const_index(cols))

    def block(m: int, n: int) -> Gemm:
        return replace(
            s,
            m=m,
            n=n,
            tile={**s.tile, "registers": True},  # (one register tile: not blocked again)
            a_offset=strided(s.a_offset, [(first_row, s.a_strides[1])]),
            b_offset=strided(s.b_offset, [(first_col, s.b_strides[2])]),
            c_offset=strided(
                s.c_offset, [(first_row, s.c_strides[1]), (first_col, s.c_strides[2])]
            ),
        )

    def last(index: Expr, count: int) -> Expr:
        return Binary("eq", index, const_index(count - 1), dt.bool_)

    def row_of_blocks(m: int) -> list[Stmt]:
        tail = s.n - (col_blocks - 1) * cols
        if tail == cols:
            return [block(m, cols)]
        return [If(last(j, col_blocks), [block(m, tail)], [block(m, cols)])]

    tail = s.m - (row_blocks - 1) * rows
    body = row_of_blocks(rows)
    if tail != rows:
        body = [If(last(i, row_blocks), row_of_blocks(tail), body)]
    blocks = row_blocks * col_blocks
    return [Loop(blk.name, blocks, body, parallel=parallel and blocks > 1)]


def emit_register_gemm(emitter, s: Gemm) -> None:
    from .codegen import reg_type

    t = reg_type(s.dtype)
    # matmul_precision="bf16": the operands rounded as they are loaded (exact products)
    bf16 = s.bf16
    lanes = _lanes(s)
    vt = ir.VectorType(t, lanes)
    vectors = -(-s.n // lanes)
    tail = s.n - (vectors - 1) * lanes  # lanes used in the last vector
    b = emitter.b
    module = emitter.module
    suffix = f"v{lanes}{'f32' if s.dtype.itemsize == 4 else 'f64'}"
    fma = declare(module, f"llvm.fma.{suffix}", ir.FunctionType(vt, [vt, vt, vt]))
    mask_type = ir.VectorType(I1, lanes)
    load_masked = masked_load(module, vt)
    mask = ir.Constant(mask_type, [int(j < tail) for j in range(lanes)])
    zero = ir.Constant(vt, None)

    def at(buffer: str, offset: Expr, batch_stride: int, bt: Expr | None) -> ir.Value:

        index = strided(offset, [(bt, batch_stride)] if bt is not None else [])
        return b.gep(emitter.buffers[buffer][0], [emitter.expr(index)], source_etype=t)

    def product(bt: Expr | None) -> None:
        a0 = at(s.a, s.a_offset, s.a_strides[0], bt)
        b0 = at(s.b, s.b_offset, s.b_strides[0], bt)
        c0 = at(s.c, s.c_offset, s.c_strides[0], bt)
        pre = b.block
        loop = emitter.fn.append_basic_block("rg.k")
        done = emitter.fn.append_basic_block("rg.done")
        b.branch(loop)
        b.position_at_end(loop)
        p = b.phi(I64, name="rg_p")
        p.add_incoming(ir.Constant(I64, 0), pre)
        accs = [[b.phi(vt) for _ in range(vectors)] for _ in range(s.m)]
        for row in accs:
            for acc in row:
                acc.add_incoming(zero, pre)
        row_of_b = b.mul(p, ir.Constant(I64, s.b_strides[1]))
        bvecs = []
        for v in range(vectors):
            ptr = b.gep(b0, [b.add(row_of_b, ir.Constant(I64, v * lanes))], source_etype=t)
            if v == vectors - 1 and tail < lanes:
                align = ir.Constant(I32, s.dtype.itemsize)
                bvecs.append(b.call(load_masked, [ptr, align, mask, zero]))
            else:
                bvecs.append(b.load(ptr, typ=vt, align=s.dtype.itemsize))
        if bf16 and "b" not in s.prerounded:
            bvecs = [rounded_to_bf16(b, v) for v in bvecs]
        column_of_a = b.mul(p, ir.Constant(I64, s.a_strides[2]))
        updated = []
        for r in range(s.m):
            where = b.add(column_of_a, ir.Constant(I64, r * s.a_strides[1]))
            scalar = b.load(b.gep(a0, [where], source_etype=t), typ=t)
            if bf16 and "a" not in s.prerounded:
                scalar = rounded_to_bf16(b, scalar)
            splat = b.shuffle_vector(
                b.insert_element(ir.Constant(vt, ir.Undefined), scalar, ir.Constant(I32, 0)),
                ir.Constant(vt, ir.Undefined),
                ir.Constant(ir.VectorType(I32, lanes), None),
            )
            updated.append([b.call(fma, [splat, bvecs[v], accs[r][v]]) for v in range(vectors)])
        nxt = b.add(p, ir.Constant(I64, 1))
        for r in range(s.m):
            for v in range(vectors):
                accs[r][v].add_incoming(updated[r][v], b.block)
        p.add_incoming(nxt, b.block)
        b.cbranch(b.icmp_signed("<", nxt, ir.Constant(I64, s.k)), loop, done)
        b.position_at_end(done)
        _store_c(emitter, s, c0, updated, lanes, vt, t)

    if s.batch == 1:
        product(None)
        return
    bt = f"rg{len(emitter.fn.blocks)}_b"
    emitter.loop_with_body(bt, s.batch, lambda: product(Var(bt, INDEX)))


def _store_c(emitter, s: Gemm, c0, sums, lanes: int, vt, t) -> None:
    """C (+)= the sums: whole vectors where C's rows are contiguous; otherwise through a
    small stack buffer and a loop over the elements (unrolled, a 9 x 32 output's element
    stores took LLVM half a second to compile)."""
    b = emitter.b
    c_rs, c_cs = s.c_strides[1], s.c_strides[2]
    align = s.dtype.itemsize
    if c_cs == 1 and s.n % lanes == 0:
        for r, row in enumerate(sums):
            for v, value in enumerate(row):
                ptr = b.gep(c0, [ir.Constant(I64, r * c_rs + v * lanes)], source_etype=t)
                if s.accumulate:
                    value = b.fadd(value, b.load(ptr, typ=vt, align=align))
                store_untyped(b, value, ptr, align=align)
        return
    width = len(sums[0]) * lanes  # elements per row of the buffer
    with b.goto_entry_block():
        tile = b.alloca(ir.ArrayType(t, len(sums) * width), name="rg_tile")
    for r, row in enumerate(sums):
        for v, value in enumerate(row):
            ptr = b.gep(tile, [ir.Constant(I64, r * width + v * lanes)], source_etype=t)
            store_untyped(b, value, ptr, align=align)
    loops = Loops(emitter.fn, b)

    def row(r):
        def element(j):
            at = b.add(b.mul(r, ir.Constant(I64, c_rs)), b.mul(j, ir.Constant(I64, c_cs)))
            ptr = b.gep(c0, [at], source_etype=t)
            src = b.gep(tile, [b.add(b.mul(r, ir.Constant(I64, width)), j)], source_etype=t)
            value = b.load(src, typ=t)
            if s.accumulate:
                value = b.fadd(value, b.load(ptr, typ=t))
            store_untyped(b, value, ptr)

        loops.range(0, s.n, 1, element, "rg_j")

    loops.range(0, s.m, 1, row, "rg_i")
