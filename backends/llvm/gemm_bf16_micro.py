"""The inner kernels of the bf16 GEMM (gemm_bf16.py): a 32 x 32 block of C from a packed A
panel and two packed B panels (gemm_bf16_pack.py).

- TileKernel (AMX): the block in four float32 tiles (tmm0-3); per 32 steps of k two A
  tiles (tmm4-5, 16 rows x 32 k) and two B tiles (tmm6-7, 32 k x 16 columns) feed four
  ``tdpbf16ps``. A whole block of a row-major C accumulates in place (the tiles start from
  C, or zero, and are stored back); edges and other layouts go through ``scratch`` and the
  driver's element-wise write-back.
- VectorKernel (AVX512-BF16): 8 rows x 2 vectors of 16 floats at a time, one
  ``vdpbf16ps`` per row, vector and pair of k; the block goes through ``scratch``.

LLVM 22's AMX intrinsics that name tiles by number work from llvmlite as plain calls.
"""

from __future__ import annotations

import llvmlite.ir as ir

from .amx_emulation import FILE_BYTES, emulated_tile_ops
from .gemm_bf16_pack import BLOCK, Emitter, KBlock, const
from .llvm_builders import declare, imin
from .parallel import store_untyped

I8, I16, I32, I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F32, PTR, VOID = ir.FloatType(), ir.PointerType(), ir.VoidType()
V16, VI32 = ir.VectorType(F32, 16), ir.VectorType(I32, 16)
QUARTERS = ((0, 0), (0, 16), (16, 0), (16, 16))  # the four 16 x 16 tiles of a block of C
VECTOR_ROWS = 8  # AVX512-BF16: rows per register block (8 x 2 accumulators)
TILE_CONFIG = "nc_gemm_bf16.tilecfg"


def tile_config(module: ir.Module) -> ir.GlobalVariable:
    """The configuration ldtilecfg loads: palette 1, tiles 0-7 all 16 rows x 64 bytes
    (16 x 16 float32, 16 x 32 bf16, or 16 pair rows x 16 columns)."""
    if TILE_CONFIG in module.globals:
        return module.globals[TILE_CONFIG]
    raw = bytearray(64)
    raw[0] = 1
    for t in range(8):
        raw[16 + 2 * t] = 64  # colsb (uint16, little endian)
        raw[48 + t] = 16  # rows
    arr = ir.ArrayType(I8, 64)
    g = ir.GlobalVariable(module, arr, TILE_CONFIG)
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


def _tile(n: int) -> ir.Constant:
    return ir.Constant(I8, n)


class TileKernel:
    def __init__(self, e: Emitter, scratch: ir.Value, emulated: bool = False):
        """``emulated``: the tile operations in plain IR on a tile file in this frame
        (amx_emulation.py), for a CPU without AMX."""
        self.e, self.scratch = e, scratch
        self.file = None
        if emulated:
            with e.b.goto_entry_block():
                self.file = e.b.alloca(ir.ArrayType(I8, FILE_BYTES))
                self.file.align = 64
            self.ops = emulated_tile_ops(e.module)
        else:
            self.ops = tile_intrinsics(e.module)

    def _call(self, name: str, args: list[ir.Value]) -> None:
        self.e.b.call(self.ops[name], args if self.file is None else [self.file, *args])

    def begin(self) -> None:
        if self.file is None:
            self.e.b.call(self.ops["ldtilecfg"], [tile_config(self.e.module)])

    def end(self) -> None:
        if self.file is None:
            self.e.b.call(self.ops["tilerelease"], [])

    def block(self, kb: KBlock, ic, mh, jr, apack, bpack, write_back) -> None:
        """C[ic.., jc + jr..] (+)= the block's products; ``write_back(j0, nwj)`` adds a
        block left in ``scratch`` into C."""
        e, b, g = self.e, self.e.b, self.e.g
        j0 = b.add(kb.jc, jr)
        nwj = imin(b, const(BLOCK), b.sub(kb.nw, jr))
        whole = _whole_in_row_major_c(b, g, mh, nwj)
        c_bytes = b.mul(g.c_rs, const(4))

        def c_tile(dr, dc):
            return e.element(g.c, b.add(ic, const(dr)), b.add(j0, const(dc)), g.c_rs, g.c_cs)

        def start_from_c():
            for t, (dr, dc) in enumerate(QUARTERS):
                self._call("tileloadd64", [_tile(t), c_tile(dr, dc), c_bytes])

        def start_from_zero():
            for t in range(4):
                self._call("tilezero", [_tile(t)])

        e.loops.first_of("c0", [(b.and_(whole, b.not_(kb.first)), start_from_c)], start_from_zero)
        a_stride = b.mul(kb.kwp, const(2))  # bytes per packed A row
        panel = b.sdiv(jr, const(16))

        def step(kt):
            a0 = b.gep(apack, [b.mul(kt, const(64))], source_etype=I8)
            a1 = b.gep(a0, [b.mul(a_stride, const(16))], source_etype=I8)

            def b_at(p):
                rows = b.add(b.mul(p, kb.half), b.mul(kt, const(16)))
                return b.gep(bpack, [b.mul(rows, const(64))], source_etype=I8)

            self._call("tileloadd64", [_tile(4), a0, a_stride])
            self._call("tileloadd64", [_tile(5), a1, a_stride])
            self._call("tileloadd64", [_tile(6), b_at(panel), const(64)])
            self._call("tileloadd64", [_tile(7), b_at(b.add(panel, const(1))), const(64)])
            for t, (a, bt) in enumerate(((4, 6), (4, 7), (5, 6), (5, 7))):
                self._call("tdpbf16ps", [_tile(t), _tile(a), _tile(bt)])

        e.loops.range(0, b.sdiv(kb.kwp, const(32)), 1, step, "kt")

        def store_to_c():
            for t, (dr, dc) in enumerate(QUARTERS):
                self._call("tilestored64", [_tile(t), c_tile(dr, dc), c_bytes])

        def through_scratch():
            for t, (dr, dc) in enumerate(QUARTERS):
                at = b.gep(
                    self.scratch,
                    [const(0), const(dr * BLOCK + dc)],
                    source_etype=self.scratch.allocated_type,
                )
                self._call("tilestored64", [_tile(t), at, const(BLOCK * 4)])
            write_back(j0, nwj)

        e.loops.first_of("c1", [(whole, store_to_c)], through_scratch)


