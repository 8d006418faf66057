"""Running the generated CUDA C on the CPU, to test the CUDA backend where there is no GPU.

``NNCOMPILE_CUDA_EMULATOR=1`` makes ``backend="cuda"`` compile the translation unit with
g++ (after a header that defines the CUDA built-ins, emulator_header.py) instead of nvcc,
and run it through ``EmulatedDriver``, which has the driver's interface over host memory.
The executable, its memory plan, launches, status word, donation and DeviceArrays are the
same code as on a GPU; only the driver underneath differs. Each CUDA thread is a fiber, so
block-wide barriers, shared memory and warp shuffles behave as on the device (one block at
a time, deterministic), and a kernel whose threads wait at different barriers is reported
instead of hanging.

It checks the generated code's semantics, not its speed: launches take milliseconds.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence

import numpy as np

from ... import config
from ...ir.errors import CompileError, ExecutionError
from .emit import Launch
from .emulator_header import EMULATOR_HEADER
from .toolchain import cached, run_compiler

ENV = config.CUDA_EMULATOR.name
BARRIER_FREE = ("grid-stride", "single")  # launch kinds whose threads never synchronize


def emulating() -> bool:
    return config.get_bool(config.CUDA_EMULATOR)


def emulator_source(source: str, launches: Sequence[Launch]) -> str:
    """The header, the CUDA C, and one C entry point per launch that unpacks the driver's
    kernelParams array (pointers to each argument's device pointer) and runs the launch."""
    entries = []
    for x in dict((x.function, x) for x in launches).values():
        args = [f"*({t}**)p[{i}]" for i, t in enumerate(x.arg_types)]
        if x.batch_size:  # a dynamic-batch program's n, after the buffers
            args.append(f"*(int64_t*)p[{len(x.arg_types)}]")
        args = ", ".join(args)
        barriers = "false" if x.kind in BARRIER_FREE else "true"
        entries.append(
            f'extern "C" int nc_launch_{x.function}(const unsigned* grid, const unsigned* block,'
            " void** params) {\n"
            f"  return nc_emu::launch(grid, block, [](void** p) {{ {x.function}({args}); }},"
            f" params, {barriers});\n}}"
        )
    return "\n".join([EMULATOR_HEADER, source, *entries]) + "\n"


@functools.cache
def _compiler_version(cxx: str) -> str:
    return subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout


def build_library(source: str, launches: Sequence[Launch]) -> bytes:
    """The emulated program as a shared library (bytes), from the disk cache or g++."""
    cxx = shutil.which(config.get_str(config.CXX))
    if cxx is None:
        raise CompileError(f"{ENV}=1 needs a C++ compiler (g++ or $CXX) to build the emulation")
    text = emulator_source(source, launches)
    key = hashlib.sha256((text + _compiler_version(cxx)).encode()).hexdigest()
    flags = ["-std=c++17", "-O1", "-fno-strict-aliasing", "-U_FORTIFY_SOURCE", "-fPIC"]
    flags += ["-shared", "-w"]
    return cached(
        f"cuda-emulated-{key}.so",
        lambda: run_compiler(
            text,
            "program.cpp",
            lambda src, out: [cxx, *flags, "-o", out, src],
            "the CUDA emulation did not compile",
        ),
    )


class EmulatedDriver:
    """Driver's interface (driver.py) over host memory. Device pointers are host addresses
    of buffers this object owns; every copy is checked to stay inside one of them."""

    ALIGN = 256  # cuMemAlloc's alignment

    def __init__(self) -> None:
        self.buffers: dict[int, tuple[np.ndarray, int]] = {}  # pointer -> (memory, size)
        self.libraries: list[ctypes.CDLL] = []
        self.lock = threading.Lock()  # the emulator's scheduler state is global

    def make_current(self) -> None:
        pass

    # ---- memory ------------------------------------------------------------------------
    def alloc(self, nbytes: int) -> int:
        size = max(int(nbytes), 1)
        raw = np.zeros(size + self.ALIGN, np.uint8)
        pointer = -raw.ctypes.data % self.ALIGN + raw.ctypes.data
        self.buffers[pointer] = (raw, size)
        return pointer

    def free(self, pointer: int) -> None:
        self.buffers.pop(pointer, None)

    def _check(self, pointer: int, nbytes: int, what: str) -> None:
        for start, (_, size) in self.buffers.items():
            if start <= pointer and pointer + nbytes <= start + size:
                return
        raise ExecutionError(f"emulated {what}: {nbytes} bytes at {pointer:#x} are not allocated")

    def to_device(self, pointer: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        self._check(pointer, array.nbytes, "copy to the device")
        ctypes.memmove(pointer, array.ctypes.data, array.nbytes)

    def to_host(self, array: np.ndarray, pointer: int) -> None:
        if not array.flags.c_contiguous:
            raise ExecutionError("a device-to-host copy needs a C-contiguous array")
        self._check(pointer, array.nbytes, "copy to the host")
        ctypes.memmove(array.ctypes.data, pointer, array.nbytes)

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        self._check(dst, nbytes, "device copy")
        self._check(src, nbytes, "device copy")
        ctypes.memmove(dst, src, nbytes)

    def zero(self, pointer: int, nbytes: int) -> None:
        self._check(pointer, nbytes, "memset")
        ctypes.memset(pointer, 0, nbytes)

    # ---- code --------------------------------------------------------------------------
    def load_module(self, library: bytes) -> ctypes.CDLL:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "program.so")
            with open(path, "wb") as f:
                f.write(library)
            module = ctypes.CDLL(path)  # mapped: the file can go
        self.libraries.append(module)
        return module

    def function(self, module: ctypes.CDLL, name: str):
        try:
            fn = getattr(module, f"nc_launch_{name}")
        except AttributeError:
            raise ExecutionError(f"emulated cuModuleGetFunction({name}): no such kernel") from None
        fn.argtypes = [ctypes.POINTER(ctypes.c_uint)] * 2 + [ctypes.c_void_p]
        fn.restype = ctypes.c_int
        return fn

    def launch(self, fn, grid: Sequence[int], block: Sequence[int], params, name: str) -> None:
        with self.lock:
            code = fn((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), params)
        if code == 1:
            raise ExecutionError(
                f"emulated kernel {name} deadlocked: its threads wait at different barriers"
            )
        if code == 3:
            raise ExecutionError(
                f"emulated kernel {name} reached a barrier in a launch generated without any"
            )
        if code:
            raise ExecutionError(f"emulated cuLaunchKernel({name}): bad block size {block}")

    def synchronize(self) -> None:
        pass


@functools.cache
def emulated_driver() -> EmulatedDriver:
    return EmulatedDriver()
