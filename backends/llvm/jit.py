"""LLVM IR text -> optimized native code in this process, with an on-disk object cache.

Target: the host CPU with all its features (AVX-512 here). Optimization: the new pass
manager at O2 with loop and SLP vectorization, without loop unrolling and interleaving
(O3, unrolling and interleaving measured no faster on the training steps and made
compiling up to twice as slow).

 Engine: MCJIT, one per compiled program
(MCJIT owns its target machine, so each engine gets a fresh one).

Cache: ``NNCOMPILE_CACHE_DIR`` (default ``~/.cache/nncompile``; ``off`` disables it)
holds object files named by a hash of the unoptimized IR (which encodes the graph and
its input signature), the CPU name and features, and the nncompile and llvmlite
versions. Each file carries a SHA-256 of its payload; a corrupt or truncated entry is
detected, deleted and rebuilt, never loaded.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
from dataclasses import dataclass, field

import llvmlite
import llvmlite.binding as llvm

from ...disk_cache import cache_dir, read_cached, write_cached
from ...ir.errors import CompileError


@functools.cache
def _init_llvm() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


def target_machine() -> llvm.TargetMachine:
    _init_llvm()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(
        cpu=llvm.get_host_cpu_name(),
        features=llvm.get_host_cpu_features().flatten(),
        opt=3,
        codemodel="jitdefault",
    )


def optimize(module: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """The O2 pipeline with vectorization. (llvmlite's pass builder keeps ~80 KB per run
    that it never frees - instrumentation callbacks it allocates in C++; measured, see
    docs/architecture.md. A builder shared between runs would keep callbacks that point
    at freed memory, so each run gets its own. Disk-cache hits run no pipeline.)"""
    pto = llvm.create_pipeline_tuning_options(speed_level=2)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    # Unrolling and interleaving doubled compile time here for no measured speed: the
    # hot loops are vectorized, and GEMM's micro-kernel is unrolled by hand.
    pto.loop_unrolling = False
    pto.loop_interleaving = False
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


def cache_key(ir_text: str) -> str:
    from ... import __version__

    h = hashlib.sha256()
    for part in (
        ir_text,
        llvm.get_host_cpu_name(),
        llvm.get_host_cpu_features().flatten(),
        __version__,
        llvmlite.__version__,
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class NativeCode:
    engine: object
    entry_address: int
    optimized_ir: str = ""
    assembly: str = ""
    from_cache: bool = False
    seconds: dict[str, float] = field(default_factory=dict)


# LLVM calls are serialized by llvmlite one by one, but a compile is a sequence of them on
# one module and target machine: two threads compiling at once take turns whole.
_compile_lock = threading.RLock()


def compile_ir(ir_text: str, entry: str = "nc_entry", keep_text: bool = False) -> NativeCode:
    """Optimize and JIT-compile ``ir_text``; returns the engine and the entry address."""
    with _compile_lock:
        return _compile_ir(ir_text, entry, keep_text)


def _engine(obj: bytes) -> object:
    """An execution engine holding the object code (an empty module in the global context:
    it owns nothing that outlives it)."""
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine


def _compile_ir(ir_text: str, entry: str, keep_text: bool) -> NativeCode:
    _init_llvm()
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    directory = cache_dir()
    path = os.path.join(directory, cache_key(ir_text) + ".o") if directory else None
    payload = read_cached(path) if path and not keep_text else None
    if payload is not None:
        engine = _engine(payload)
        times["load_cached"] = time.perf_counter() - t0
        return NativeCode(
            engine, engine.get_function_address(entry), from_cache=True, seconds=times
        )
    # A context of its own: the types and constants of a program are uniqued in the
    # context that parsed it, and the global one would keep them for the whole process.
    context = llvm.create_context()
    try:
        module = llvm.parse_assembly(ir_text, context=context)
        module.verify()
    except RuntimeError as e:
        raise CompileError(f"generated LLVM IR is invalid (a code generator bug): {e}") from None
    times["parse"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    tm = target_machine()
    optimize(module, tm)
    times["optimize"] = time.perf_counter() - t1
    optimized = str(module) if keep_text else ""
    t2 = time.perf_counter()
    obj = tm.emit_object(module)
    assembly = tm.emit_assembly(module) if keep_text else ""
    times["codegen"] = time.perf_counter() - t2
    module.close()
    context.close()
    engine = _engine(obj)
    if path:
        try:
            write_cached(path, obj)
        except OSError:
            pass  # a read-only cache folder only costs speed
    times["total"] = time.perf_counter() - t0
    return NativeCode(
        engine, engine.get_function_address(entry), optimized, assembly, seconds=times
    )
