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
import warnings

import llvmlite.binding as llvm
import llvmlite.ir as ir

from .amx import bf16_form as current_bf16_form
from .gemm_bf16 import FUNCTION as BF16_FUNCTION
from .gemm_bf16 import FUSED_FUNCTION, FUSED_SYMBOL, Bf16GemmBuilder
from .gemm_bf16 import SYMBOL as BF16_SYMBOL
from .gemm_packed import runtime_functions
from .gemm_tune import Tuning, compile_gemm, gemm_tuning, set_blocking
from .jit import NativeCode, compile_ir
from .parallel import load_libgomp

_lock = threading.Lock()
_runtime: NativeCode | None = None
_tuning: Tuning | None = None
_bf16: dict[str, NativeCode] = {}  # by form (gemm_bf16.FORMS)
_bf16_form: str | None = None  # the form registered now


def runtime() -> NativeCode:
    """Compile the runtime (once) with the machine's GEMM blocking (tuned at the first call
    of a process when none is stored, see gemm_tune.py) and register its symbols with the
    JIT's linker; the returned NativeCode keeps the code alive."""
    global _runtime, _tuning
    with _lock:  # two threads compiling their first programs at once build it once
        if _runtime is None:
            _tuning = gemm_tuning()
            native = _tuning.native or compile_gemm(_tuning.params.tile)
            set_blocking(native, _tuning.params)
            for name, symbol in runtime_functions().items():
                llvm.add_symbol(symbol, native.engine.get_function_address(name))
            _runtime = native
        return _runtime


def runtime_tuning() -> Tuning:
    """The GEMM blocking the runtime was compiled with (compiling it if needed)."""
    runtime()
    assert _tuning is not None
    return _tuning


def bf16_runtime() -> NativeCode:
    """The bfloat16 GEMM (gemm_bf16.py) for this process, compiled at the first program
    with ``matmul_precision="bf16"`` and registered as ``nc_rt_gemm_bf16``: the AMX form
    where amx.amx_usable() holds now, else AVX512-BF16 vectors where the CPU has them, else
    the float32 GEMM compiled to round its operands as it packs them.
    Programs name the symbol only, so each compile links the form registered last (both
    compute the same products; NNCOMPILE_AMX=0 switches the form for later compiles)."""
    runtime()  # the tuning's blocking and libgomp's team, both forms use them
    global _bf16_form
    with _lock:  # (threads compiling their first bf16 programs at once decide the form once)
        form = current_bf16_form()
        native = _bf16.get(form)
        if native is None:
            load_libgomp()
            module = ir.Module(name="nc_runtime_bf16")
            module.triple = llvm.get_process_triple()
            tuning = _tuning  # (set by runtime() above)
            assert tuning is not None
            Bf16GemmBuilder(module, form, tuning.params.tile)
            native = compile_ir(str(module), entry=BF16_FUNCTION)
            set_blocking(native, tuning.params)  # (of the float32 GEMM inside)
            _bf16[form] = native
        llvm.add_symbol(BF16_SYMBOL, native.engine.get_function_address(BF16_FUNCTION))
        llvm.add_symbol(FUSED_SYMBOL, native.engine.get_function_address(FUSED_FUNCTION))
        if form == "float32" and _bf16_form != form:  # one line, when the form changes to it
            warnings.warn(
                "matmul_precision='bf16': no usable AMX here (or NNCOMPILE_AMX=0) and no "
                "AVX512-BF16 faster than float32 (NNCOMPILE_AVX512BF16), so bf16 products "
                "are computed in float32 on bf16-rounded operands: the same numbers, no "
                "speed-up",
                RuntimeWarning,
                stacklevel=2,
            )
        _bf16_form = form
        return native


def bf16_form() -> str | None:
    """How the bf16 GEMM that programs compiled now link against computes (amx.bf16_form:
    "amx", "avx512bf16" or "float32"); None before the first bf16 program of this
    process."""
    return _bf16_form
