"""The LLVM backend behind nncompile.backend's protocol: kernel IR -> LLVM IR -> native
code JIT-compiled in this process."""

from __future__ import annotations

import time

from ...backend import EmitOptions, Emitted
from ...dump_files import dump_root, write_dump
from .executable import LLVMExecutable


class LLVMBackend:
    name = "llvm"
    device = "cpu"
    source_file = "llvm.ll"
    per_kernel = True
    device_outputs = False

    def emit(self, program, options: EmitOptions) -> Emitted:
        from .module import build_module
        from .parallel import default_threads

        threads = options.threads or default_threads()
        source = build_module(program, threads, per_kernel_entries=options.kernel_entries)
        return Emitted(source, threads)

    def build(self, lowered, device_outputs: bool = False) -> LLVMExecutable:
        # (device_outputs: results are host arrays already; nc.compile refuses True here)
        from .gemm_bf16 import SYMBOL as BF16_GEMM
        from .jit import compile_ir
        from .runtime import bf16_runtime, runtime

        runtime()  # the GEMMs the program links against
        if BF16_GEMM in lowered.source:  # matmul_precision="bf16"
            bf16_runtime()
        start = time.perf_counter()
        native = compile_ir(lowered.source, keep_text=dump_root() is not None)
        lowered.timings["llvm"] = time.perf_counter() - start
        name = lowered.graph.name
        if native.optimized_ir:
            write_dump(name, "llvm_optimized.ll", native.optimized_ir)
        if native.assembly:
            write_dump(name, "assembly.s", native.assembly)
        return LLVMExecutable(lowered.program, native, lowered.threads)

    def dump_files(self, lowered) -> dict[str, str]:
        from .jit import compile_ir

        native = compile_ir(lowered.source, keep_text=True)  # the optimized IR and assembly
        return {
            "llvm.ll": lowered.source,
            "llvm_optimized.ll": native.optimized_ir or "",
            "assembly.s": native.assembly or "",
        }

    def timing_note(self) -> str:
        return ""


BACKEND = LLVMBackend()
