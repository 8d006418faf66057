"""The bfloat16 GEMM of ``matmul_precision="bf16"``: C (+)= bf16(A) @ bf16(B), products summed
in float32, for float32 A, B and C with any strides (the float32 runtime GEMM's signature,
gemm_packed.GEMM_TYPE, so a program calls either the same way).

With AMX (amx.py) the operands are rounded to bf16 (to nearest even) while they are packed:
A in row panels of 32 rows x KC, B in the pair-interleaved ("VNNI") layout the tile
instruction reads, KC/2 rows of 16 columns x 2 per panel of 16 columns. The micro-kernel
holds a 32 x 32 block of C in four float32 tiles (tmm0-3), loads two A tiles (tmm4-5, 16
rows x 32 k) and two B tiles (tmm6-7, 32 k x 16 columns) per step of 32 k, and issues four
``tdpbf16ps``; the block is then stored and added into C (the first k block assigns where
beta is 0). Threads split the longer of the row and column block counts; each packs its
own panels.

Without AMX it computes the same products in float32: both operands are copied rounded to
bf16 (the rounding is the whole difference; a bf16 x bf16 product is exact in float32),
then the float32 runtime GEMM runs on the copies.
"""

from __future__ import annotations

import llvmlite.ir as ir

from .gemm_packed import GEMM_TYPE, WORKSPACE_BYTES, runtime_symbol
from .llvm_builders import (
    FunctionAttributes,
    Loops,
    declare,
    imax,
    imin,
    transpose_in_registers,
)
from .parallel import store_untyped

I8, I16, I32, I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F32, PTR, VOID = ir.FloatType(), ir.PointerType(), ir.VoidType()
V16, VI16x32, VH16 = ir.VectorType(F32, 16), ir.VectorType(I32, 16), ir.VectorType(I16, 16)
SPLAT16 = ir.Constant(VI16x32, [16] * 16)

SYMBOL = "nc_rt_gemm_bf16"
FUNCTION = "nc_gemm_bf16"
KC_MAX = 512  # k per packed block at most (a multiple of 32, one tile step): most
# products pack all of k at once, so C is written once
B_BYTES = 1 << 20  # a packed B block (bf16) fills half of a 2 MiB L2 at most
BLOCK = 32  # the micro-kernel's rows and columns
FORMS = ("amx", "avx512bf16", "float32")
VECTOR_ROWS = 8  # AVX512-BF16: rows per register block (8 x 2 accumulators of 16 floats)
QUARTERS = ((0, 0), (0, 16), (16, 0), (16, 16))  # the four 16 x 16 tiles of a block of C
PARALLEL_FLOPS = 1 << 22  # below this one thread does the whole product
ARGS = ("a", "b", "c", "m", "n", "k", "a_rs", "a_cs", "b_rs", "b_cs", "c_rs", "c_cs", "beta")
ARG_TYPES = [PTR] * 3 + [I64] * 10 + [PTR]  # ..., then the caller's workspace
A_PACK_BYTES = BLOCK * KC_MAX * 2
# Each thread of a team packs into its own share of the caller's workspace: apack, then B's
# block in what is left (at most B_BYTES). A team is no larger than leaves every thread
# room for a B block of BLOCK columns.
MAX_TEAM = WORKSPACE_BYTES // (A_PACK_BYTES + BLOCK * KC_MAX * 2)


