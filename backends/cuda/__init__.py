"""The CUDA backend: kernel IR -> CUDA C (emit.py, program.py). Code generation needs no
GPU; running the code (device memory, module loading, launches) is not built yet."""

from __future__ import annotations

from ...ir.errors import ExecutionError
from .emit import CudaSource, Launch, grid_stride_blocks
from .program import emit_cuda

__all__ = ["CudaSource", "Launch", "emit_cuda", "emit_program", "grid_stride_blocks"]


def emit_program(program) -> str:
    """The CUDA C translation unit for a lowered Program."""
    return emit_cuda(program).source


def compile_program(lowered):
    """Compile the program's CUDA C to a cubin (checking it), then say what is missing:
    the machine's driver or device, or, where a GPU is there, the runtime itself."""
    from .toolchain import compile_cubin, missing_for_running

    compile_cubin(lowered.source)
    missing = missing_for_running()
    if missing:
        raise ExecutionError(
            f"backend='cuda' cannot run here: {missing}. The CUDA C is generated and compiles "
            "(nc.lower(f, *args, backend='cuda').source); use backend='llvm' on the CPU"
        )
    raise NotImplementedError(
        "the CUDA backend generates and compiles CUDA C but cannot run it yet: device "
        "memory, module loading and kernel launches are not built (issue #6); use "
        "backend='llvm' to run on the CPU"
    )
