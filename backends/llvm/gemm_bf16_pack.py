"""Packing for the bf16 GEMM (gemm_bf16.py): float32 operands rounded to bf16 as they are
copied into the layouts the tile and vector instructions read.

- A, per 32-row panel: row-major bf16, ``kwp`` values per row (k padded with zeros: to 32
  for AMX, to a pair for vdpbf16ps; gemm_bf16.K_PADDING).
- B, per 16-column panel: ``kwp / 2`` rows of 16 (k even, k odd) pairs, 64 bytes each: the
  pair-interleaved ("VNNI") layout of a ``tdpbf16ps`` / ``vdpbf16ps`` B operand.

Rows and columns beyond the data are zero. Contiguous operands go through loops the
vectorizer widens (stride 1 versioned); transposed ones in whole 16 x 16 squares through
register transposes; the rest element by element.
"""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from .bf16 import bf16_bits, bf16_bits_native, bf16_pairs
from .llvm_builders import Loops, declare, imin, transpose_in_registers
from .parallel import store_untyped

I1, I8, I16, I32, I64 = (ir.IntType(w) for w in (1, 8, 16, 32, 64))
F32, PTR, VOID = ir.FloatType(), ir.PointerType(), ir.VoidType()
V16, VI32 = ir.VectorType(F32, 16), ir.VectorType(I32, 16)

BLOCK = 32  # rows of an A panel; columns of a micro-kernel block
ARGS = ("a", "b", "c", "m", "n", "k", "a_rs", "a_cs", "b_rs", "b_cs", "c_rs", "c_cs", "beta")


