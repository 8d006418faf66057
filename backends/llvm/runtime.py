"""The shared runtime: functions every program calls, compiled once per process.

Today that is the packed GEMM (nc_gemm_f32, nc_gemm_f64), registered with the JIT linker
as ``nc_rt_gemm_f32`` / ``nc_rt_gemm_f64``: a program declares and calls it by that name,
so the program's own compile time does not include the GEMM and its cached object code
holds no addresses of this process. The caller passes its thread count and packing
workspace on every call, so one compiled runtime serves every thread count and any number
of concurrent calls.
"""

from __future__ import annotations

import threading

import llvmlite.binding as llvm
import llvmlite.ir as ir

from .gemm_packed import build_gemm_functions
from .gemm_params import model_params
from .jit import NativeCode, compile_ir
from .machine import this_machine
from .parallel import MAX_THREADS, ParallelRuntime

_lock = threading.Lock()
_runtime: NativeCode | None = None


def runtime() -> NativeCode:
    """Compile the runtime (once) and register its symbols with the JIT's linker; the
    returned NativeCode keeps the code alive."""
    global _runtime
    with _lock:  # two threads compiling their first programs at once build it once
        if _runtime is None:
            module = ir.Module(name="nc_runtime")
            module.triple = llvm.get_process_triple()
            params = model_params(this_machine())
            names = build_gemm_functions(module, ParallelRuntime(module, MAX_THREADS), params)
            native = compile_ir(str(module), entry=next(iter(names)))
            for name, symbol in names.items():
                llvm.add_symbol(symbol, native.engine.get_function_address(name))
            _runtime = native
        return _runtime
