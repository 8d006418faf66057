"""backends/llvm/amx_emulation.py against the instructions' documented semantics (Intel
SDM, TDPBF16PS with every tile 16 rows x 64 bytes): C[m][n] += sum over pairs p of
A[m][2p] B[p][2n] + A[m][2p + 1] B[p][2n + 1], B's tile holding 16 pair rows of 16
columns x 2 bf16. The AMX form of the bf16 GEMM runs on these where the CPU has no AMX
(tests/backends/test_gemm_bf16.py, form "amx-emulated"), so they must mean what the
hardware does, not just what the driver expects."""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import llvmlite.ir as ir
import numpy as np
from nncompile.backends.llvm.amx_emulation import FILE_BYTES, emulated_tile_ops
from nncompile.backends.llvm.jit import compile_ir

I8, I64, PTR, VOID = ir.IntType(8), ir.IntType(64), ir.PointerType(), ir.VoidType()


def _tile_program():
    """run(a, b, c, a_stride, b_stride, c_stride): C tile (+)= A tile . B tile, each loaded
    from and C stored to memory with its row stride in bytes."""
    module = ir.Module(name="amx_emulation_test")
    module.triple = llvm.get_process_triple()
    ops = emulated_tile_ops(module)
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR] * 3 + [I64] * 3), "run")
    a, b_, c, sa, sb, sc = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    file = b.alloca(ir.ArrayType(I8, FILE_BYTES))
    tile = lambda t: ir.Constant(I8, t)  # noqa: E731
    b.call(ops["tilezero"], [file, tile(1)])
    b.call(ops["tileloadd64"], [file, tile(0), c, sc])
    b.call(ops["tileloadd64"], [file, tile(4), a, sa])
    b.call(ops["tileloadd64"], [file, tile(6), b_, sb])
    b.call(ops["tdpbf16ps"], [file, tile(0), tile(4), tile(6)])
    b.call(ops["tdpbf16ps"], [file, tile(1), tile(4), tile(6)])  # (from a zeroed tile)
    b.call(ops["tilestored64"], [file, tile(0), c, sc])
    b.call(ops["tilestored64"], [file, tile(1), c, ir.Constant(I64, 0)])  # (row 0 only kept)
    b.ret_void()
    native = compile_ir(str(module), entry="run")
    call = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3))
    return native, call(native.engine.get_function_address("run"))


def _bf16_bits(rng, shape) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return (x.view(np.uint32) >> 16).astype(np.uint16)  # (truncated: any bf16 values do)


def _values(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def test_tdpbf16ps_follows_the_documented_formula_with_strided_tiles():
    native, run = _tile_program()
    rng = np.random.default_rng(0)
    a = _bf16_bits(rng, (16, 40))  # rows 80 bytes apart: 32 bf16 used of each
    b = _bf16_bits(rng, (16, 48))  # pair rows 96 bytes apart
    c = rng.standard_normal((16, 20)).astype(np.float32)  # C rows 80 bytes apart
    want = c.astype(np.float64).copy()
    av, bv = _values(a[:, :32]), _values(b[:, :32])
    for m in range(16):
        for n in range(16):
            for p in range(16):
                want[m, n] += av[m, 2 * p] * bv[p, 2 * n] + av[m, 2 * p + 1] * bv[p, 2 * n + 1]
    got = c.copy()
    run(a.ctypes.data, b.ctypes.data, got.ctypes.data, 80, 96, 80)
    # (row 0 is overwritten by the second store below)
    np.testing.assert_allclose(got[1:, :16], want[1:, :16], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(got[1:, 16:], c[1:, 16:])  # beyond the tile: untouched
    # the zeroed tile's product, all of its rows stored to row 0 (stride 0): the last row
    zeroed = want[15, :16] - c[15, :16].astype(np.float64)
    np.testing.assert_allclose(got[0, :16], zeroed, rtol=1e-5, atol=1e-4)