def const(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


class Args:
    """The GEMM's arguments by name: operands, sizes, strides (in elements), beta."""

    def __init__(self, values: list[ir.Value]):
        self.__dict__.update(zip(ARGS, values, strict=True))

    @staticmethod
    def names() -> tuple[str, ...]:
        return ARGS


@dataclass
class Emitter:
    """What every piece of the GEMM emits with."""

    b: ir.IRBuilder
    loops: Loops
    module: ir.Module
    g: Args
    # round with AVX512-BF16's own conversion (bf16.bf16_pairs) where the CPU has it
    native_bf16: bool = False

    def element(self, base, row, col, row_stride, col_stride) -> ir.Value:
        b = self.b
        at = b.add(b.mul(row, row_stride), b.mul(col, col_stride))
        return b.gep(base, [at], source_etype=F32)

    def zero(self, ptr: ir.Value, nbytes: ir.Value) -> None:
        fill = declare(self.module, "llvm.memset.p0.i64", ir.FunctionType(VOID, [PTR, I8, I64, I1]))
        self.b.call(fill, [ptr, ir.Constant(I8, 0), nbytes, ir.Constant(I1, 0)])

    def grid(self, rows, cols, body, tag: str) -> None:
        """body(i, j) for i < rows, j < cols (j innermost)."""
        inner = lambda i: self.loops.range(0, cols, 1, lambda j: body(i, j), f"{tag}j")  # noqa: E731
        self.loops.range(0, rows, 1, inner, f"{tag}i")

    def transposed(self, row_stride, col_stride) -> ir.Value:
        """An operand stored column by column: read it down its columns."""
        b = self.b
        return b.and_(
            b.icmp_signed("==", row_stride, const(1)), b.icmp_signed("!=", col_stride, const(1))
        )


@dataclass
class KBlock:
    """One packed block: columns [jc, jc + nw) of B (nwp: padded to BLOCK) and k [pc, pc +
    kw) (kwp: padded as gemm_bf16.K_PADDING says; half = kwp / 2 pair rows); ``first``: C
    is assigned, not added to (the first k block of a product with beta 0)."""

    jc: ir.Value
    nw: ir.Value
    nwp: ir.Value
    pc: ir.Value
    kw: ir.Value
    kwp: ir.Value
    half: ir.Value
    first: ir.Value


def pack_b(e: Emitter, kb: KBlock, bpack: ir.Value) -> None:
    """bpack[(p half + kp) 32 + 2 jj + t] = B[pc + 2 kp + t, jc + 16 p + jj]."""
    b, L, g = e.b, e.loops, e.g
    full = b.and_(b.icmp_signed("==", kb.nw, kb.nwp), b.icmp_signed("==", kb.kw, kb.kwp))
    L.when(b.not_(full), lambda: e.zero(bpack, b.mul(b.mul(kb.kwp, kb.nwp), const(2))))

    def panel(p):
        width = imin(b, const(16), b.sub(kb.nw, b.mul(p, const(16))))
        col0 = b.add(kb.jc, b.mul(p, const(16)))

        def pair_row(kp, pairs):
            base = b.mul(b.add(b.mul(p, kb.half), kp), const(32))

            def column(jj):
                for t in range(pairs):
                    kk = b.add(b.add(kb.pc, b.mul(kp, const(2))), const(t))
                    v = b.load(e.element(g.b, kk, b.add(col0, jj), g.b_rs, g.b_cs), typ=F32)
                    at = b.add(base, b.add(b.mul(jj, const(2)), const(t)))
                    b.store(bf16_bits(b, v), b.gep(bpack, [at], source_etype=I16))

            L.range(0, width, 1, column, "bj")

        def by_rows():  # the loop along a row vectorizes when B's rows are contiguous
            L.range(0, b.sdiv(kb.kw, const(2)), 1, lambda kp: pair_row(kp, 2), "bk")
            odd = b.icmp_signed("==", b.srem(kb.kw, const(2)), const(1))
            L.when(odd, lambda: pair_row(b.sdiv(kb.kw, const(2)), 1))  # pairs with padding

        def square(k0):
            # a transposed B, 32 k x 16 columns: each column's 32 values as two vectors,
            # rounded and paired into 16 x i32 (k even, k odd); the 16 x 16 pair matrix
            # transposed into 16 packed rows
            columns = []
            for jj in range(16):
                halves = []
                for h in (0, 16):
                    row = b.add(kb.pc, b.add(k0, const(h)))
                    at = e.element(g.b, row, b.add(col0, const(jj)), g.b_rs, g.b_cs)
                    halves.append(bf16_bits(b, b.load(at, typ=V16, align=4)))
                both = ir.Constant(ir.VectorType(I32, 32), list(range(32)))
                columns.append(b.bitcast(b.shuffle_vector(halves[0], halves[1], both), VI32))
            kp0 = b.sdiv(k0, const(2))
            for kp, row in enumerate(transpose_in_registers(b, columns)):
                at = b.mul(b.add(b.mul(p, kb.half), b.add(kp0, const(kp))), const(32))
                store_untyped(b, row, b.gep(bpack, [at], source_etype=I16), 4)

        squares = b.and_(
            b.icmp_signed("==", width, const(16)),
            b.icmp_signed("==", b.srem(kb.kw, const(32)), const(0)),
        )
        L.first_of(
            "bt",
            [
                (
                    b.and_(e.transposed(g.b_rs, g.b_cs), squares),
                    lambda: L.range(0, kb.kw, 32, square, "bq"),
                )
            ],
            by_rows,
        )

    def vector_pair_row(p, kp, rows=2):
        # rows 2 kp and 2 kp + 1 of a whole panel of contiguous rows as vectors, rounded
        # and interleaved into one 64-byte packed row (``rows`` 1: the last row of an odd
        # k, paired with zeros)
        loaded = [ir.Constant(V16, None)] * 2
        for t in range(rows):
            kk = b.add(b.add(kb.pc, b.mul(kp, const(2))), const(t))
            at = e.element(g.b, kk, b.add(kb.jc, b.mul(p, const(16))), g.b_rs, g.b_cs)
            loaded[t] = b.load(at, typ=V16, align=4)
        packed = bf16_pairs(b, e.module, loaded[0], loaded[1], e.native_bf16)
        at = b.mul(b.add(b.mul(p, kb.half), kp), const(32))
        store_untyped(b, packed, b.gep(bpack, [at], source_etype=I16), 4)

    # A row-major B's whole panels go pair of rows by pair of rows, across all panels: B
    # is read along its rows, which the prefetchers follow (panel by panel, each row's next
    # line came a whole panel's k later).
    row_major = b.icmp_signed("==", g.b_cs, const(1))
    whole_panels = b.sdiv(kb.nw, const(16))

    def across_panels():
        def pair_rows(kp, rows=2):
            L.range(0, whole_panels, 1, lambda p: vector_pair_row(p, kp, rows), "bvp")

        L.range(0, b.sdiv(kb.kw, const(2)), 1, pair_rows, "bvk")
        odd = b.icmp_signed("==", b.srem(kb.kw, const(2)), const(1))
        L.when(odd, lambda: pair_rows(b.sdiv(kb.kw, const(2)), rows=1))

    L.when(row_major, across_panels)
    first = b.select(row_major, whole_panels, const(0))
    L.range(first, b.sdiv(b.add(kb.nw, const(15)), const(16)), 1, panel, "bp")


def pack_a(e: Emitter, kb: KBlock, ic: ir.Value, mh: ir.Value, apack: ir.Value) -> None:
    """apack[r kwp + kk] = A[ic + r, pc + kk] for the mh rows of the panel at ic."""
    b, L, g = e.b, e.loops, e.g
    full = b.and_(b.icmp_signed("==", mh, const(BLOCK)), b.icmp_signed("==", kb.kw, kb.kwp))
    L.when(b.not_(full), lambda: e.zero(apack, b.mul(kb.kwp, const(BLOCK * 2))))

    def put(r, kk):
        v = b.load(e.element(g.a, b.add(ic, r), b.add(kb.pc, kk), g.a_rs, g.a_cs), typ=F32)
        at = b.add(b.mul(r, kb.kwp), kk)
        b.store(bf16_bits(b, v), b.gep(apack, [at], source_etype=I16))

    def by_rows():  # A's rows contiguous: the loop along k vectorizes
        L.range(0, mh, 1, lambda r: L.range(0, kb.kw, 1, lambda kk: put(r, kk), "ak"), "ar")

    def by_rows_native():  # 32 elements of a row at a time by vcvtne2ps2bf16
        one = const(1)
        whole = b.mul(b.sdiv(kb.kw, const(32)), const(32))

        def chunk(r, kk):
            halves = [
                b.load(
                    e.element(g.a, b.add(ic, r), b.add(kb.pc, b.add(kk, const(h))), g.a_rs, one),
                    typ=V16,
                    align=4,
                )
                for h in (0, 16)
            ]
            bits = bf16_bits_native(b, e.module, *halves)
            at = b.add(b.mul(r, kb.kwp), kk)
            store_untyped(b, bits, b.gep(apack, [at], source_etype=I16), 2)

        def row(r):
            L.range(0, whole, 32, lambda kk: chunk(r, kk), "an")
            L.range(whole, kb.kw, 1, lambda kk: put(r, kk), "at")

        L.range(0, mh, 1, row, "ar")

    def by_columns():  # a transposed A: read each column down the rows
        L.range(0, kb.kw, 1, lambda kk: L.range(0, mh, 1, lambda r: put(r, kk), "ar"), "ak")

    def square(kk0, rh):
        # 16 column pieces of a transposed A as vectors, transposed in registers, stored
        # as 16 rows of 16 bf16
        pieces = [
            b.load(
                e.element(
                    g.a, b.add(ic, const(rh)), b.add(kb.pc, b.add(kk0, const(t))), g.a_rs, g.a_cs
                ),
                typ=V16,
                align=4,
            )
            for t in range(16)
        ]
        for i, row in enumerate(transpose_in_registers(b, pieces)):
            at = b.add(b.mul(const(rh + i), kb.kwp), kk0)
            store_untyped(b, bf16_bits(b, row), b.gep(apack, [at], source_etype=I16), 2)

    def by_squares():
        L.range(0, kb.kw, 16, lambda kk0: (square(kk0, 0), square(kk0, 16)), "aq")

    squares = b.and_(
        b.icmp_signed("==", mh, const(BLOCK)),
        b.icmp_signed("==", b.srem(kb.kw, const(16)), const(0)),
    )
    transposed = e.transposed(g.a_rs, g.a_cs)
    cases = [(b.and_(transposed, squares), by_squares), (transposed, by_columns)]
    if e.native_bf16:
        cases.append((b.icmp_signed("==", g.a_cs, const(1)), by_rows_native))
    L.first_of("at", cases, by_rows)
