"""The shared runtime: functions every program calls, compiled once per process.

Today that is the packed GEMM (nc_gemm_f32, nc_gemm_f64) for a given thread count,
registered with the JIT linker as ``nc_rt_gemm_f32_t<threads>``: a program declares and
calls it by that name, so the program's own compile time does not include the GEMM and
its cached object code holds no addresses of this process.
"""

from __future__ import annotations

import functools

import llvmlite.binding as llvm
import llvmlite.ir as ir

from .gemm_packed import build_gemm_functions
from .jit import NativeCode, compile_ir
from .parallel import ParallelRuntime


@functools.cache
def runtime(threads: int) -> NativeCode:
    """Compile the runtime for ``threads`` (once) and register its symbols with the JIT's
    linker; the returned NativeCode keeps the code alive."""
    module = ir.Module(name=f"nc_runtime_t{threads}")
    module.triple = llvm.get_process_triple()
    names = build_gemm_functions(module, ParallelRuntime(module, threads))
    native = compile_ir(str(module), entry=next(iter(names)))
    for name, symbol in names.items():
        llvm.add_symbol(symbol, native.engine.get_function_address(name))
    return native
