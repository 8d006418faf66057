"""The bfloat16 GEMM of ``matmul_precision="bf16"``: C (+)= bf16(A) @ bf16(B), products summed
in float32, for float32 A, B and C with any strides (the float32 runtime GEMM's signature,
gemm_packed.GEMM_TYPE, so a program calls either the same way). Compiled once per process
in one of FORMS (runtime.bf16_runtime, amx.bf16_form):

- "amx" and "avx512bf16": the operands are rounded to bf16 while they are packed
  (gemm_bf16_pack.py) and multiplied by 32 x 32 blocks (gemm_bf16_micro.py). Loops: k in
  blocks of at most KC_MAX (all of this thread's rows of A packed once per block where they
  fit, else panel by panel below), this thread's columns in blocks of NC (B packed once per
  block), rows in panels of 32, then the micro-kernel per 32 columns. Threads
  split the longer of the row and column block counts; each packs into its own share of
  the caller's workspace; a long k with few rows and columns is split instead
  (gemm_team_split.py).
- "amx-emulated": the "amx" form with its tile instructions in plain code
  (amx_emulation.py): its loops, layouts and edges tested on a CPU without AMX.
- "float32": the float32 packed GEMM compiled to round both operands to bf16 as it packs
  them (gemm_packed.GemmBuilder's ``rounded``; the rounding is the whole difference: a
  bf16 x bf16 product is exact in float32). The other forms call it for a k shorter than
  SHORT_K.
"""

from __future__ import annotations

import llvmlite.ir as ir

from .amx import cpu_has_avx512bf16
from .float_env import subnormals_flushed
from .gemm_bf16_micro import VECTOR_ROWS, TileKernel, VectorKernel
from .gemm_bf16_pack import BLOCK, Args, Emitter, KBlock, const, pack_a, pack_b
from .gemm_packed import (
    GEMM_TYPE,
    PARTIAL_OFFSET,
    WORKSPACE_BYTES,
    GemmBuilder,
    define_blocking,
)
from .gemm_params import MicroTile
from .gemm_team_split import (
    BF16_ROWS,
    launch,
    small_b_bytes,
    split_k_region,
    split_range_region,
    splits_k,
    splits_rows,
)
from .llvm_builders import Loops, declare, imax, imin, set_function_attributes
from .machine import Machine, this_machine
from .parallel import MAX_THREADS, ParallelRuntime, store_untyped

I8, I32, I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, PTR, VOID = ir.FloatType(), ir.PointerType(), ir.VoidType()
V16 = ir.VectorType(F32, 16)

SYMBOL = "nc_rt_gemm_bf16"
FUNCTION = "nc_gemm_bf16"
# The same GEMM with an epilogue (gemm_epilogue.py): two more arguments, the epilogue's
# function and its argument table, and an i64 result, 1 when the epilogue ran over all of C
FUSED_SYMBOL = "nc_rt_gemm_bf16_fused"
FUSED_FUNCTION = "nc_gemm_bf16_fused"
FUSED_TYPE = ir.FunctionType(I64, [*GEMM_TYPE.args, PTR, PTR])
# epilogue(table, first row, end row, first column, end column): a finished region of C
EPILOGUE_TYPE = ir.FunctionType(VOID, [PTR, I64, I64, I64, I64])
FORMS = ("amx", "avx512bf16", "float32", "amx-emulated")
# k of a packed block is padded (with zeros) to what the kernel steps by: AMX's tiles take
# 32 k, vdpbf16ps a pair (k = 784: 512 + 272, not 512 + 288; 2 % faster on Zen 5)
K_PADDING = {"amx": BLOCK, "amx-emulated": BLOCK, "avx512bf16": 2}
# k per packed block at most (a multiple of 32). The kernel runs 8 rows of A's panel (16 KiB
# at 1024) against a 32-column panel of B streamed from L2; a longer k block means fewer C
# reloads and group starts (Zen 5, 2 threads, against 512: 256x784x1024 896 -> 943
# GFLOP/s, 256x1024x1024 867 -> 909, 1024^3 909 -> 945)
KC_MAX = 1024
PARALLEL_FLOPS = 1 << 22  # below this one thread does the whole product
# A shorter k goes to the float32 GEMM on rounded operands: a 32 x 32 block of C loaded
# and stored for a few pairs of k cost more than the products (Zen 5, vdpbf16ps, 2 threads:
# 256x16x1024 with B transposed 180 GFLOP/s, float32 392; at k = 32 520 against 444)
SHORT_K = 32
# the GEMM's arguments, the workspace, then the epilogue and its table (null: none)
ARG_TYPES = [PTR] * 3 + [I64] * 10 + [PTR] + [PTR, PTR]
A_PACK_BYTES = BLOCK * KC_MAX * 2
# Each thread of a team packs into its own share of the caller's workspace: A's panels, then
# B's block in what is left (at most b_block_bytes). A team is no larger than leaves every
# thread room for one A panel and a B block of BLOCK columns.
MAX_TEAM = WORKSPACE_BYTES // (A_PACK_BYTES + BLOCK * KC_MAX * 2)


