"""The CUDA backend: kernel IR -> CUDA C (emit.py, program.py). Code generation needs no
GPU; running the code (device memory, module loading, launches) is not built yet."""

from __future__ import annotations

from .emit import CudaSource, Launch, grid_stride_blocks
from .program import emit_cuda

__all__ = ["CudaSource", "Launch", "emit_cuda", "emit_program", "grid_stride_blocks"]


def emit_program(program) -> str:
    """The CUDA C translation unit for a lowered Program."""
    return emit_cuda(program).source


def compile_program(lowered):
    raise NotImplementedError(
        "the CUDA backend generates CUDA C (nc.lower(f, *args, backend='cuda').source) but "
        "cannot run it yet: device memory, module loading and kernel launches are not built "
        "(issue #6); use backend='llvm' to run on the CPU"
    )
