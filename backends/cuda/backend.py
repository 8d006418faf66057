"""The CUDA backend behind nncompile.backend's protocol: kernel IR -> CUDA C, compiled
with NVRTC/nvcc and run through the driver (or g++ and the CPU emulation)."""

from __future__ import annotations

from ...backend import EmitOptions, Emitted
from . import compile_program
from .executable import CUDAExecutable
from .program import emit_cuda


class CUDABackend:
    name = "cuda"
    device = "gpu"
    source_file = "kernels.cu"
    per_kernel = True
    device_outputs = True

    def emit(self, program, options: EmitOptions) -> Emitted:
        emitted = emit_cuda(program)  # once: build reuses its launches
        return Emitted(emitted.source, 1, emitted.launches)

    def build(self, lowered, device_outputs: bool = False) -> CUDAExecutable:
        return compile_program(lowered, device_outputs)

    def dump_files(self, lowered) -> dict[str, str]:
        return {self.source_file: lowered.source}

    def timing_note(self) -> str:
        from .emulator import emulating

        if emulating():
            return "NNCOMPILE_CUDA_EMULATOR=1: emulation times on the CPU, not GPU times"
        return ""


BACKEND = CUDABackend()
