"""The CUDA backend: kernel IR -> CUDA C (emit.py, program.py, with collapse.py,
vectorize.py and reductions.py), compiled with NVRTC or nvcc (toolchain.py) and run
through the driver API (driver.py, executable.py). Code generation and compilation need
no GPU; running needs the NVIDIA driver and a device.

Status: not yet run on a GPU (none was available where it was written). tests/gpu run
on a GPU when there is one and otherwise on the CPU emulation of the generated code
(emulator.py, NNCOMPILE_CUDA_EMULATOR=1); scripts/gpu_check.sh is the check for a GPU."""

from __future__ import annotations

from ...ir.errors import ExecutionError
from .emit import CudaSource, Launch, grid_stride_blocks
from .program import emit_cuda

__all__ = ["CudaSource", "Launch", "emit_cuda", "emit_program", "grid_stride_blocks"]


def emit_program(program) -> str:
    """The CUDA C translation unit for a lowered Program."""
    return emit_cuda(program).source


def compile_program(lowered, device_outputs: bool = False):
    """The program's CUDA C compiled to a cubin and loaded on the device, or an error
    saying what the machine lacks (a CUDA compiler, the driver, a device). Under
    NNCOMPILE_CUDA_EMULATOR=1 it is built with g++ and runs on the CPU (emulator.py).
    ``device_outputs``: calls return DeviceArrays instead of copying results to the host."""
    from .emulator import build_library, emulating
    from .executable import CUDAExecutable
    from .toolchain import compile_cubin, missing_for_running

    launches = lowered.artifacts  # emitted with the source (backend.py): not again here
    if launches is None:
        launches = emit_cuda(lowered.program).launches
    if emulating():
        library = build_library(lowered.source, launches)
        return CUDAExecutable(lowered.program, launches, library, device_outputs)
    cubin = compile_cubin(lowered.source)
    missing = missing_for_running()
    if missing:
        raise ExecutionError(
            f"backend='cuda' cannot run here: {missing}. The CUDA C is generated and compiles "
            "(nc.lower(f, *args, backend='cuda').source); use backend='llvm' on the CPU"
        )
    return CUDAExecutable(lowered.program, launches, cubin, device_outputs)
