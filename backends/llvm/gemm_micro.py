"""The packed GEMM's micro-kernel: one MR x NR tile of C as MR x VECTORS vector
accumulators over a rank-kc update, then written back (straight to C for whole tiles with
unit column stride, through a small tile buffer at the edges). ``g`` is the GemmBuilder
emitting it (its element type, vector shape and packing buffers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ir

from .llvm_builders import Loops, declare, imin
from .parallel import store_untyped

if TYPE_CHECKING:
    from .gemm_pack import Block
    from .gemm_packed import GemmBuilder

I32, I64, PTR, VOID = ir.IntType(32), ir.IntType(64), ir.PointerType(), ir.VoidType()
# B is prefetched this many steps of k ahead (measured +5 % on 1024^3).
PREFETCH_STEPS = 8


def partial_row_counts(mr: int) -> list[int]:
    """The row counts a last, partial panel is multiplied with (rounded up to one of them,
    or to all MR): what a power of two leaves over after whole panels - 2 and 4 of 6,
    2, 4 and 8 of 12 - so batches of 32, 64 or 256 rows waste no FMAs on padding rows."""
    return sorted({(1 << i) % mr for i in range(1, 16)} - {0})


def micro_kernel(
    g: GemmBuilder, L: Loops, blk: Block, ir_, jr, a_panel, b_panel, c_out, tposed
) -> None:
    """The tile (row panel ``ir_``, column panel ``jr``) of the block ``blk``: A's panel
    ``a_panel`` = (read in place?, its address there, its row stride there), B's
    ``b_panel`` = (read in place?, its address there, its row stride there, its packed
    address), C ``c_out`` = (c, row stride, column stride, beta); ``tposed``: A is packed
    [p][r]."""
    kc, mc, nc, ic, jc = blk.kc, blk.mc, blk.nc, blk.ic, blk.jc
    c, c_rs, c_cs, beta = c_out
    b, t, vt, lanes = L.b, g.t, g.vt, g.lanes
    fma = declare(
        g.module,
        f"llvm.fma.v{lanes}{'f32' if g.suffix == 'f32' else 'f64'}",
        ir.FunctionType(vt, [vt, vt, vt]),
    )
    prefetch = declare(g.module, "llvm.prefetch.p0", ir.FunctionType(VOID, [PTR, I32, I32, I32]))
    mr_c, nr_c = ir.Constant(I64, g.mr), ir.Constant(I64, g.nr)
    a_direct, a_source_at, a_source_rs = a_panel
    a_packed_at = b.gep(g.apack, [b.mul(ir_, b.mul(kc, mr_c))], source_etype=t)
    a_base = b.select(a_direct, a_source_at, a_packed_at)
    # Accumulators live in an alloca of MR*VECTORS vectors; mem2reg keeps them in zmm.
    acc_type = ir.ArrayType(vt, g.mr * g.vectors)
    with b.goto_entry_block():
        accs = b.alloca(acc_type, name="acc")
    zero_v = ir.Constant(vt, None)
    count = g.mr * g.vectors
    slots = [b.gep(accs, [ir.Constant(I64, i)], source_etype=vt) for i in range(count)]
    for s in slots:
        store_untyped(b, zero_v, s)
    undef_v = ir.Constant(vt, ir.Undefined)
    align = 4 if g.suffix == "f32" else 8
    line = 64 // (4 if g.suffix == "f32" else 8)  # elements per cache line

    def k_loop(a_rs, a_ps, b_start, b_step, vectors, rows=g.mr):
        """The rank-kc update of the tile's first ``vectors`` vectors of columns: element
        (r, p) of the A panel at a_base[r*a_rs + p*a_ps], element (p, j) of the B panel at
        b_start[p*b_step + j]. Emitted once per layout, so that the strides that are
        constants (the packed ones) are constants in the loop: addresses take one
        increment per step."""

        def step(p):
            bvec = []
            ahead = b.mul(b.add(p, ir.Constant(I64, PREFETCH_STEPS)), b_step)
            for v in range(vectors):
                off = b.add(b.mul(p, b_step), ir.Constant(I64, v * lanes))
                ptr = b.gep(b_start, [off], source_etype=t)
                bvec.append(b.load(ptr, typ=vt, align=align))
                if (v * lanes) % line == 0:  # B streams from L2: ask for it early
                    at = b.gep(b_start, [b.add(ahead, ir.Constant(I64, v * lanes))], source_etype=t)
                    locality = [ir.Constant(I32, x) for x in (0, 3, 1)]
                    b.call(prefetch, [at, *locality])
            for r in range(rows):
                off = b.add(b.mul(ir.Constant(I64, r), a_rs), b.mul(p, a_ps))
                av = b.load(b.gep(a_base, [off], source_etype=t), typ=t)
                splat = b.shuffle_vector(
                    b.insert_element(undef_v, av, ir.Constant(I32, 0)),
                    undef_v,
                    ir.Constant(ir.VectorType(I32, lanes), None),
                )
                for v in range(vectors):
                    s = slots[r * g.vectors + v]
                    store_untyped(b, b.call(fma, [splat, bvec[v], b.load(s, typ=vt)]), s)

        L.range(0, kc, 1, step, "kk")

    direct, source_at, b_rs, packed_at = b_panel
    one = ir.Constant(I64, 1)
    # A panels packed [p][r] or [r][p], or a row-major A's rows read in place
    transposed_a, row_a = (one, mr_c), (b.select(a_direct, a_source_rs, kc), one)
    packed_b, source_b = (packed_at, nr_c), (source_at, b_rs)
    not_direct = b.not_(direct)
    # The last panel of a block whose columns fit in fewer of the tile's vectors multiplies
    # only those (a 100-column product's second panel: 36 columns in 3 of 4 vectors), the
    # rest of the tile staying zero; its write-back is the edge path, which stores only its
    # columns.
    remaining = b.sub(nc, b.mul(jr, nr_c))
    # (100 columns: 512x512x100 197 -> 222 GFLOP/s on one Zen 5 core, against only the
    # half-width variant; the runtime's cold compile 1.03 -> 1.16 s, once per machine)
    widths = range(1, g.vectors)
    layouts = [
        (b.and_(tposed, not_direct), transposed_a + packed_b),
        (tposed, transposed_a + source_b),
        (not_direct, row_a + packed_b),
        (ir.Constant(ir.IntType(1), 1), row_a + source_b),
    ]
    # The last panel of a block with fewer rows than the tile multiplies only those (up to
    # the next of partial_row_counts): 64x5408x64 262 -> 270 GFLOP/s, 128x784x256 268 ->
    # 271 on one Zen 5 core (in one process, alternating); the runtime's cold compile
    # 1.43 -> 1.51 s.
    rows_left = b.sub(mc, b.mul(ir_, mr_c))
    cases = []
    for condition, strides in layouts:
        for width in widths:
            fits = b.icmp_signed("<=", remaining, ir.Constant(I64, width * lanes))
            cases.append((b.and_(condition, fits), lambda s=strides, w=width: k_loop(*s, w)))
        for rows in partial_row_counts(g.mr):
            fits = b.icmp_signed("<=", rows_left, ir.Constant(I64, rows))
            cases.append(
                (b.and_(condition, fits), lambda s=strides, r=rows: k_loop(*s, g.vectors, r))
            )
        cases.append((condition, lambda s=strides: k_loop(*s, g.vectors)))
    L.first_of("micro", cases[:-1], cases[-1][1])

    # Write back: whole tiles with unit column stride go straight to C.
    row0 = b.add(ic, b.mul(ir_, mr_c))
    col0 = b.add(jc, b.mul(jr, nr_c))
    full = b.and_(
        b.icmp_signed("<=", b.add(b.mul(ir_, mr_c), mr_c), mc),
        b.icmp_signed("<=", b.add(b.mul(jr, nr_c), nr_c), nc),
    )
    full = b.and_(full, b.icmp_signed("==", c_cs, ir.Constant(I64, 1)))
    add = b.icmp_signed("!=", beta, ir.Constant(I64, 0))
    fast = L.fn.append_basic_block("tile.fast")
    slow = L.fn.append_basic_block("tile.edge")
    done = L.fn.append_basic_block("tile.done")
    b.cbranch(full, fast, slow)

    b.position_at_end(fast)
    for r in range(g.mr):
        for v in range(g.vectors):
            at = b.add(
                b.mul(b.add(row0, ir.Constant(I64, r)), c_rs),
                b.add(col0, ir.Constant(I64, v * lanes)),
            )
            ptr = b.gep(c, [at], source_etype=t)
            val = b.load(slots[r * g.vectors + v], typ=vt)
            old = b.load(ptr, typ=vt, align=4 if g.suffix == "f32" else 8)
            val = b.select(add, b.fadd(val, old), val)
            store_untyped(b, val, ptr, align=4 if g.suffix == "f32" else 8)
    b.branch(done)

    b.position_at_end(slow)
    rows = imin(b, mr_c, b.sub(mc, b.mul(ir_, mr_c)))
    cols = imin(b, nr_c, b.sub(nc, b.mul(jr, nr_c)))
    flat_t = ir.ArrayType(t, g.mr * g.nr)
    with b.goto_entry_block():
        tilebuf = b.alloca(flat_t, name="tile")
    for i, s in enumerate(slots):
        ptr = b.gep(tilebuf, [ir.Constant(I64, i * lanes)], source_etype=t)
        store_untyped(b, b.load(s, typ=vt), ptr, align=4 if g.suffix == "f32" else 8)

    def edge_row(r):
        def edge_col(j):
            at = b.add(b.mul(b.add(row0, r), c_rs), b.mul(b.add(col0, j), c_cs))
            ptr = b.gep(c, [at], source_etype=t)
            src = b.gep(tilebuf, [b.add(b.mul(r, nr_c), j)], source_etype=t)
            val = b.load(src, typ=t)
            old = b.load(ptr, typ=t)
            store_untyped(b, b.select(add, b.fadd(val, old), val), ptr)

        L.range(0, cols, 1, edge_col, "ej")

    L.range(0, rows, 1, edge_row, "ei")
    b.branch(done)
    b.position_at_end(done)