def _c(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


def rounded_to_bf16(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """``x`` (float32, a scalar or a vector) rounded to the nearest bfloat16, ties to even,
    still as float32 (its low 16 bits zero); a NaN stays a quiet NaN."""
    lanes = x.type.count if isinstance(x.type, ir.VectorType) else None
    it = ir.VectorType(I32, lanes) if lanes else I32

    def k(v: int) -> ir.Constant:
        return ir.Constant(it, [v] * lanes) if lanes else ir.Constant(I32, v)

    u = b.bitcast(x, it)
    lsb = b.and_(b.lshr(u, k(16)), k(1))
    rounded = b.and_(b.add(b.add(u, k(0x7FFF)), lsb), k(-65536))
    quiet = b.or_(b.and_(u, k(-65536)), k(0x400000))
    nan = b.icmp_unsigned(">", b.and_(u, k(0x7FFFFFFF)), k(0x7F800000))
    return b.bitcast(b.select(nan, quiet, rounded), x.type)


def bf16_bits(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """The bits (i16) of the bf16 nearest the float32 scalar ``x`` (rounded_to_bf16's)."""
    high = b.lshr(b.bitcast(rounded_to_bf16(b, x), I32), ir.Constant(I32, 16))
    return b.trunc(high, I16)


class _Args:
    """The GEMM's arguments by name, loaded from a packed struct or taken from a function."""

    def __init__(self, values: list[ir.Value]):
        self.__dict__.update(zip(ARGS, values, strict=True))


def _element(b: ir.IRBuilder, base, row, col, rs, cs) -> ir.Value:
    at = b.add(b.mul(row, rs), b.mul(col, cs))
    return b.gep(base, [at], source_etype=F32)


class Bf16GemmBuilder:
    """Defines ``nc_gemm_bf16`` in ``module`` in one of FORMS: AMX tiles, AVX512-BF16
    vectors (``vdpbf16ps``, same packing, 8 x 32 register blocks), or the rounding
    fallback."""

    def __init__(self, module: ir.Module, form: str):
        if form not in FORMS:
            raise ValueError(f"bf16 GEMM form must be one of {FORMS}, got {form!r}")
        self.module = module
        self.form = form
        fn = ir.Function(module, GEMM_TYPE, FUNCTION)
        for a, name in zip(fn.args, (*ARGS, "workspace", "threads"), strict=True):
            a.name = name
        fn.attributes.add("nounwind")
        wide_vectors(fn)
        if form == "float32":
            self._fallback(fn)
        else:
            self._amx_entry(fn)

    # ---- without AMX: round into float32 copies, then the float32 GEMM ------------------

    def _fallback(self, fn: ir.Function) -> None:
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        L = Loops(fn, b)
        g = _Args(list(fn.args[:13]))
        workspace, threads = fn.args[13], fn.args[14]
        malloc = declare(self.module, "malloc", ir.FunctionType(PTR, [I64]))
        free = declare(self.module, "free", ir.FunctionType(VOID, [PTR]))
        # (at least one element each, so that an empty operand still gets a real pointer)
        a_size = b.mul(imax1(b, b.mul(g.m, g.k)), _c(4))
        b_size = b.mul(imax1(b, b.mul(g.k, g.n)), _c(4))
        ar, br = b.call(malloc, [a_size]), b.call(malloc, [b_size])

        def copy(src, rows, cols, rs, cs, dst):
            def row(i):
                def col(j):
                    v = b.load(_element(b, src, i, j, rs, cs), typ=F32)
                    out = b.gep(dst, [b.add(b.mul(i, cols), j)], source_etype=F32)
                    b.store(rounded_to_bf16(b, v), out)

                L.range(0, cols, 1, col, "cj")

            L.range(0, rows, 1, row, "ci")

        copy(g.a, g.m, g.k, g.a_rs, g.a_cs, ar)
        copy(g.b, g.k, g.n, g.b_rs, g.b_cs, br)
        f32 = declare(self.module, runtime_symbol("f32"), GEMM_TYPE)
        one = _c(1)
        b.call(
            f32,
            [ar, br, g.c, g.m, g.n, g.k, g.k, one, g.n, one, g.c_rs, g.c_cs, g.beta]
            + [workspace, threads],
        )
        b.call(free, [ar])
        b.call(free, [br])
        b.ret_void()

    # ---- AMX ---------------------------------------------------------------------------

    def _amx_entry(self, fn: ir.Function) -> None:
        """Zero C for k = 0 (beta 0); else run the body on a team or on this thread."""
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        L = Loops(fn, b)
        g = _Args(list(fn.args[:13]))
        threads = fn.args[14]
        struct_t = ir.LiteralStructType(ARG_TYPES)
        slot = b.alloca(struct_t)
        for i, v in enumerate(fn.args[:14]):
            field = b.gep(slot, [ir.Constant(I32, 0), ir.Constant(I32, i)], source_etype=struct_t)
            store_untyped(b, v, field)
        body = self._amx_body(struct_t)
        region = self._region(body)
        empty = b.or_(b.icmp_signed("<=", g.m, _c(0)), b.icmp_signed("<=", g.n, _c(0)))
        no_k = b.icmp_signed("<=", g.k, _c(0))

        def zero_c():
            def row(i):
                L.range(
                    0,
                    g.n,
                    1,
                    lambda j: b.store(
                        ir.Constant(F32, 0.0), _element(b, g.c, i, j, g.c_rs, g.c_cs)
                    ),
                    "zj",
                )

            L.when(b.icmp_signed("==", g.beta, _c(0)), lambda: L.range(0, g.m, 1, row, "zi"))

        def run():
            flops = b.mul(b.mul(g.m, g.n), g.k)
            team_size = imin(b, threads, _c(MAX_TEAM))
            team = b.and_(
                b.icmp_signed(">", threads, _c(1)), b.icmp_signed(">=", flops, _c(PARALLEL_FLOPS))
            )
            gomp = declare(
                self.module, "GOMP_parallel", ir.FunctionType(VOID, [PTR, PTR, I32, I32])
            )
            L.first_of(
                "team",
                [
                    (
                        team,
                        lambda: b.call(
                            gomp, [region, slot, b.trunc(team_size, I32), ir.Constant(I32, 0)]
                        ),
                    )
                ],
                lambda: b.call(body, [slot, _c(0), _c(1)]),
            )

        L.first_of("k0", [(empty, lambda: None), (no_k, zero_c)], run)
        b.ret_void()

    def _region(self, body: ir.Function) -> ir.Function:
        fn = ir.Function(self.module, ir.FunctionType(VOID, [PTR]), f"{FUNCTION}.region")
        fn.linkage = "internal"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        i32_fn = ir.FunctionType(I32, [])
        tid = b.sext(b.call(declare(self.module, "omp_get_thread_num", i32_fn), []), I64)
        nth = b.sext(b.call(declare(self.module, "omp_get_num_threads", i32_fn), []), I64)
        b.call(body, [fn.args[0], tid, nth])
        b.ret_void()
        return fn

    def _amx_body(self, struct_t: ir.LiteralStructType) -> ir.Function:
        fn = ir.Function(self.module, ir.FunctionType(VOID, [PTR, I64, I64]), f"{FUNCTION}.body")
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        fn.attributes.add("nounwind")
        wide_vectors(fn)
        data, tid, nth = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        L = Loops(fn, b)
        g = _Args(
            [
                b.load(
                    b.gep(data, [ir.Constant(I32, 0), ir.Constant(I32, i)], source_etype=struct_t),
                    typ=t,
                )
                for i, t in enumerate(ARG_TYPES[:13])
            ]
        )
        ops = tile_intrinsics(self.module)
        tile = lambda n: ir.Constant(I8, n)  # noqa: E731

        # This thread's rows [r0, r1) and columns [c0, c1): the longer block count is split.
        def blocks(x):
            return b.sdiv(b.add(x, _c(BLOCK - 1)), _c(BLOCK))

        mb, nb = blocks(g.m), blocks(g.n)
        by_cols = b.icmp_signed(">=", nb, b.mul(mb, _c(1)))
        split = b.select(by_cols, nb, mb)
        per = b.sdiv(b.add(split, b.sub(nth, _c(1))), nth)
        lo = imin(b, b.mul(b.mul(tid, per), _c(BLOCK)), b.select(by_cols, g.n, g.m))
        hi = imin(b, b.mul(b.mul(b.add(tid, _c(1)), per), _c(BLOCK)), b.select(by_cols, g.n, g.m))
        r0, r1 = b.select(by_cols, _c(0), lo), b.select(by_cols, g.m, hi)
        c0, c1 = b.select(by_cols, lo, _c(0)), b.select(by_cols, hi, g.n)

        workspace = b.load(
            b.gep(data, [ir.Constant(I32, 0), ir.Constant(I32, 13)], source_etype=struct_t),
            typ=PTR,
        )
        # this thread's share of the workspace (64-byte aligned): apack, then bpack
        share = b.mul(b.sdiv(b.sdiv(_c(WORKSPACE_BYTES), nth), _c(64)), _c(64))
        apack = b.gep(workspace, [b.mul(tid, share)], source_etype=I8)
        bpack = b.gep(apack, [_c(A_PACK_BYTES)], source_etype=I8)
        b_bytes = imin(b, _c(B_BYTES), b.sub(share, _c(A_PACK_BYTES)))
        with b.goto_entry_block():
            scratch = b.alloca(ir.ArrayType(F32, BLOCK * BLOCK))
            scratch.align = 64
            # AVX512-BF16's accumulators, addressed by constants only (kept in registers)
            accs = b.alloca(ir.ArrayType(V16, 2 * VECTOR_ROWS))
            accs.align = 64

        def acc_at(slot: int) -> ir.Value:
            return b.gep(accs, [_c(0), _c(slot)], source_etype=accs.allocated_type)

        def work():
            # k per packed block up to KC_MAX; as many columns as keep B's block in B_BYTES
            kc = imin(b, b.mul(blocks(g.k), _c(BLOCK)), _c(KC_MAX))
            fit = b.mul(b.sdiv(b.sdiv(b_bytes, b.mul(kc, _c(2))), _c(BLOCK)), _c(BLOCK))
            nc = imax(b, _c(BLOCK), fit)
            if self.form == "amx":
                b.call(ops["ldtilecfg"], [tile_config(self.module)])
            L.range(c0, c1, nc, lambda jc: column_block(jc, kc, nc, bpack, apack), "jc")
            if self.form == "amx":
                b.call(ops["tilerelease"], [])

        def column_block(jc, kc, nc, bpack, apack):
            nw = imin(b, nc, b.sub(c1, jc))
            nwp = b.mul(blocks(nw), _c(BLOCK))
            L.range(0, g.k, kc, lambda pc: k_block(jc, nw, nwp, pc, kc, bpack, apack), "pc")

        def k_block(jc, nw, nwp, pc, kc, bpack, apack):
            kw = imin(b, kc, b.sub(g.k, pc))
            kwp = b.mul(blocks(kw), _c(BLOCK))
            half = b.sdiv(kwp, _c(2))
            pack_b(jc, nw, nwp, pc, kw, kwp, half, bpack)
            first = b.and_(b.icmp_signed("==", pc, _c(0)), b.icmp_signed("==", g.beta, _c(0)))

            def row_block_at(ic):
                row_block(ic, jc, nw, nwp, pc, kw, kwp, first, bpack, apack)

            L.range(r0, r1, BLOCK, row_block_at, "ic")

        def zero_unless_full(ptr, full, count):
            """Padding is zero: clear the packed block first unless the data fills it."""
            L.when(b.not_(full), lambda: memset(ptr, b.mul(count, _c(2))))

        def columns_contiguous(row_stride, column_stride):
            """An operand stored column by column (a transposed one): read down columns."""
            return b.and_(
                b.icmp_signed("==", row_stride, _c(1)), b.icmp_signed("!=", column_stride, _c(1))
            )

        def pack_b(jc, nw, nwp, pc, kw, kwp, half, bpack):
            # bpack[(p * half + kp) * 32 + jj * 2 + t] = B[pc + 2 kp + t, jc + 16 p + jj]: no
            # conditions inside the loops, so that they vectorize (stride 1 versioned)
            full = b.and_(b.icmp_signed("==", nw, nwp), b.icmp_signed("==", kw, kwp))
            zero_unless_full(bpack, full, b.mul(kwp, nwp))
            panels = b.sdiv(b.add(nw, _c(15)), _c(16))

            def panel(p):
                width = imin(b, _c(16), b.sub(nw, b.mul(p, _c(16))))
                col0 = b.add(jc, b.mul(p, _c(16)))

                def pair_row(kp, pairs):
                    base = b.mul(b.add(b.mul(p, half), kp), _c(32))

                    def col(jj):
                        for t in range(pairs):
                            kk = b.add(b.add(pc, b.mul(kp, _c(2))), _c(t))
                            v = b.load(
                                _element(b, g.b, kk, b.add(col0, jj), g.b_rs, g.b_cs), typ=F32
                            )
                            at = b.add(base, b.add(b.mul(jj, _c(2)), _c(t)))
                            b.store(bf16_bits(b, v), b.gep(bpack, [at], source_etype=I16))

                    L.range(0, width, 1, col, "bj")

                def by_rows():  # the loop along a row vectorizes when B's rows are contiguous
                    L.range(0, b.sdiv(kw, _c(2)), 1, lambda kp: pair_row(kp, 2), "bk")
                    # an odd k: the last row pairs with zero padding
                    odd = b.icmp_signed("==", b.srem(kw, _c(2)), _c(1))
                    L.when(odd, lambda: pair_row(b.sdiv(kw, _c(2)), 1))

                def by_squares(k0):
                    # a transposed B, 32 k x 16 columns at a time: each column's 32 values
                    # loaded as two vectors, rounded, paired into 16 x i32 (k even, k odd),
                    # then the 16 x 16 pair matrix transposed into 16 packed rows
                    columns = []
                    for jj in range(16):
                        halves = []
                        for h in (0, 16):
                            at = _element(
                                b,
                                g.b,
                                b.add(pc, b.add(k0, _c(h))),
                                b.add(col0, _c(jj)),
                                g.b_rs,
                                g.b_cs,
                            )
                            v = rounded_to_bf16(b, b.load(at, typ=V16, align=4))
                            halves.append(b.trunc(b.lshr(b.bitcast(v, VI16x32), SPLAT16), VH16))
                        pairs = b.shuffle_vector(
                            halves[0],
                            halves[1],
                            ir.Constant(ir.VectorType(I32, 32), list(range(32))),
                        )
                        columns.append(b.bitcast(pairs, VI16x32))
                    kp0 = b.sdiv(k0, _c(2))
                    for kp, row in enumerate(transpose_in_registers(b, columns)):
                        at = b.mul(b.add(b.mul(p, half), b.add(kp0, _c(kp))), _c(32))
                        store_untyped(b, row, b.gep(bpack, [at], source_etype=I16), 4)

                transposed = columns_contiguous(g.b_rs, g.b_cs)
                squares = b.and_(
                    b.icmp_signed("==", width, _c(16)),
                    b.icmp_signed("==", b.srem(kw, _c(32)), _c(0)),
                )
                L.first_of(
                    "bt",
                    [(b.and_(transposed, squares), lambda: L.range(0, kw, 32, by_squares, "bq"))],
                    by_rows,
                )

            L.range(0, panels, 1, panel, "bp")

        def pack_a(ic, mh, pc, kw, kwp, apack):
            # apack[r * kwp + kk] = A[ic + r, pc + kk]
            full = b.and_(b.icmp_signed("==", mh, _c(BLOCK)), b.icmp_signed("==", kw, kwp))
            zero_unless_full(apack, full, b.mul(kwp, _c(BLOCK)))

            def put(r, kk):
                v = b.load(_element(b, g.a, b.add(ic, r), b.add(pc, kk), g.a_rs, g.a_cs), typ=F32)
                at = b.add(b.mul(r, kwp), kk)
                b.store(bf16_bits(b, v), b.gep(apack, [at], source_etype=I16))

            def by_rows():  # A's rows contiguous: the loop along k vectorizes
                L.range(0, mh, 1, lambda r: L.range(0, kw, 1, lambda kk: put(r, kk), "ak"), "ar")

            def by_columns():  # a transposed A: read each column down the rows
                L.range(0, kw, 1, lambda kk: L.range(0, mh, 1, lambda r: put(r, kk), "ar"), "ak")

            def by_squares():
                # a transposed A in whole 16 x 16 squares: 16 column pieces loaded as vectors,
                # transposed in registers, stored as 16 rows of 16 bf16
                def square(kk0, rh):
                    pieces = [
                        b.load(
                            _element(
                                b,
                                g.a,
                                b.add(ic, _c(rh)),
                                b.add(pc, b.add(kk0, _c(t))),
                                g.a_rs,
                                g.a_cs,
                            ),
                            typ=V16,
                            align=4,
                        )
                        for t in range(16)
                    ]
                    for i, row in enumerate(transpose_in_registers(b, pieces)):
                        bits = b.lshr(b.bitcast(rounded_to_bf16(b, row), VI16x32), SPLAT16)
                        at = b.add(b.mul(_c(rh + i), kwp), kk0)
                        store_untyped(
                            b, b.trunc(bits, VH16), b.gep(apack, [at], source_etype=I16), 2
                        )

                def step(kk0):
                    square(kk0, 0)
                    square(kk0, 16)

                L.range(0, kw, 16, step, "aq")

            squares = b.and_(
                b.icmp_signed("==", mh, _c(BLOCK)),
                b.icmp_signed("==", b.srem(kw, _c(16)), _c(0)),
            )
            transposed = columns_contiguous(g.a_rs, g.a_cs)
            L.first_of(
                "at",
                [(b.and_(transposed, squares), by_squares), (transposed, by_columns)],
                by_rows,
            )

        def memset(ptr, nbytes):
            fn_t = ir.FunctionType(VOID, [PTR, I8, I64, ir.IntType(1)])
            fill = declare(self.module, "llvm.memset.p0.i64", fn_t)
            b.call(fill, [ptr, ir.Constant(I8, 0), nbytes, ir.Constant(ir.IntType(1), 0)])

        def row_block(ic, jc, nw, nwp, pc, kw, kwp, first, bpack, apack):
            mh = imin(b, _c(BLOCK), b.sub(r1, ic))
            pack_a(ic, mh, pc, kw, kwp, apack)
            a_stride = b.mul(kwp, _c(2))  # bytes per packed A row
            half = b.sdiv(kwp, _c(2))

            def micro(jr):
                j0 = b.add(jc, jr)
                nwj = imin(b, _c(BLOCK), b.sub(nw, jr))
                # A whole 32 x 32 block of a row-major C is accumulated in place: the tiles
                # start from C (or zero) and are stored back to it. Edge blocks and other
                # layouts go through the scratch block and an element-wise write-back.
                whole = b.and_(
                    b.and_(b.icmp_signed("==", mh, _c(BLOCK)), b.icmp_signed("==", nwj, _c(BLOCK))),
                    b.icmp_signed("==", g.c_cs, _c(1)),
                )
                c_bytes = b.mul(g.c_rs, _c(4))

                def c_tile(dr, dc):
                    return _element(b, g.c, b.add(ic, _c(dr)), b.add(j0, _c(dc)), g.c_rs, g.c_cs)

                def start_from_c():
                    for t, (dr, dc) in enumerate(QUARTERS):
                        b.call(ops["tileloadd64"], [tile(t), c_tile(dr, dc), c_bytes])

                def start_from_zero():
                    for t in range(4):
                        b.call(ops["tilezero"], [tile(t)])

                L.first_of("c0", [(b.and_(whole, b.not_(first)), start_from_c)], start_from_zero)

                def step(kt):
                    a0 = b.gep(apack, [b.mul(kt, _c(64))], source_etype=I8)
                    a1 = b.gep(a0, [b.mul(a_stride, _c(16))], source_etype=I8)
                    panel = b.sdiv(jr, _c(16))
                    b_at = lambda p: b.gep(  # noqa: E731
                        bpack,
                        [b.mul(b.add(b.mul(p, half), b.mul(kt, _c(16))), _c(64))],
                        source_etype=I8,
                    )
                    b.call(ops["tileloadd64"], [tile(4), a0, a_stride])
                    b.call(ops["tileloadd64"], [tile(5), a1, a_stride])
                    b.call(ops["tileloadd64"], [tile(6), b_at(panel), _c(64)])
                    b.call(ops["tileloadd64"], [tile(7), b_at(b.add(panel, _c(1))), _c(64)])
                    b.call(ops["tdpbf16ps"], [tile(0), tile(4), tile(6)])
                    b.call(ops["tdpbf16ps"], [tile(1), tile(4), tile(7)])
                    b.call(ops["tdpbf16ps"], [tile(2), tile(5), tile(6)])
                    b.call(ops["tdpbf16ps"], [tile(3), tile(5), tile(7)])

                L.range(0, b.sdiv(kwp, _c(32)), 1, step, "kt")

                def store_to_c():
                    for t, (dr, dc) in enumerate(QUARTERS):
                        b.call(ops["tilestored64"], [tile(t), c_tile(dr, dc), c_bytes])

                def through_scratch():
                    for t, (dr, dc) in enumerate(QUARTERS):
                        at = b.gep(
                            scratch,
                            [_c(0), _c(dr * BLOCK + dc)],
                            source_etype=scratch.allocated_type,
                        )
                        b.call(ops["tilestored64"], [tile(t), at, _c(BLOCK * 4)])
                    epilogue(ic, mh, j0, nwj, first)

                L.first_of("c1", [(whole, store_to_c)], through_scratch)

            def vector_micro(jr):
                # AVX512-BF16: each vdpbf16ps adds one pair of k to 16 columns of a row
                dp = declare(
                    self.module,
                    "llvm.x86.avx512bf16.dpbf16ps.512",
                    ir.FunctionType(V16, [V16, VI16x32, VI16x32]),
                )
                panel = b.sdiv(jr, _c(16))
                zero = ir.Constant(V16, [0.0] * 16)
                for group in range(BLOCK // VECTOR_ROWS):
                    for slot in range(2 * VECTOR_ROWS):
                        store_untyped(b, zero, acc_at(slot), 64)

                    def step(kp, group=group):
                        columns = [
                            b.load(
                                b.gep(
                                    bpack,
                                    [b.mul(b.add(b.mul(p, half), kp), _c(64))],
                                    source_etype=I8,
                                ),
                                typ=VI16x32,
                                align=64,
                            )
                            for p in (panel, b.add(panel, _c(1)))
                        ]
                        for i in range(VECTOR_ROWS):
                            r = _c(group * VECTOR_ROWS + i)
                            at = b.add(b.mul(r, kwp), b.mul(kp, _c(2)))
                            pair = b.load(b.gep(apack, [at], source_etype=I16), typ=I32, align=4)
                            splat = b.shuffle_vector(
                                b.insert_element(
                                    ir.Constant(VI16x32, ir.Undefined), pair, ir.Constant(I32, 0)
                                ),
                                ir.Constant(VI16x32, ir.Undefined),
                                ir.Constant(VI16x32, [0] * 16),
                            )
                            for h in range(2):
                                slot = acc_at(2 * i + h)
                                total = b.call(dp, [b.load(slot, typ=V16), splat, columns[h]])
                                store_untyped(b, total, slot, 64)

                    L.range(0, half, 1, step, "vk")
                    for i in range(VECTOR_ROWS):
                        for h in range(2):
                            row = group * VECTOR_ROWS + i
                            at = b.gep(
                                scratch,
                                [_c(0), _c(row * BLOCK + 16 * h)],
                                source_etype=scratch.allocated_type,
                            )
                            store_untyped(b, b.load(acc_at(2 * i + h), typ=V16), at, 4)
                j0 = b.add(jc, jr)
                epilogue(ic, mh, j0, imin(b, _c(BLOCK), b.sub(nw, jr)), first)

            L.range(0, nwp, BLOCK, micro if self.form == "amx" else vector_micro, "jr")

        def epilogue(ic, mh, j0, nwj, first):
            def row(r):
                def col(cc):
                    ptr = _element(b, g.c, b.add(ic, r), b.add(j0, cc), g.c_rs, g.c_cs)
                    part = b.load(
                        b.gep(
                            scratch,
                            [_c(0), b.add(b.mul(r, _c(BLOCK)), cc)],
                            source_etype=scratch.allocated_type,
                        ),
                        typ=F32,
                    )
                    old = b.select(first, ir.Constant(F32, 0.0), b.load(ptr, typ=F32))
                    b.store(b.fadd(old, part), ptr)

                L.range(0, nwj, 1, col, "ec")

            L.range(0, mh, 1, row, "er")

        L.when(b.and_(b.icmp_signed("<", r0, r1), b.icmp_signed("<", c0, c1)), work)
        b.ret_void()
        return fn


def tile_config(module: ir.Module) -> ir.GlobalVariable:
    """The tile configuration ldtilecfg loads: palette 1, tiles 0-7 all 16 rows x 64 bytes
    (16 x 16 float32, 16 x 32 bf16, or 16 pair rows x 16 columns)."""
    name = f"{FUNCTION}.tilecfg"
    if name in module.globals:
        return module.globals[name]
    raw = bytearray(64)
    raw[0] = 1
    for t in range(8):
        raw[16 + 2 * t] = 64  # colsb (uint16, little endian)
        raw[48 + t] = 16  # rows
    arr = ir.ArrayType(I8, 64)
    g = ir.GlobalVariable(module, arr, name)
    g.global_constant = True
    g.linkage = "internal"
    g.align = 64
    g.initializer = ir.Constant(arr, bytearray(raw))
    return g


def tile_intrinsics(module: ir.Module) -> dict[str, ir.Function]:
    """LLVM's AMX intrinsics that name tiles by number (an i8 immediate)."""
    types = {
        "ldtilecfg": ir.FunctionType(VOID, [PTR]),
        "tilerelease": ir.FunctionType(VOID, []),
        "tilezero": ir.FunctionType(VOID, [I8]),
        "tileloadd64": ir.FunctionType(VOID, [I8, PTR, I64]),
        "tilestored64": ir.FunctionType(VOID, [I8, PTR, I64]),
        "tdpbf16ps": ir.FunctionType(VOID, [I8, I8, I8]),
    }
    return {k: declare(module, f"llvm.x86.{k}", ft) for k, ft in types.items()}


def bf16_gemm_declaration(module: ir.Module) -> ir.Function:
    """The runtime's bf16 GEMM declared in a program module (runtime.bf16_runtime registers
    it before a program that names it is linked)."""
    return declare(module, SYMBOL, GEMM_TYPE)


def wide_vectors(fn: ir.Function) -> None:
    """The packing and write-back loops vectorize at 512 bits where the CPU has them."""
    attrs = FunctionAttributes()
    attrs.update(fn.attributes)
    attrs.add('"prefer-vector-width"="512"')
    fn.attributes = attrs


def imax1(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, _c(1)), _c(1), x)
