"""Packing for the packed GEMM (gemm_packed.py): one block's panels of A (MR rows) and B
(NR columns), copied from any strides into the layouts the micro-kernel reads, zero
beyond the block's edges.

- A, panel ir: rows ic + ir*MR + r. A row-major A packs as [r][p] (each row's kc elements
  contiguous: rows copy as whole vectors, rows beyond mc as zero vectors); a transposed A
  (unit row stride) as [p][r], so that each step of p copies MR contiguous elements (one
  masked copy); other strides element by element.
- B, panel jr: columns jc + jr*NR + j, as [p][j]. A row-major B's rows copy as vectors
  (masked loads in the last, partial panel); a transposed B's columns load as vectors and
  are transposed in registers (columns beyond the panel read column 0 and store zeros);
  other strides element by element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import llvmlite.ir as ir

from .bf16 import rounded_to_bf16
from .llvm_builders import Loops, masked_load, masked_store, transpose_in_registers
from .parallel import store_untyped

if TYPE_CHECKING:
    from .gemm_packed import GemmBuilder

I1, I32, I64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)


@dataclass
class Block:
    """One block of the GEMM as its region reads it: the operands and their strides, the
    block's origin (ic, jc, pc) and extent (mc, nc, kc)."""

    a: ir.Value
    bm: ir.Value
    a_rs: ir.Value
    a_cs: ir.Value
    b_rs: ir.Value
    b_cs: ir.Value
    ic: ir.Value
    jc: ir.Value
    pc: ir.Value
    mc: ir.Value
    nc: ir.Value
    kc: ir.Value


@dataclass
class Packers:
    pack_a: object  # pack_a(ir_): A's panel ir into g.apack
    pack_b: object  # pack_b(jr): B's panel jr into g.bpack
    whole_b_panel: object  # whole_b_panel(jr): all NR of its columns inside the block
    a_transposed: ir.Value  # A packed [p][r] (the micro-kernel's A layout)


