"""AMX's tile instructions in plain LLVM IR, to run the AMX form of the bf16 GEMM on a CPU
without AMX (``NNCOMPILE_AMX_EMULATE=1``): a test of its loops, packing layouts, edges and
epilogues, at scalar speed. No CI machine here has AMX; without this the AMX driver would
be checked only where a person runs it on one.

The eight tile registers are a tile file of 8 x 1 KiB in the calling thread's frame
(gemm_bf16_micro.TileKernel allocates it); every tile is configured as the GEMM configures
them all (16 rows of 64 bytes). Each function takes the tile file first, then the
intrinsic's own arguments (tile numbers as i8):

- tilezero(t); tileloadd64(t, base, stride) and tilestored64(t, base, stride): 16 rows of
  64 bytes, ``stride`` bytes apart in memory;
- tdpbf16ps(c, a, b): C[m][n] += sum over p < 16, e < 2 of A[m][2p + e] B[p][2n + e]
  (A: 16 rows of 32 bf16; B: 16 pair rows of 16 columns x 2 bf16; C: 16 x 16 float32).
  Products of two bf16 values are exact in float32; the sums are float32 in order p, e (the
  hardware's order is unspecified: the tests bound summation error, not its order). The
  hardware also reads subnormal inputs as zero and flushes subnormal sums; this does not
  (the tests' operands are normal numbers).
"""

from __future__ import annotations

import llvmlite.ir as ir

from .llvm_builders import Loops, declare

I1, I8, I16, I32, I64 = (ir.IntType(w) for w in (1, 8, 16, 32, 64))
F32, PTR, VOID = ir.FloatType(), ir.PointerType(), ir.VoidType()
TILE_BYTES = 1024  # 16 rows x 64 bytes
TILES = 8
FILE_BYTES = TILE_BYTES * TILES
ROW_BYTES = 64


def _c(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


def _tile(b: ir.IRBuilder, file: ir.Value, t: ir.Value) -> ir.Value:
    return b.gep(file, [b.mul(b.zext(t, I64), _c(TILE_BYTES))], source_etype=I8)


def _define(module: ir.Module, name: str, args: list[ir.Type], body) -> ir.Function:
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, *args]), name)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    body(b, Loops(fn, b), *fn.args)
    b.ret_void()
    return fn


def _copy(b: ir.IRBuilder, dst: ir.Value, src: ir.Value, nbytes: int) -> None:
    fn = declare(b.module, "llvm.memcpy.p0.p0.i64", ir.FunctionType(VOID, [PTR, PTR, I64, I1]))
    b.call(fn, [dst, src, _c(nbytes), ir.Constant(I1, 0)])


def _bf16_to_f32(b: ir.IRBuilder, bits: ir.Value) -> ir.Value:
    return b.bitcast(b.shl(b.zext(bits, I32), ir.Constant(I32, 16)), F32)


def emulated_tile_ops(module: ir.Module) -> dict[str, ir.Function]:
    """The tile operations TileKernel calls, by intrinsic name (gemm_bf16_micro's
    tile_intrinsics), each taking the tile file first."""

    def zero(b, L, file, t):
        fill = declare(module, "llvm.memset.p0.i64", ir.FunctionType(VOID, [PTR, I8, I64, I1]))
        b.call(fill, [_tile(b, file, t), ir.Constant(I8, 0), _c(TILE_BYTES), ir.Constant(I1, 0)])

    def load(b, L, file, t, base, stride):
        def row(r):
            at = b.gep(_tile(b, file, t), [b.mul(r, _c(ROW_BYTES))], source_etype=I8)
            _copy(b, at, b.gep(base, [b.mul(r, stride)], source_etype=I8), ROW_BYTES)

        L.range(0, 16, 1, row, "lr")

    def store(b, L, file, t, base, stride):
        def row(r):
            at = b.gep(_tile(b, file, t), [b.mul(r, _c(ROW_BYTES))], source_etype=I8)
            _copy(b, b.gep(base, [b.mul(r, stride)], source_etype=I8), at, ROW_BYTES)

        L.range(0, 16, 1, row, "sr")

    def dot(b, L, file, c, a, bt):
        tc, ta, tb = _tile(b, file, c), _tile(b, file, a), _tile(b, file, bt)

        def element(m, n):
            at = b.gep(tc, [b.add(b.mul(m, _c(16)), n)], source_etype=F32)
            with b.goto_entry_block():
                total = b.alloca(F32)  # (mem2reg keeps it in a register)
            b.store(b.load(at, typ=F32), total)

            def pair(p):
                for e in range(2):
                    k = b.add(b.mul(p, _c(2)), _c(e))  # A's column; B's pair row p, half e
                    x = b.gep(ta, [b.add(b.mul(m, _c(32)), k)], source_etype=I16)
                    y = b.gep(
                        tb,
                        [b.add(b.mul(p, _c(32)), b.add(b.mul(n, _c(2)), _c(e)))],
                        source_etype=I16,
                    )
                    product = b.fmul(
                        _bf16_to_f32(b, b.load(x, typ=I16)), _bf16_to_f32(b, b.load(y, typ=I16))
                    )
                    b.store(b.fadd(b.load(total, typ=F32), product), total)

            L.range(0, 16, 1, pair, "dp")
            b.store(b.load(total, typ=F32), at)

        L.range(0, 16, 1, lambda m: L.range(0, 16, 1, lambda n: element(m, n), "dn"), "dm")

    return {
        "tilezero": _define(module, "nc_amx_emu.tilezero", [I8], zero),
        "tileloadd64": _define(module, "nc_amx_emu.tileloadd64", [I8, PTR, I64], load),
        "tilestored64": _define(module, "nc_amx_emu.tilestored64", [I8, PTR, I64], store),
        "tdpbf16ps": _define(module, "nc_amx_emu.tdpbf16ps", [I8, I8, I8], dot),
    }
