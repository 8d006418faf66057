"""The NumPy backend behind nncompile.backend's protocol: it runs the optimized graph on
the reference interpreter, so there is no program to emit and nothing to build."""

from __future__ import annotations

from ...backend import EmitOptions, Emitted
from ...ir.errors import CompileError


class NumpyBackend:
    name = "numpy"
    device = None  # no lowering: the graph itself is run
    source_file = ""
    per_kernel = False
    device_outputs = False

    def emit(self, program, options: EmitOptions) -> Emitted:
        return Emitted("")

    def build(self, lowered, device_outputs: bool = False):
        raise CompileError("backend 'numpy' produces no native code (it interprets the graph)")

    def dump_files(self, lowered) -> dict[str, str]:
        return {}  # no generated code: the IR stages are all there is

    def timing_note(self) -> str:
        return ""


BACKEND = NumpyBackend()
