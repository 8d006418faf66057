"""The AMX bf16 throughput of one core, measured with a tile loop (four independent
``tdpbf16ps`` on operands already in tiles, no loads): the ceiling the bf16 GEMM's
efficiency is quoted against (benchmarks/bf16.py)."""

from __future__ import annotations

import ctypes
import time

import llvmlite.binding as llvm
import llvmlite.ir as ir

from .amx import amx_usable
from .gemm_bf16_micro import tile_config, tile_intrinsics
from .jit import compile_ir
from .llvm_builders import Loops

FLOPS_PER_TILE_PRODUCT = 16 * 16 * 32 * 2


def amx_peak(seconds: float = 0.2) -> float | None:
    """GFLOP/s of one core's tile unit in bf16, or None without AMX."""
    if not amx_usable():
        return None
    i64, i8 = ir.IntType(64), ir.IntType(8)
    module = ir.Module(name="nc_amx_peak")
    module.triple = llvm.get_process_triple()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64]), "nc_amx_peak")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ops = tile_intrinsics(module)
    b.call(ops["ldtilecfg"], [tile_config(module)])
    for t in range(8):  # zeros: the sums stay finite and the unit's speed is data-blind
        b.call(ops["tilezero"], [ir.Constant(i8, t)])

    def step(_):
        for t, (x, y) in enumerate(((4, 6), (4, 7), (5, 6), (5, 7))):
            b.call(ops["tdpbf16ps"], [ir.Constant(i8, v) for v in (t, x, y)])

    Loops(fn, b).range(0, fn.args[0], 1, step, "i")
    b.call(ops["tilerelease"], [])
    b.ret_void()
    native = compile_ir(str(module), entry="nc_amx_peak")
    run = ctypes.CFUNCTYPE(None, ctypes.c_int64)(native.entry_address)
    iterations = 1 << 16
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        run(iterations)
        best = min(best, time.perf_counter() - t)
    return 4 * iterations * FLOPS_PER_TILE_PRODUCT / best / 1e9