def packers(g: GemmBuilder, L: Loops, blk: Block) -> Packers:
    """The packing code of one block, emitted where its functions are called."""
    b = L.b
    a, bm, a_rs, a_cs, b_rs, b_cs = blk.a, blk.bm, blk.a_rs, blk.a_cs, blk.b_rs, blk.b_cs
    ic, jc, pc, mc, nc, kc = blk.ic, blk.jc, blk.pc, blk.mc, blk.nc, blk.kc
    mr, nr = ir.Constant(I64, g.mr), ir.Constant(I64, g.nr)
    zero = ir.Constant(g.t, 0.0)

    def read(value: ir.Value) -> ir.Value:
        """An element (or vector) of A or B as packed: rounded to bf16 by a rounding GEMM."""
        return rounded_to_bf16(b, value) if g.rounded else value

    # Pack A: panel ir holds rows ic + ir*MR + r, zero beyond mc. A row-major A packs
    # as [r][p] (each row's kc elements contiguous: rows copy as whole vectors); a
    # transposed A (unit row stride) as [p][r], so that each step of p copies MR
    # contiguous elements. Element (r, p) of a panel is at r*pack_rs + p*pack_ps.
    one = ir.Constant(I64, 1)
    unit = b.icmp_signed("==", a_cs, one)
    tposed = b.and_(b.icmp_signed("==", a_rs, one), b.icmp_signed("!=", a_cs, one))
    pack_rs = b.select(tposed, one, kc)
    pack_ps = b.select(tposed, mr, one)

    def pack_a(ir_):
        whole = b.icmp_signed("<=", b.add(b.mul(ir_, mr), mr), mc)

        def row_major():  # whole rows, copied as vectors
            vectors = b.sdiv(kc, ir.Constant(I64, g.lanes))
            tail_start = b.mul(vectors, ir.Constant(I64, g.lanes))
            for r in range(g.mr):
                row_src = b.add(
                    b.mul(b.add(ic, b.add(b.mul(ir_, mr), ir.Constant(I64, r))), a_rs), pc
                )
                row_dst = b.add(b.mul(ir_, b.mul(kc, mr)), b.mul(ir.Constant(I64, r), kc))

                def copy_vector(q, row_src=row_src, row_dst=row_dst):
                    at = b.mul(q, ir.Constant(I64, g.lanes))
                    src = b.gep(a, [b.add(row_src, at)], source_etype=g.t)
                    dst = b.gep(g.apack, [b.add(row_dst, at)], source_etype=g.t)
                    store_untyped(b, read(b.load(src, typ=g.vt, align=4)), dst, align=4)

                def copy_scalar(p, row_src=row_src, row_dst=row_dst):
                    v = read(b.load(b.gep(a, [b.add(row_src, p)], source_etype=g.t), typ=g.t))
                    dst = b.gep(g.apack, [b.add(row_dst, p)], source_etype=g.t)
                    store_untyped(b, v, dst)

                def zero_vector(q, row_dst=row_dst):
                    at = b.mul(q, ir.Constant(I64, g.lanes))
                    dst = b.gep(g.apack, [b.add(row_dst, at)], source_etype=g.t)
                    store_untyped(b, ir.Constant(g.vt, None), dst, align=4)

                def zero_scalar(p, row_dst=row_dst):
                    dst = b.gep(g.apack, [b.add(row_dst, p)], source_etype=g.t)
                    store_untyped(b, zero, dst)

                def copy_row():
                    L.range(0, vectors, 1, copy_vector, "pav")
                    L.range(tail_start, kc, 1, copy_scalar, "pas")

                def zero_row():  # a row beyond mc in the last, partial panel
                    L.range(0, vectors, 1, zero_vector, "pzv")
                    L.range(tail_start, kc, 1, zero_scalar, "pzs")

                row = b.add(b.mul(ir_, mr), ir.Constant(I64, r))
                L.first_of("par", [(b.icmp_signed("<", row, mc), copy_row)], zero_row)

        def transposed():  # MR contiguous elements per step of p: one masked copy
            width = 1 << (g.mr - 1).bit_length()  # the vector that holds MR
            wt = ir.VectorType(g.t, width)
            mask = ir.Constant(ir.VectorType(I1, width), [int(r < g.mr) for r in range(width)])
            load, store = masked_load(g.module, wt), masked_store(g.module, wt)
            align = ir.Constant(I32, 4 if g.suffix == "f32" else 8)

            def copy_column(p):
                src = b.add(b.add(ic, b.mul(ir_, mr)), b.mul(b.add(pc, p), a_cs))
                dst = b.add(b.mul(ir_, b.mul(kc, mr)), b.mul(p, mr))
                src_at = b.gep(a, [src], source_etype=g.t)
                v = read(b.call(load, [src_at, align, mask, ir.Constant(wt, None)]))
                dst_at = b.gep(g.apack, [dst], source_etype=g.t)
                b.call(store, [v, dst_at, align, mask])

            L.range(0, kc, 1, copy_column, "pat")

        def general():  # any strides, rows beyond mc zero
            def step(p):
                for r in range(g.mr):
                    row = b.add(b.mul(ir_, mr), ir.Constant(I64, r))
                    valid = b.icmp_signed("<", row, mc)
                    src = b.add(b.mul(b.add(ic, row), a_rs), b.mul(b.add(pc, p), a_cs))
                    src = b.select(valid, src, ir.Constant(I64, 0))
                    v = read(b.load(b.gep(a, [src], source_etype=g.t), typ=g.t))
                    within = b.add(b.mul(ir.Constant(I64, r), pack_rs), b.mul(p, pack_ps))
                    dst = b.add(b.mul(ir_, b.mul(kc, mr)), within)
                    out = b.gep(g.apack, [dst], source_etype=g.t)
                    store_untyped(b, b.select(valid, v, zero), out)

            L.range(0, kc, 1, step, "pa")

        # (a row-major A's partial last panel too: rows beyond mc are zeroed as vectors,
        # where the general form loaded and selected element by element)
        cases = [(unit, row_major), (b.and_(whole, tposed), transposed)]
        L.first_of("packa", cases, general)

    # Pack B: panel jr holds columns jc + jr*NR + j, as [p][j], zero beyond nc.
    def whole_b_panel(jr):  # all NR of its columns are inside the block
        return b.icmp_signed("<=", b.add(b.mul(jr, nr), nr), nc)

    b_unit = b.icmp_signed("==", b_cs, one)
    b_tposed = b.icmp_signed("==", b_rs, one)

    def pack_b(jr):
        whole = whole_b_panel(jr)

        def row_major():  # contiguous rows of a whole panel: NR elements as vectors
            def vector_row(p):
                src = b.add(b.mul(b.add(pc, p), b_rs), b.add(jc, b.mul(jr, nr)))
                dst = b.add(b.mul(jr, b.mul(kc, nr)), b.mul(p, nr))
                for v in range(g.vectors):
                    off = ir.Constant(I64, v * g.lanes)
                    at = b.gep(bm, [b.add(src, off)], source_etype=g.t)
                    vec = read(b.load(at, typ=g.vt, align=4))
                    out = b.gep(g.bpack, [b.add(dst, off)], source_etype=g.t)
                    store_untyped(b, vec, out, align=4)

            L.range(0, kc, 1, vector_row, "pbv")

        def transposed():  # unit row stride: each column contiguous along k
            # a partial panel's columns beyond nc read column 0 and store zeros, so the
            # loads stay whole vectors (the general form went element by element)
            width = b.sub(nc, b.mul(jr, nr))

            def column(j: int) -> tuple[ir.Value, ir.Value]:
                """Column j's index to read (0 beyond the panel's width), and whether
                it is inside."""
                inside = b.icmp_signed("<", ir.Constant(I64, j), width)
                return b.select(inside, ir.Constant(I64, j), ir.Constant(I64, 0)), inside

            def gather_row(p):
                src = b.add(b.add(pc, p), b.mul(b.add(jc, b.mul(jr, nr)), b_cs))
                dst = b.add(b.mul(jr, b.mul(kc, nr)), b.mul(p, nr))
                for j in range(g.nr):
                    col, inside = column(j)
                    at = b.add(src, b.mul(col, b_cs))
                    v = read(b.load(b.gep(bm, [at], source_etype=g.t), typ=g.t))
                    v = b.select(inside, v, zero)
                    out = b.gep(g.bpack, [b.add(dst, ir.Constant(I64, j))], source_etype=g.t)
                    store_untyped(b, v, out)

            # whole lanes x lanes blocks: contiguous column loads, transposed in
            # registers, stored as rows of the panel; the last kc % lanes rows gathered
            lanes = ir.Constant(I64, g.lanes)
            whole = b.mul(b.sdiv(kc, lanes), lanes)

            def block_of_rows(p0):
                src = b.add(b.add(pc, p0), b.mul(b.add(jc, b.mul(jr, nr)), b_cs))
                dst = b.add(b.mul(jr, b.mul(kc, nr)), b.mul(p0, nr))
                for v in range(g.vectors):
                    columns = []
                    for j in range(g.lanes):
                        col, inside = column(v * g.lanes + j)
                        at = b.gep(bm, [b.add(src, b.mul(col, b_cs))], source_etype=g.t)
                        loaded = read(b.load(at, typ=g.vt, align=4))
                        columns.append(b.select(inside, loaded, ir.Constant(g.vt, None)))
                    for p, row in enumerate(transpose_in_registers(b, columns)):
                        at = b.add(dst, ir.Constant(I64, p * g.nr + v * g.lanes))
                        out = b.gep(g.bpack, [at], source_etype=g.t)
                        store_untyped(b, row, out, align=4)

            L.range(0, whole, g.lanes, block_of_rows, "pbb")
            L.range(whole, kc, 1, gather_row, "pbt")

        def general():  # any strides, columns beyond nc zero
            def step(p):
                def col(j):
                    colno = b.add(b.mul(jr, nr), j)
                    valid = b.icmp_signed("<", colno, nc)
                    src = b.add(b.mul(b.add(pc, p), b_rs), b.mul(b.add(jc, colno), b_cs))
                    src = b.select(valid, src, ir.Constant(I64, 0))
                    v = read(b.load(b.gep(bm, [src], source_etype=g.t), typ=g.t))
                    dst = b.add(b.mul(jr, b.mul(kc, nr)), b.add(b.mul(p, nr), j))
                    out = b.gep(g.bpack, [dst], source_etype=g.t)
                    store_untyped(b, b.select(valid, v, zero), out)

                L.range(0, g.nr, 1, col, "pj")

            L.range(0, kc, 1, step, "pb")

        def row_major_partial():  # the last, partial panel of a row-major B
            # each row's valid columns by masked vector loads (zero beyond them); the
            # element-by-element general form with its bounds selects took longer
            # than multiplying the panel (96 x 2048 x 96: 470 us, 96 x 2048 x 128: 381)
            width = b.sub(nc, b.mul(jr, nr))
            load = masked_load(g.module, g.vt)
            align = ir.Constant(I32, 4 if g.suffix == "f32" else 8)
            lane_t = ir.VectorType(I64, g.lanes)
            limit = b.insert_element(ir.Constant(lane_t, None), width, ir.Constant(I32, 0))
            limit = b.shuffle_vector(
                limit,
                ir.Constant(lane_t, None),
                ir.Constant(ir.VectorType(I32, g.lanes), None),
            )
            masks = [
                b.icmp_signed(
                    "<",
                    ir.Constant(lane_t, [v * g.lanes + j for j in range(g.lanes)]),
                    limit,
                )
                for v in range(g.vectors)
            ]

            def masked_row(p):
                src = b.add(b.mul(b.add(pc, p), b_rs), b.add(jc, b.mul(jr, nr)))
                dst = b.add(b.mul(jr, b.mul(kc, nr)), b.mul(p, nr))
                for v in range(g.vectors):
                    off = ir.Constant(I64, v * g.lanes)
                    at = b.gep(bm, [b.add(src, off)], source_etype=g.t)
                    vec = read(b.call(load, [at, align, masks[v], ir.Constant(g.vt, None)]))
                    out = b.gep(g.bpack, [b.add(dst, off)], source_etype=g.t)
                    store_untyped(b, vec, out, align=4)

            L.range(0, kc, 1, masked_row, "pbm")

        cases = [
            (b.and_(whole, b_unit), row_major),
            (b_tposed, transposed),
            (b_unit, row_major_partial),
        ]
        L.first_of("packb", cases, general)

    return Packers(pack_a, pack_b, whole_b_panel, tposed)
