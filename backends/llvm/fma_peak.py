"""The vector throughput of one core, measured: the float32 FMA peak GEMM efficiency is
quoted against (``nncompile tune``, benchmark notes), and the AVX512-BF16 ``vdpbf16ps``
peak that decides whether bf16 products use it (amx.bf16_form).

Both are loops of independent accumulator chains on the widest vectors, as many as the
registers hold, on operands already in registers; they are timed on one thread."""

from __future__ import annotations

import ctypes
import functools
import time
from collections.abc import Callable

import llvmlite.binding as llvm
import llvmlite.ir as ir

from .amx import cpu_has_avx512bf16
from .jit import NativeCode, compile_ir
from .machine import this_machine

I32, I64, F32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
ITERATIONS = 1 << 18
FMA, DOT = "nc_fma_peak", "nc_bf16_dot_peak"
DOT_LANES = 16  # vdpbf16ps on 512-bit vectors: 16 float32 sums of two bf16 products each


def _chain_loop(module: ir.Module, name: str, lanes: int, chains: int, step) -> None:
    """``name(n)``: n iterations of ``step(acc)`` on each of ``chains`` accumulators."""
    vt = ir.VectorType(F32, lanes)
    fn = ir.Function(module, ir.FunctionType(F32, [I64]), name)
    entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(I64)
    i.add_incoming(ir.Constant(I64, 0), entry)
    accs = []
    for c in range(chains):
        acc = b.phi(vt)
        acc.add_incoming(ir.Constant(vt, [float(c)] * lanes), entry)
        accs.append(acc)
    nxt = [step(b, acc) for acc in accs]
    for acc, value in zip(accs, nxt, strict=True):
        acc.add_incoming(value, loop)
    i_next = b.add(i, ir.Constant(I64, 1))
    i.add_incoming(i_next, loop)
    b.cbranch(b.icmp_signed("<", i_next, fn.args[0]), loop, done)
    b.position_at_end(done)
    total = nxt[0]
    for value in nxt[1:]:
        total = b.fadd(total, value)
    b.ret(b.extract_element(total, ir.Constant(I32, 0)))


@functools.cache
def _peak_loops() -> tuple[NativeCode, int, int]:
    """The compiled loops (the bf16 one where the CPU has it), their lanes and chains."""
    machine = this_machine()
    lanes = machine.vector_bytes // 4
    chains = machine.vector_registers - 4
    module = ir.Module(name="nc_vector_peaks")
    module.triple = llvm.get_process_triple()
    vt = ir.VectorType(F32, lanes)
    fma = ir.Function(module, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fma.v{lanes}f32")
    scale, shift = ir.Constant(vt, [0.999] * lanes), ir.Constant(vt, [1e-3] * lanes)
    _chain_loop(module, FMA, lanes, chains, lambda b, acc: b.call(fma, [acc, scale, shift]))
    if cpu_has_avx512bf16():
        v16, vi32 = ir.VectorType(F32, DOT_LANES), ir.VectorType(I32, DOT_LANES)
        dot = ir.Function(
            module, ir.FunctionType(v16, [v16, vi32, vi32]), "llvm.x86.avx512bf16.dpbf16ps.512"
        )
        dot.attributes.add("nounwind")
        pair = ir.Constant(vi32, [0x3F803F80] * DOT_LANES)  # two bf16 ones
        _chain_loop(module, DOT, DOT_LANES, chains, lambda b, acc: b.call(dot, [acc, pair, pair]))
    return compile_ir(str(module), entry=FMA), lanes, chains


def _runner(name: str) -> Callable[[int], float]:
    native, _, _ = _peak_loops()
    address = native.engine.get_function_address(name)
    return ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64)(address)


def _best_times(names: list[str], seconds: float) -> list[float]:
    """The fastest of repeated runs of each loop, interleaved (so that a burst of load on
    the machine slows every loop alike), the first round a warm-up."""
    runs = [_runner(n) for n in names]
    best = [float("inf")] * len(names)
    deadline = time.perf_counter() + seconds
    rounds = 0
    while time.perf_counter() < deadline or rounds < 3:
        for j, run in enumerate(runs):
            t = time.perf_counter()
            run(ITERATIONS)
            if rounds:
                best[j] = min(best[j], time.perf_counter() - t)
        rounds += 1
    return best


def _gflops(seconds: float, lanes: int, flops_per_lane: int) -> float:
    _, _, chains = _peak_loops()
    return flops_per_lane * lanes * chains * ITERATIONS / seconds / 1e9


def fma_peak(seconds: float = 0.2) -> float:
    """This core's float32 FMA throughput in GFLOP/s."""
    _, lanes, _ = _peak_loops()
    return _gflops(_best_times([FMA], seconds)[0], lanes, 2)


def bf16_dot_peak(seconds: float = 0.2) -> float | None:
    """This core's ``vdpbf16ps`` throughput in GFLOP/s (two products and two sums per
    lane), or None where the CPU lacks AVX512-BF16."""
    if not cpu_has_avx512bf16():
        return None
    return _gflops(_best_times([DOT], seconds)[0], DOT_LANES, 4)


@functools.cache
def bf16_dot_speedup(seconds: float = 0.05) -> float | None:
    """How many times the float32 FMA peak ``vdpbf16ps`` reaches on this core (measured
    once per process), or None where the CPU lacks AVX512-BF16. About 2 where the
    instruction issues as often as an FMA (Zen 4 and 5); about 1 where it issues at half
    the rate (Sapphire Rapids), and there the bf16 GEMM gains nothing from it."""
    if not cpu_has_avx512bf16():
        return None
    fma_time, dot_time = _best_times([FMA, DOT], seconds)
    _, lanes, _ = _peak_loops()
    return (4 * DOT_LANES / dot_time) / (2 * lanes / fma_time)