def b_block_bytes(machine: Machine) -> int:
    """A packed B block (bf16) fills half of L2 at most: the rest holds A's panel and C's
    rows (Zen 5, 1 MiB L2: 512 KiB against 1 MiB gave the gains KC_MAX quotes)."""
    return machine.l2 // 2


def bf16_gemm_declaration(module: ir.Module) -> ir.Function:
    """The runtime's bf16 GEMM declared in a program module (runtime.bf16_runtime registers
    it before a program that names it is linked)."""
    return declare(module, SYMBOL, GEMM_TYPE)


def bf16_fused_declaration(module: ir.Module) -> ir.Function:
    """The runtime's bf16 GEMM with an epilogue, declared in a program module."""
    return declare(module, FUSED_SYMBOL, FUSED_TYPE)


def _function(module: ir.Module, ftype: ir.FunctionType, name: str) -> ir.Function:
    fn = ir.Function(module, ftype, name)
    set_function_attributes(fn)  # (512-bit vectors for the packing and write-back loops)
    return fn


class Bf16GemmBuilder:
    """Defines ``nc_gemm_bf16`` in ``module`` in one of FORMS."""

    def __init__(self, module: ir.Module, form: str, tile: MicroTile):
        """``tile``: the float32 GEMM's micro-tile: the "float32" form is that GEMM, and
        the others call it for a short k (SHORT_K). Its blocking is the runtime's, set
        after compiling (runtime.bf16_runtime)."""
        if form not in FORMS:
            raise ValueError(f"bf16 GEMM form must be one of {FORMS}, got {form!r}")
        self.module, self.form = module, form
        fused = _function(module, FUSED_TYPE, FUSED_FUNCTION)
        names = (*Args.names(), "workspace", "threads", "epilogue", "table")
        for a, name in zip(fused.args, names, strict=True):
            a.name = name
        plain = _function(module, GEMM_TYPE, FUNCTION)
        b = ir.IRBuilder(plain.append_basic_block("entry"))
        b.call(fused, [*plain.args, ir.Constant(PTR, None), ir.Constant(PTR, None)])
        b.ret_void()
        self.plain = plain
        self.rounding_float32 = self._rounding_float32(tile)
        if form == "float32":
            b = ir.IRBuilder(fused.append_basic_block("entry"))
            b.call(self.rounding_float32, list(fused.args[:15]))
            b.ret(const(0))
        else:
            self._packed(fused)

    # ---- "float32": the float32 GEMM, rounding while it packs ---------------------------

    def _rounding_float32(self, tile: MicroTile) -> ir.Function:
        """The float32 packed GEMM built with ``rounded``: A and B become bf16 values as
        they are packed (no copies: the same traffic as a float32 product)."""
        define_blocking(self.module, tile)
        parallel = ParallelRuntime(self.module, MAX_THREADS)
        return GemmBuilder(self.module, F32, tile, parallel, rounded=True).fn

    # ---- "amx", "avx512bf16": packed blocks ---------------------------------------------

    def _packed(self, fn: ir.Function) -> None:
        """Zero C for k = 0 (beta 0); else run the body on a team or on this thread. The
        body runs the epilogue (when given) over each region of C it finishes; the k and
        row splits and the short k leave it to the caller (the result says which)."""
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        e = Emitter(b, Loops(fn, b), self.module, Args(list(fn.args[:13])))
        g, L, threads = e.g, e.loops, fn.args[14]
        struct_t = ir.LiteralStructType(ARG_TYPES)
        slot = b.alloca(struct_t)
        for i, v in enumerate([*fn.args[:14], *fn.args[15:]]):
            field = b.gep(slot, [ir.Constant(I32, 0), ir.Constant(I32, i)], source_etype=struct_t)
            store_untyped(b, v, field)
        applied = b.alloca(I64)
        b.store(const(0), applied)
        has_epilogue = b.icmp_unsigned("!=", fn.args[15], ir.Constant(PTR, None))
        body = self._body(struct_t)
        region = self._region(body)
        plain = [*fn.args[:15]]  # (the splits call the GEMM without the epilogue)
        by_k = split_k_region(
            self.module, self.plain, F32, WORKSPACE_BYTES, PARTIAL_OFFSET, f"{FUNCTION}.split_k"
        )
        by_rows = split_range_region(
            self.module, self.plain, F32, WORKSPACE_BYTES, BLOCK, True, f"{FUNCTION}.split_rows"
        )

        def zero_c():
            def element(i, j):
                b.store(ir.Constant(F32, 0.0), e.element(g.c, i, j, g.c_rs, g.c_cs))

            L.when(b.icmp_signed("==", g.beta, const(0)), lambda: e.grid(g.m, g.n, element, "z"))

        def run():
            flops = b.mul(b.mul(g.m, g.n), g.k)
            team = b.and_(
                b.icmp_signed(">", threads, const(1)),
                b.icmp_signed(">=", flops, const(PARALLEL_FLOPS)),
            )
            gomp = declare(
                self.module, "GOMP_parallel", ir.FunctionType(VOID, [PTR, PTR, I32, I32])
            )
            size = b.trunc(imin(b, threads, const(MAX_TEAM)), I32)
            split_k = b.and_(team, splits_k(b, plain, elem_bytes=4))  # (C is float32)
            small_b = const(small_b_bytes(this_machine()))  # (in the text: cached per machine)
            split_rows = b.and_(team, splits_rows(b, plain, BF16_ROWS, 4, small_b))
            L.first_of(
                "team",
                [
                    (split_k, lambda: launch(b, self.module, by_k, plain)),
                    (split_rows, lambda: launch(b, self.module, by_rows, plain)),
                    (team, lambda: b.call(gomp, [region, slot, size, ir.Constant(I32, 0)])),
                ],
                lambda: b.call(body, [slot, const(0), const(1)]),
            )
            # (the body ran: the epilogue, if any, too)
            b.store(b.zext(b.and_(has_epilogue, b.not_(b.or_(split_k, split_rows))), I64), applied)

        empty = b.or_(b.icmp_signed("<=", g.m, const(0)), b.icmp_signed("<=", g.n, const(0)))
        no_k = b.icmp_signed("<=", g.k, const(0))
        short_k = b.icmp_signed("<", g.k, const(SHORT_K))
        L.first_of(
            "k0",
            [
                (empty, lambda: None),
                (no_k, zero_c),
                (short_k, lambda: b.call(self.rounding_float32, plain)),
            ],
            run,
        )
        b.ret(b.load(applied))

    def _region(self, body: ir.Function) -> ir.Function:
        """A team's entry: this thread's number and the team's size, then the body."""
        fn = ir.Function(self.module, ir.FunctionType(VOID, [PTR]), f"{FUNCTION}.region")
        fn.linkage = "internal"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        i32_fn = ir.FunctionType(I32, [])
        tid = b.sext(b.call(declare(self.module, "omp_get_thread_num", i32_fn), []), I64)
        nth = b.sext(b.call(declare(self.module, "omp_get_num_threads", i32_fn), []), I64)
        # the pool's threads flush subnormals as the calling thread does (an epilogue's
        # arithmetic runs here; the products are bf16, flushed by the instructions)
        with subnormals_flushed(b, b.icmp_signed("!=", tid, const(0))):
            b.call(body, [fn.args[0], tid, nth])
        b.ret_void()
        return fn

    def _body(self, struct_t: ir.LiteralStructType) -> ir.Function:
        """Thread ``tid`` of ``nth``: its share of C, block by block."""
        fn = _function(self.module, ir.FunctionType(VOID, [PTR, I64, I64]), f"{FUNCTION}.body")
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        data, tid, nth = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))

        def field(i, t):
            at = b.gep(data, [ir.Constant(I32, 0), ir.Constant(I32, i)], source_etype=struct_t)
            return b.load(at, typ=t)

        e = Emitter(
            b,
            Loops(fn, b),
            self.module,
            Args([field(i, t) for i, t in enumerate(ARG_TYPES[:13])]),
            # packing with vcvtne2ps2bf16 where the CPU has it (operands from memory, 2
            # Zen 5 threads: 256x1024x1024 805 -> 896 GFLOP/s, 1024^3 882 -> 925)
            native_bf16=cpu_has_avx512bf16(),
        )
        g, L = e.g, e.loops

        def blocks(x):
            return b.sdiv(b.add(x, const(BLOCK - 1)), const(BLOCK))

        # this thread's rows [r0, r1) and columns [c0, c1): the longer block count is split
        by_cols = b.icmp_signed(">=", blocks(g.n), blocks(g.m))
        split = b.select(by_cols, blocks(g.n), blocks(g.m))
        per = b.sdiv(b.add(split, b.sub(nth, const(1))), nth)
        extent = b.select(by_cols, g.n, g.m)
        lo = imin(b, b.mul(b.mul(tid, per), const(BLOCK)), extent)
        hi = imin(b, b.mul(b.mul(b.add(tid, const(1)), per), const(BLOCK)), extent)
        r0, r1 = b.select(by_cols, const(0), lo), b.select(by_cols, g.m, hi)
        c0, c1 = b.select(by_cols, lo, const(0)), b.select(by_cols, hi, g.n)

        # this thread's share of the workspace (64-byte aligned): A's packed panels, then
        # B's block (sized in ``work``)
        share = b.mul(b.sdiv(b.sdiv(const(WORKSPACE_BYTES), nth), const(64)), const(64))
        apack = b.gep(field(13, PTR), [b.mul(tid, share)], source_etype=I8)
        # (a typed pointer: llvmlite calls through a pointer by its pointee's type)
        epilogue, table = field(14, ir.PointerType(EPILOGUE_TYPE)), field(15, PTR)
        with b.goto_entry_block():
            scratch = b.alloca(ir.ArrayType(F32, BLOCK * BLOCK))
            scratch.align = 64
            if self.form == "avx512bf16":
                accumulators = b.alloca(ir.ArrayType(V16, 2 * VECTOR_ROWS))
                accumulators.align = 64
        if self.form == "avx512bf16":
            kernel = VectorKernel(e, scratch, accumulators)
        else:
            kernel = TileKernel(e, scratch, emulated=self.form == "amx-emulated")

        def write_back(ic, mh, first):
            def write(j0, nwj):  # C (+)= the block in scratch, element by element
                def element(r, cc):
                    ptr = e.element(g.c, b.add(ic, r), b.add(j0, cc), g.c_rs, g.c_cs)
                    at = b.add(b.mul(r, const(BLOCK)), cc)
                    part = b.load(
                        b.gep(scratch, [const(0), at], source_etype=scratch.allocated_type),
                        typ=F32,
                    )
                    old = b.select(first, ir.Constant(F32, 0.0), b.load(ptr, typ=F32))
                    b.store(b.fadd(old, part), ptr)

                e.grid(mh, nwj, element, "e")

            return write

        def row_panel(kb: KBlock, ic, apanel, a_once, bpack):
            mh = imin(b, const(BLOCK), b.sub(r1, ic))
            L.when(b.not_(a_once), lambda: pack_a(e, kb, ic, mh, apanel))
            back = write_back(ic, mh, kb.first)

            def block(jr):
                kernel.block(kb, ic, mh, jr, apanel, bpack, back)

            L.range(0, kb.nwp, BLOCK, block, "jr")
            # the rows' last k block: this region of C is final, and in cache for the
            # epilogue (C's rows [ic, ic + mh), columns [jc, jc + nw))
            last = b.icmp_signed(">=", b.add(kb.pc, kb.kw), g.k)
            region = [table, ic, b.add(ic, mh), kb.jc, b.add(kb.jc, kb.nw)]
            L.when(
                b.and_(last, b.icmp_unsigned("!=", epilogue, ir.Constant(epilogue.type, None))),
                lambda: b.call(epilogue, region),
            )

        def k_block(pc, kc, nc, a_once, bpack):
            kw = imin(b, kc, b.sub(g.k, pc))
            pad = const(K_PADDING[self.form])
            kwp = b.mul(b.sdiv(b.add(kw, b.sub(pad, const(1))), pad), pad)
            first = b.and_(b.icmp_signed("==", pc, const(0)), b.icmp_signed("==", g.beta, const(0)))
            panel_bytes = b.mul(kwp, const(BLOCK * 2))

            def panel_at(ic):  # this row panel's packed A: its own place, or the one buffer
                offset = b.mul(b.sdiv(b.sub(ic, r0), const(BLOCK)), panel_bytes)
                at = b.gep(apack, [offset], source_etype=I8)
                return b.select(a_once, at, apack)

            def pack_all_rows():  # (pack_a reads the k range of its block, not the columns)
                rows = KBlock(c0, const(0), const(0), pc, kw, kwp, b.sdiv(kwp, const(2)), first)

                def panel(ic):
                    pack_a(e, rows, ic, imin(b, const(BLOCK), b.sub(r1, ic)), panel_at(ic))

                L.range(r0, r1, BLOCK, panel, "ia")

            L.when(a_once, pack_all_rows)

            def column_block(jc):
                nw = imin(b, nc, b.sub(c1, jc))
                nwp = b.mul(blocks(nw), const(BLOCK))
                kb = KBlock(jc, nw, nwp, pc, kw, kwp, b.sdiv(kwp, const(2)), first)
                pack_b(e, kb, bpack)

                def panel(ic):
                    row_panel(kb, ic, panel_at(ic), a_once, bpack)

                L.range(r0, r1, BLOCK, panel, "ic")

            L.range(c0, c1, nc, column_block, "jc")

        def work():
            # k per packed block up to KC_MAX. All of this thread's rows of A are packed once
            # per k block where they fit in its share beside a whole B block (rather than
            # once per column block: 1024^3 packed A four times on one thread); else one
            # panel at a time. B's block takes what is left, up to half of L2: as many
            # columns as fit.
            kc = imin(b, b.mul(blocks(g.k), const(BLOCK)), const(KC_MAX))
            b_block = const(b_block_bytes(this_machine()))
            a_all = b.mul(b.mul(blocks(b.sub(r1, r0)), const(BLOCK * 2)), kc)
            a_once = b.icmp_signed("<=", b.add(a_all, b_block), share)
            a_bytes = b.select(a_once, a_all, const(A_PACK_BYTES))
            bpack = b.gep(apack, [a_bytes], source_etype=I8)
            b_bytes = imin(b, b_block, b.sub(share, a_bytes))
            fit = b.mul(b.sdiv(b.sdiv(b_bytes, b.mul(kc, const(2))), const(BLOCK)), const(BLOCK))
            nc = imax(b, const(BLOCK), fit)
            kernel.begin()
            L.range(0, g.k, kc, lambda pc: k_block(pc, kc, nc, a_once, bpack), "pc")
            kernel.end()

        L.when(b.and_(b.icmp_signed("<", r0, r1), b.icmp_signed("<", c0, c1)), work)
        b.ret_void()
        return fn