class VectorKernel:
    def __init__(self, e: Emitter, scratch: ir.Value, accumulators: ir.Value):
        self.e, self.scratch, self.accs = e, scratch, accumulators
        self.dp = declare(
            e.module, "llvm.x86.avx512bf16.dpbf16ps.512", ir.FunctionType(V16, [V16, VI32, VI32])
        )

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass

    def _acc(self, slot: int) -> ir.Value:
        # (constant indices only: the accumulators stay in registers)
        return self.e.b.gep(
            self.accs, [const(0), const(slot)], source_etype=self.accs.allocated_type
        )

    def block(self, kb: KBlock, ic, mh, jr, apack, bpack, write_back) -> None:
        """As TileKernel.block, 8 rows at a time: a whole block of a row-major C starts
        from C (or zero) and is stored back in place; others go through ``scratch``."""
        e, b, g = self.e, self.e.b, self.e.g
        panel = b.sdiv(jr, const(16))
        j0 = b.add(kb.jc, jr)
        nwj = imin(b, const(BLOCK), b.sub(kb.nw, jr))
        whole = _whole_in_row_major_c(b, g, mh, nwj)
        zero = ir.Constant(V16, [0.0] * 16)
        for group in range(BLOCK // VECTOR_ROWS):

            def c_row(i, h, group=group):
                row = b.add(ic, const(group * VECTOR_ROWS + i))
                return e.element(g.c, row, b.add(j0, const(16 * h)), g.c_rs, g.c_cs)

            def scratch_row(i, h, group=group):
                at = const((group * VECTOR_ROWS + i) * BLOCK + 16 * h)
                return b.gep(self.scratch, [const(0), at], source_etype=self.scratch.allocated_type)

            def start(from_c, c_row=c_row):
                for i in range(VECTOR_ROWS):
                    for h in range(2):
                        v = b.load(c_row(i, h), typ=V16, align=4) if from_c else zero
                        store_untyped(b, v, self._acc(2 * i + h), 64)

            def finish(row, align):
                for i in range(VECTOR_ROWS):
                    for h in range(2):
                        store_untyped(b, b.load(self._acc(2 * i + h), typ=V16), row(i, h), align)

            e.loops.first_of(
                f"v{group}",
                [(b.and_(whole, b.not_(kb.first)), lambda s=start: s(True))],
                lambda s=start: s(False),
            )

            def step(kp, group=group):
                columns = []
                for p in (panel, b.add(panel, const(1))):
                    at = b.mul(b.add(b.mul(p, kb.half), kp), const(64))
                    columns.append(b.load(b.gep(bpack, [at], source_etype=I8), typ=VI32, align=64))
                for i in range(VECTOR_ROWS):
                    r = const(group * VECTOR_ROWS + i)
                    at = b.add(b.mul(r, kb.kwp), b.mul(kp, const(2)))
                    pair = b.load(b.gep(apack, [at], source_etype=I16), typ=I32, align=4)
                    splat = b.shuffle_vector(
                        b.insert_element(
                            ir.Constant(VI32, ir.Undefined), pair, ir.Constant(I32, 0)
                        ),
                        ir.Constant(VI32, ir.Undefined),
                        ir.Constant(VI32, [0] * 16),
                    )
                    for h in range(2):
                        slot = self._acc(2 * i + h)
                        total = b.call(self.dp, [b.load(slot, typ=V16), columns[h], splat])
                        store_untyped(b, total, slot, 64)

            e.loops.range(0, kb.half, 1, step, "vk")
            e.loops.first_of(
                f"w{group}",
                [(whole, lambda f=finish, c_row=c_row: f(c_row, 4))],
                lambda f=finish, s_row=scratch_row: f(s_row, 64),
            )
        e.loops.when(b.not_(whole), lambda: write_back(j0, nwj))


def _whole_in_row_major_c(b: ir.IRBuilder, g, mh: ir.Value, nwj: ir.Value) -> ir.Value:
    """The block is BLOCK x BLOCK and C's rows are contiguous: it accumulates in C itself."""
    return b.and_(
        b.and_(b.icmp_signed("==", mh, const(BLOCK)), b.icmp_signed("==", nwj, const(BLOCK))),
        b.icmp_signed("==", g.c_cs, const(1)),
    )
