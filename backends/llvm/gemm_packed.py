"""A packed, register-tiled GEMM in LLVM IR (GotoBLAS / BLIS structure).

    for jc in N by NC:                      (columns of C held by the packed B block)
      for pc in K by KC:                    (one rank-KC update)
        for ic in M by MC:                  one parallel region:
          B[pc:+KC, jc:+NC] is packed into NR-column micro-panels by the first row
                 block only (later ones reuse it; whole panels of a row-major B are
                 read in place when A has few rows),
          A[ic:+MC, pc:+KC] is packed into MR-row micro-panels (whole panels of a
                 row-major A are read in place),
          each thread takes a contiguous range of the block's longer side (rows or
                 column panels), packs that operand's panels itself, and computes
                 their tiles; the other operand is packed round robin (one barrier).

A team of threads runs this shared-block loop only for what gemm_team_split.py leaves:
most products go to independent serial GEMMs, one per thread, on its rows, its columns
or its range of k (measured faster: the shared blocks' threads ran 11-19 % slower each).

Micro-kernel (the tile is the machine's: gemm_params.py): MR rows by VECTORS vectors,
e.g. 6 x 4 <16 x float> on AVX-512, 24 vector accumulators; per step of k it loads the
B vectors, broadcasts MR elements of A and issues MR x VECTORS FMAs, prefetching B a few
steps ahead. KC, MC and NC are a global of the module (set by gemm_tune.set_blocking), so
one compile serves every blocking the tuner tries. Built with ``rounded`` (the bf16 GEMM's
float32 form), the packing rounds every element to bf16. Packing (gemm_pack.py) reads A and B
through arbitrary strides, so transposed operands and broadcast batches cost nothing
extra. Partial tiles run the same micro-kernel on zero-padded panels and store through a
small tile buffer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ir

from .float_env import subnormals_flushed
from .gemm_micro import micro_kernel
from .gemm_pack import Block, packers
from .gemm_team_split import (
    FLOAT32_ROWS,
    PARTIAL_BYTES,
    launch,
    split_k_region,
    split_range_region,
    splits_cols,
    splits_k,
    splits_rows,
)
from .llvm_builders import Loops, declare, imax, imin
from .parallel import ParallelRuntime, store_untyped

if TYPE_CHECKING:
    from .gemm_params import MicroTile

I32, I64, PTR, VOID = ir.IntType(32), ir.IntType(64), ir.PointerType(), ir.VoidType()

# Up to this many rows of A, whole panels of a row-major B are read in place, not packed;
# up to the second count when the block of B is contiguous (whole rows, no gap between
# them): its panels then spread over the cache's sets as a packed copy's would.
IN_PLACE_B_ROWS = 64
IN_PLACE_CONTIGUOUS_B_ROWS = 256

# The buffers a GEMM call needs per thread of its team, in bytes: A's MC x KC block, then
# B's KC x NC panel, sized for doubles (floats use the same offsets), then a split k's
# partial sums (gemm_team_split.py). The caller provides ``threads`` such slices; every
# blocking the model or the tuner picks (gemm_params.py) fits in them.
A_BUDGET_ELEMENTS = 384 * 256
B_BUDGET_ELEMENTS = 256 * 2048
WORKSPACE_B_OFFSET = A_BUDGET_ELEMENTS * 8
PARTIAL_OFFSET = WORKSPACE_B_OFFSET + B_BUDGET_ELEMENTS * 8
WORKSPACE_BYTES = PARTIAL_OFFSET + PARTIAL_BYTES
# The runtime module's blocking, [KC, MC, NC, the small-B size of a row split] (i64): a
# global, so that one compiled micro-tile serves every blocking the tuner tries and every
# machine's caches (gemm_tune.set_blocking).
BLOCKING_GLOBAL = "nc_gemm_blocking"
BLOCKING_FIELDS = 4
# a, b, c, m, n, k, six strides, beta, workspace, threads
GEMM_TYPE = ir.FunctionType(VOID, [PTR] * 3 + [I64] * 10 + [PTR, I64])


class GemmBuilder:
    """Emits ``nc_gemm_<dtype>`` once per module and dtype."""

    ARGS = (
        *("a", "b", "c", "m", "n", "k", "a_rs", "a_cs", "b_rs", "b_cs", "c_rs", "c_cs", "beta"),
        *("workspace", "threads"),
    )

    def __init__(
        self,
        module: ir.Module,
        ftype: ir.Type,
        tile: MicroTile,
        parallel: ParallelRuntime,
        rounded: bool = False,
    ):
        """``rounded``: both operands are rounded to bf16 as they are packed (the bf16
        GEMM's float32 form, gemm_bf16.py; float32 only) - B is then never read in place."""
        self.module, self.t, self.parallel = module, ftype, parallel
        suffix = "f32" if isinstance(ftype, ir.FloatType) else "f64"
        if rounded and suffix != "f32":
            raise ValueError("only a float32 GEMM rounds its operands to bf16")
        self.suffix, self.rounded = suffix, rounded
        self.name = f"nc_gemm_{suffix}" + ("_bf16_operands" if rounded else "")
        self.mr, self.vectors = tile.mr, tile.vectors
        self.lanes = tile.lanes if suffix == "f32" else tile.lanes // 2
        self.vt = ir.VectorType(ftype, self.lanes)
        self.nr = self.vectors * self.lanes
        # What a region reads: the 13 call arguments, then jc, pc, ic, mc, nc, kc, beta,
        # then the packing buffers (the caller's workspace: concurrent calls from several
        # threads each pack into their own).
        self.block_type = ir.LiteralStructType([PTR] * 3 + [I64] * 17 + [PTR] * 2)
        self.region_body = self._region_body()
        self.region = self._region_entry() if parallel.enabled else None
        self.fn = self._driver()

    # ---- the driver: the three blocking loops, one region per block -------------------

    def _driver(self) -> ir.Function:
        fn = ir.Function(self.module, GEMM_TYPE, self.name)
        fn.linkage = "internal"
        for a, name in zip(fn.args, self.ARGS, strict=True):
            a.name = name
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        slot = b.alloca(self.block_type)
        L = Loops(fn, b)
        # The blocking: set once by whoever compiled this module (gemm_tune.set_blocking).
        blocking = self.module.get_global(BLOCKING_GLOBAL)
        kc_c, mc_c, nc_c, small_b = (
            b.load(b.gep(blocking, [ir.Constant(I32, 0), ir.Constant(I32, i)]), typ=I64)
            for i in range(BLOCKING_FIELDS)
        )
        mr_c = ir.Constant(I64, self.mr)
        a, bb, c, m, n, k = fn.args[:6]
        strides = fn.args[6:12]
        beta = fn.args[12]
        workspace, threads = fn.args[13], fn.args[14]
        bpack = b.gep(workspace, [ir.Constant(I64, WORKSPACE_B_OFFSET)], source_etype=ir.IntType(8))
        if self.region is not None:
            # A team runs independent serial GEMMs where it can (gemm_team_split.py): a
            # long k with few rows and columns splits k, enough rows split rows, enough
            # columns split columns; only what is left shares packed blocks (below).
            # Each thread of a row split packs all of B, of a column split all of A: with
            # more columns than rows (B the larger) the columns go first (Zen 5, 2
            # threads: 256x1024x1024 481 -> 511 GFLOP/s, 256x784x1024 478 -> 504).
            elem_bytes = 4 if self.suffix == "f32" else 8
            args, name = list(fn.args), self.name
            ws = WORKSPACE_BYTES
            by_cols = splits_cols(b, args, self.nr)
            cols_first = b.and_(by_cols, b.icmp_signed(">", n, m))
            by_rows = b.and_(
                splits_rows(b, args, FLOAT32_ROWS, elem_bytes, small_b), b.not_(cols_first)
            )
            splits = [
                (
                    splits_k(b, args, elem_bytes),
                    split_k_region(self.module, fn, self.t, ws, PARTIAL_OFFSET, f"{name}.by_k"),
                ),
                (
                    by_rows,
                    split_range_region(
                        self.module, fn, self.t, ws, self.mr, True, f"{name}.by_rows"
                    ),
                ),
                (
                    by_cols,
                    split_range_region(
                        self.module, fn, self.t, ws, self.nr, False, f"{name}.by_cols"
                    ),
                ),
            ]
            for condition, region in splits:
                with b.if_then(condition):
                    launch(b, self.module, region, args)
                    b.ret_void()

        def put(idx, v):
            store_untyped(
                b,
                v,
                b.gep(
                    slot, [ir.Constant(I32, 0), ir.Constant(I32, idx)], source_etype=self.block_type
                ),
            )

        for idx, v in enumerate([a, bb, c, m, n, k, *strides, beta]):
            put(idx, v)
        put(20, workspace)
        put(21, bpack)
        parallel_team = b.icmp_signed(">", threads, ir.Constant(I64, 1))

        def jc_body(jc):
            nc = imin(b, cols, b.sub(n, jc))

            def pc_body(pc):
                kc = imin(b, kc_step, b.sub(k, pc))
                # Accumulate into C after the first rank-KC update (or when asked to).
                first = b.icmp_signed("==", pc, ir.Constant(I64, 0))
                acc = b.select(first, beta, ir.Constant(I64, 1))

                # A short K leaves room in the A buffer for more rows per block: fewer
                # blocks means fewer parallel regions and fewer re-packings of B.
                rows = b.mul(
                    b.sdiv(b.sdiv(b.mul(mc_c, kc_c), kc), mr_c),
                    mr_c,
                )

                def ic_body(ic):
                    mc = imin(b, rows, b.sub(m, ic))
                    for idx, v in enumerate([jc, pc, ic, mc, nc, kc, acc]):
                        put(13 + idx, v)
                    serial = [slot, ir.Constant(I64, 0), ir.Constant(I64, 1)]
                    if self.region is None:
                        b.call(self.region_body, serial)
                        return
                    gomp = declare(
                        self.module, "GOMP_parallel", ir.FunctionType(VOID, [PTR, PTR, I32, I32])
                    )
                    with b.if_else(parallel_team) as (team, alone):
                        with team:
                            count = b.trunc(threads, I32)
                            b.call(gomp, [self.region, slot, count, ir.Constant(I32, 0)])
                        with alone:
                            b.call(self.region_body, serial)

                L.range(0, m, rows, ic_body, "ic")

            L.range(0, k, kc_step, pc_body, "pc")

        # Small M and N with a long K (a weight gradient over a batch): rank-KC updates
        # 4x as deep, so 4x fewer parallel regions; the A and B buffers still fit.
        four = ir.Constant(I64, 4)
        small = b.and_(
            b.icmp_signed("<=", b.mul(m, four), mc_c),
            b.icmp_signed("<=", b.mul(n, four), nc_c),
        )
        kc_step = b.select(small, b.mul(kc_c, four), kc_c)
        # K == 0: C = 0 (or unchanged when accumulating).
        L.when(
            b.and_(
                b.icmp_signed("==", k, ir.Constant(I64, 0)),
                b.icmp_signed("==", beta, ir.Constant(I64, 0)),
            ),
            lambda: self._zero_c(L, c, m, n, strides[4], strides[5]),
        )
        # A short K leaves room for more columns per B block, as for rows of A below: the
        # block keeps the bytes the blocking sized it for (in L2) and fewer blocks mean
        # fewer parallel regions. (Within the B part of the workspace.)
        kc0 = imax(b, imin(b, kc_step, k), ir.Constant(I64, 1))
        nr_c = ir.Constant(I64, self.nr)
        cols = imin(
            b, b.sdiv(b.mul(nc_c, kc_c), kc0), b.sdiv(ir.Constant(I64, B_BUDGET_ELEMENTS), kc0)
        )
        cols = imax(b, b.mul(b.sdiv(cols, nr_c), nr_c), nr_c)
        L.range(0, n, cols, jc_body, "jc")
        b.ret_void()
        return fn

    def _zero_c(self, L, c, m, n, c_rs, c_cs):
        b = L.b

        def row(i):
            def col(j):
                at = b.add(b.mul(i, c_rs), b.mul(j, c_cs))
                store_untyped(b, ir.Constant(self.t, 0.0), b.gep(c, [at], source_etype=self.t))

            L.range(0, n, 1, col, "zj")

        L.range(0, m, 1, row, "zi")

    def _region_entry(self) -> ir.Function:
        fn = ir.Function(self.module, ir.FunctionType(VOID, [PTR]), f"{self.name}.region")
        fn.linkage = "internal"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        tid = b.sext(
            b.call(declare(self.module, "omp_get_thread_num", ir.FunctionType(I32, [])), []), I64
        )
        nth = b.sext(
            b.call(declare(self.module, "omp_get_num_threads", ir.FunctionType(I32, [])), []), I64
        )
        pool_thread = b.icmp_signed("!=", tid, ir.Constant(I64, 0))
        with subnormals_flushed(b, pool_thread):  # (the team's threads start here)
            b.call(self.region_body, [fn.args[0], tid, nth])
        b.ret_void()
        return fn

    # ---- one block: pack, barrier, micro-kernels --------------------------------------

    def _region_body(self) -> ir.Function:
        fn = ir.Function(self.module, ir.FunctionType(VOID, [PTR, I64, I64]), f"{self.name}.block")
        fn.linkage = "internal"
        data, tid, nth = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        L = Loops(fn, b)
        f = [
            b.load(
                b.gep(
                    data, [ir.Constant(I32, 0), ir.Constant(I32, i)], source_etype=self.block_type
                ),
                typ=t,
            )
            for i, t in enumerate(self.block_type.elements)
        ]
        a, bm, c, _m, _n, _k, a_rs, a_cs, b_rs, b_cs, c_rs, c_cs, _beta = f[:13]
        jc, pc, ic, mc, nc, kc, beta = f[13:20]
        # The packing buffers for this block (64-byte aligned by the caller).
        self.apack, self.bpack = f[20], f[21]
        for pointer in f[20:]:
            pointer.set_metadata("align", self.module.add_metadata([ir.Constant(I64, 64)]))
        mr, nr = ir.Constant(I64, self.mr), ir.Constant(I64, self.nr)
        m_panels = b.sdiv(b.add(mc, ir.Constant(I64, self.mr - 1)), mr)
        n_panels = b.sdiv(b.add(nc, ir.Constant(I64, self.nr - 1)), nr)

        blk = Block(a, bm, a_rs, a_cs, b_rs, b_cs, ic, jc, pc, mc, nc, kc)
        packing = packers(self, L, blk)
        pack_a, pack_b, whole_b_panel = packing.pack_a, packing.pack_b, packing.whole_b_panel
        tposed, one = packing.a_transposed, ir.Constant(I64, 1)

        # Whole panels of a row-major B are read in place: packing them would copy all of B
        # on every call, for few rows of A to reuse it (see in_place_b).
        in_place = self._in_place_b(b, b_rs, b_cs, nc, _m)

        def pack_b_unless_in_place(jr):
            L.when(b.not_(b.and_(in_place, whole_b_panel(jr))), lambda: pack_b(jr))

        a_in_place = self._in_place_a(b, a_cs)

        def whole_a_panel(ir_):
            return b.icmp_signed("<=", b.add(b.mul(ir_, mr), mr), mc)

        def pack_a_unless_in_place(ir_):
            L.when(b.not_(b.and_(a_in_place, whole_a_panel(ir_))), lambda: pack_a(ir_))

        # Who packs and computes what. B's block is packed once per rank update, by the
        # first row block (the later ones of the same (jc, pc) reuse it). With at least
        # two panels per thread along the block's longer side, each thread takes a
        # contiguous range of that side's panels, packs them itself and computes their
        # tiles: the larger packed operand never crosses between the cores' caches, and
        # only the other one (packed round robin) needs a barrier. Otherwise both are
        # packed round robin and the tiles shared.
        first_block = b.icmp_signed("==", ic, ir.Constant(I64, 0))
        two_each = b.mul(nth, ir.Constant(I64, 2))
        rows_longer = b.icmp_signed(">=", b.mul(m_panels, mr), b.mul(n_panels, nr))
        # B read in place is not packed at all: splitting rows then needs no barrier
        rows_longer = b.or_(rows_longer, in_place)
        split_rows = b.and_(rows_longer, b.icmp_signed(">=", m_panels, two_each))
        split_cols = b.and_(b.not_(rows_longer), b.icmp_signed(">=", n_panels, two_each))

        def share(panels, split):
            """This thread's panels: (first, stop, step), a contiguous range when split."""
            lo = b.sdiv(b.mul(tid, panels), nth)
            hi = b.sdiv(b.mul(b.add(tid, one), panels), nth)
            return (
                b.select(split, lo, tid),
                b.select(split, hi, panels),
                b.select(split, one, nth),
            )

        a_first, a_stop, a_step = share(m_panels, split_rows)
        b_first, b_stop, b_step = share(n_panels, split_cols)
        L.range(a_first, a_stop, a_step, pack_a_unless_in_place)
        L.when(first_block, lambda: L.range(b_first, b_stop, b_step, pack_b_unless_in_place))
        # a barrier for what another thread packed: A unless split by rows, B (when
        # packed in this block) unless split by columns
        waits = b.or_(b.not_(split_rows), b.and_(first_block, b.not_(split_cols)))
        L.when(
            b.and_(waits, b.icmp_signed(">", nth, one)),
            lambda: b.call(declare(self.module, "GOMP_barrier", ir.FunctionType(VOID, [])), []),
        )

        # Tiles t -> (row panel t / width, column panel first_column + t % width): all of
        # this thread's when split (each A micro-panel stays in L1 while the B panels
        # stream past it from L2), every nth one of the block's otherwise.
        my_cols = b.sub(b_stop, b_first)
        width = b.select(split_cols, imax(b, my_cols, one), n_panels)
        first_column = b.select(split_cols, b_first, ir.Constant(I64, 0))
        rows_of_tiles = b.select(split_rows, b.sub(a_stop, a_first), m_panels)
        first_tile = b.select(
            split_rows, b.mul(a_first, n_panels), b.select(split_cols, ir.Constant(I64, 0), tid)
        )
        tiles_stop = b.add(
            first_tile, b.mul(rows_of_tiles, b.select(split_cols, my_cols, n_panels))
        )
        tiles_step = b.select(b.or_(split_rows, split_cols), one, nth)

        def tile(t):
            ir_ = b.sdiv(t, width)
            jr = b.add(first_column, b.srem(t, width))
            direct = b.and_(in_place, whole_b_panel(jr))
            # where element (p, j) of this tile's B panel is: base + p*step + j
            packed_at = b.gep(self.bpack, [b.mul(jr, b.mul(kc, nr))], source_etype=self.t)
            source_at = b.gep(
                bm, [b.add(b.mul(pc, b_rs), b.add(jc, b.mul(jr, nr)))], source_etype=self.t
            )
            b_panel = (direct, source_at, b_rs, packed_at)
            a_row = b.add(ic, b.mul(ir_, mr))
            a_at = b.gep(a, [b.add(b.mul(a_row, a_rs), pc)], source_etype=self.t)
            a_panel = (b.and_(a_in_place, whole_a_panel(ir_)), a_at, a_rs)
            micro_kernel(self, L, blk, ir_, jr, a_panel, b_panel, (c, c_rs, c_cs, beta), tposed)

        L.range(first_tile, tiles_stop, tiles_step, tile, "tile")
        b.ret_void()
        return fn

    def _in_place_a(self, b: ir.IRBuilder, a_cs: ir.Value) -> ir.Value:
        """Read a row-major A's whole panels where they are: the micro-kernel broadcasts
        one element of each of MR rows per step of k, and MR rows of A, each contiguous
        along k, are MR sequential streams the prefetchers follow as well as they follow
        a packed panel. Packing them cost a copy of A per column block of B, not paid
        back: one Zen 5 core, 1024^3 241 -> 258 GFLOP/s, 64x5408x64 227 -> 252,
        1000x1000x30 191 -> 235; two cores 1024^3 480 -> 505. The last, partial panel
        is still packed (zero rows beyond mc: the rows below A's end are never read).
        (Never when the operands are rounded: that happens in the packing.)"""
        if self.rounded:
            return ir.Constant(ir.IntType(1), 0)
        # (a transposed A, packed [p][r], has a column stride other than 1)
        return b.icmp_signed("==", a_cs, ir.Constant(I64, 1))

    def _in_place_b(
        self, b: ir.IRBuilder, b_rs: ir.Value, b_cs: ir.Value, nc: ir.Value, m: ir.Value
    ) -> ir.Value:
        """Read B's whole panels where they are: its rows are contiguous (unit column
        stride) and few rows of A reuse each panel (m <= IN_PLACE_B_ROWS), so copying B
        into panels would cost about as much as the products themselves. A block of whole
        rows (the row stride is the block's width) is read in place for up to
        IN_PLACE_CONTIGUOUS_B_ROWS rows of A: a panel of a wider B, its rows a power of two
        KiB apart, would fall into few of the cache's sets (192x1024x1024 read in place:
        257 -> 194 GFLOP/s on one Zen 5 core), a whole-row block does not (128x784x256
        238 -> 250, 200x784x200 225 -> 237). (Never when the operands are rounded: that
        happens in the packing.)"""
        if self.rounded:
            return ir.Constant(ir.IntType(1), 0)
        few_rows = b.icmp_signed("<=", m, ir.Constant(I64, IN_PLACE_B_ROWS))
        whole_rows = b.and_(
            b.icmp_signed("==", b_rs, nc),
            b.icmp_signed("<=", m, ir.Constant(I64, IN_PLACE_CONTIGUOUS_B_ROWS)),
        )
        return b.and_(b.icmp_signed("==", b_cs, ir.Constant(I64, 1)), b.or_(few_rows, whole_rows))


def runtime_symbol(suffix: str) -> str:
    return f"nc_rt_gemm_{suffix}"


def gemm_declaration(module: ir.Module, ftype: ir.Type) -> ir.Function:
    """The shared runtime's GEMM for ``ftype``, declared in a program module.

    The GEMM is compiled once per process (runtime.py) and registered as a symbol the JIT
    links against, so a program's compile time does not pay for it and cached program
    objects refer to it by name, not by address. Its last two arguments are the caller's
    packing workspace (threads x WORKSPACE_BYTES, 64-byte aligned) and the call's thread count."""
    suffix = "f32" if isinstance(ftype, ir.FloatType) else "f64"
    name = runtime_symbol(suffix)
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, GEMM_TYPE, name)


