"""The float32 FMA throughput of one core, measured: the ceiling GEMM efficiency is
quoted against (``nncompile tune``, benchmark notes)."""

from __future__ import annotations

import ctypes
import time

import llvmlite.binding as llvm
import llvmlite.ir as ir

from .jit import compile_ir
from .machine import this_machine


def fma_peak(seconds: float = 0.2) -> float:
    """This core's float32 FMA throughput in GFLOP/s: independent FMA chains on the
    widest vectors, as many as the registers hold, timed on one thread."""
    machine = this_machine()
    lanes = machine.vector_bytes // 4
    chains = machine.vector_registers - 4
    vt = ir.VectorType(ir.FloatType(), lanes)
    module = ir.Module(name="nc_fma_peak")
    module.triple = llvm.get_process_triple()
    i64 = ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.FloatType(), [i64]), "nc_fma_peak")
    fma = ir.Function(module, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fma.v{lanes}f32")
    entry = fn.append_basic_block("entry")
    loop = fn.append_basic_block("loop")
    done = fn.append_basic_block("done")
    b = ir.IRBuilder(entry)
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    scale = ir.Constant(vt, [0.999] * lanes)
    shift = ir.Constant(vt, [1e-3] * lanes)
    accs = []
    for c in range(chains):
        acc = b.phi(vt)
        acc.add_incoming(ir.Constant(vt, [float(c)] * lanes), entry)
        accs.append(acc)
    nxt = [b.call(fma, [acc, scale, shift]) for acc in accs]
    for acc, value in zip(accs, nxt, strict=True):
        acc.add_incoming(value, loop)
    step = b.add(i, ir.Constant(i64, 1))
    i.add_incoming(step, loop)
    b.cbranch(b.icmp_signed("<", step, fn.args[0]), loop, done)
    b.position_at_end(done)
    total = nxt[0]
    for value in nxt[1:]:
        total = b.fadd(total, value)
    b.ret(b.extract_element(total, ir.Constant(ir.IntType(32), 0)))
    native = compile_ir(str(module), entry="nc_fma_peak")
    run = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64)(native.entry_address)
    iterations = 1 << 20
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 3:
        t = time.perf_counter()
        run(iterations)
        samples.append(time.perf_counter() - t)
    flops = 2.0 * lanes * chains * iterations
    return flops / min(samples[1:]) / 1e9