def runtime_functions() -> dict[str, str]:
    """{function name in the runtime module: the symbol programs link against}."""
    return {f"nc_gemm_{suffix}": runtime_symbol(suffix) for suffix in ("f32", "f64")}


def define_blocking(module: ir.Module, tile: MicroTile) -> None:
    """BLOCKING_GLOBAL in ``module``, a small valid blocking until set_blocking sets the
    machine's."""
    initial = [128, tile.mr * 16, tile.vectors * tile.lanes * 8, 1 << 20]
    blocking = ir.GlobalVariable(module, ir.ArrayType(I64, BLOCKING_FIELDS), BLOCKING_GLOBAL)
    blocking.initializer = ir.Constant(ir.ArrayType(I64, BLOCKING_FIELDS), initial)


def build_gemm_functions(module: ir.Module, parallel: ParallelRuntime, tile: MicroTile) -> None:
    """Define nc_gemm_f32 and nc_gemm_f64 (``runtime_functions``) in ``module`` with the
    micro-tile ``tile``. BLOCKING_GLOBAL starts as a small valid blocking
    (the text of the module depends on the tile alone, so the compiled object is cached
    once per tile); whoever compiles it sets the real one (gemm_tune.set_blocking)."""
    define_blocking(module, tile)
    for ftype in (ir.FloatType(), ir.DoubleType()):
        GemmBuilder(module, ftype, tile, parallel).fn.linkage = "external"
