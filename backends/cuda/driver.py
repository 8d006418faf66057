"""The CUDA driver API through ctypes (libcuda.so.1): only what running a compiled
program needs. No CUDA Python package is required.

Every call's result is checked; a failure raises ExecutionError naming the call and the
driver's error name and text. Device pointers are plain ints (CUdeviceptr).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Sequence

import numpy as np

from ...ir.errors import ExecutionError

_u64 = ctypes.c_uint64
_uint = ctypes.c_uint
_size = ctypes.c_size_t
_ptr = ctypes.c_void_p


class Driver:
    def __init__(self) -> None:
        name = ctypes.util.find_library("cuda") or "libcuda.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as e:
            raise ExecutionError(f"cannot load the NVIDIA driver ({name}): {e}") from None
        lib = self.lib
        for fn, args in {
            "cuInit": [_uint],
            "cuDeviceGet": [ctypes.POINTER(ctypes.c_int), ctypes.c_int],
            "cuDevicePrimaryCtxRetain": [ctypes.POINTER(_ptr), ctypes.c_int],
            "cuCtxSetCurrent": [_ptr],
            "cuCtxSynchronize": [],
            "cuMemAlloc_v2": [ctypes.POINTER(_u64), _size],
            "cuMemFree_v2": [_u64],
            "cuMemcpyHtoD_v2": [_u64, _ptr, _size],
            "cuMemcpyDtoH_v2": [_ptr, _u64, _size],
            "cuMemcpyDtoD_v2": [_u64, _u64, _size],
            "cuMemsetD8_v2": [_u64, ctypes.c_ubyte, _size],
            "cuModuleLoadData": [ctypes.POINTER(_ptr), ctypes.c_char_p],
            "cuModuleGetFunction": [ctypes.POINTER(_ptr), _ptr, ctypes.c_char_p],
            "cuLaunchKernel": [
                _ptr,
                _uint,
                _uint,
                _uint,
                _uint,
                _uint,
                _uint,
                _uint,
                _ptr,
                ctypes.POINTER(_ptr),
                ctypes.POINTER(_ptr),
            ],
            "cuGetErrorName": [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
            "cuGetErrorString": [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
        }.items():
            getattr(lib, fn).argtypes = args
            getattr(lib, fn).restype = ctypes.c_int
        self.check(lib.cuInit(0), "cuInit")
        device = ctypes.c_int()
        self.check(lib.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
        self.context = _ptr()
        self.check(
            lib.cuDevicePrimaryCtxRetain(ctypes.byref(self.context), device),
            "cuDevicePrimaryCtxRetain",
        )
        self.make_current()

    def make_current(self) -> None:
        self.check(self.lib.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")

    def check(self, code: int, what: str) -> None:
        if code == 0:
            return
        name, text = ctypes.c_char_p(), ctypes.c_char_p()
        self.lib.cuGetErrorName(code, ctypes.byref(name))
        self.lib.cuGetErrorString(code, ctypes.byref(text))
        decode = lambda s: s.value.decode() if s.value else "?"  # noqa: E731
        raise ExecutionError(f"CUDA driver: {what} failed: {decode(name)} ({decode(text)})")

    # ---- memory ------------------------------------------------------------------------
    def alloc(self, nbytes: int) -> int:
        ptr = _u64()
        self.check(self.lib.cuMemAlloc_v2(ctypes.byref(ptr), max(int(nbytes), 1)), "cuMemAlloc")
        return int(ptr.value)

    def free(self, ptr: int) -> None:
        self.check(self.lib.cuMemFree_v2(ptr), "cuMemFree")

    def to_device(self, ptr: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        if array.nbytes:
            self.check(
                self.lib.cuMemcpyHtoD_v2(ptr, array.ctypes.data, array.nbytes), "cuMemcpyHtoD"
            )

    def to_host(self, array: np.ndarray, ptr: int) -> None:
        if not array.flags.c_contiguous:
            raise ExecutionError("a device-to-host copy needs a C-contiguous array")
        if array.nbytes:
            self.check(
                self.lib.cuMemcpyDtoH_v2(array.ctypes.data, ptr, array.nbytes), "cuMemcpyDtoH"
            )

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        if nbytes:
            self.check(self.lib.cuMemcpyDtoD_v2(dst, src, nbytes), "cuMemcpyDtoD")

    def zero(self, ptr: int, nbytes: int) -> None:
        if nbytes:
            self.check(self.lib.cuMemsetD8_v2(ptr, 0, nbytes), "cuMemsetD8")

    # ---- code --------------------------------------------------------------------------
    def load_module(self, cubin: bytes) -> ctypes.c_void_p:
        module = _ptr()
        self._keep = getattr(self, "_keep", []) + [cubin]  # the image must outlive the call
        self.check(self.lib.cuModuleLoadData(ctypes.byref(module), cubin), "cuModuleLoadData")
        return module

    def function(self, module: ctypes.c_void_p, name: str) -> ctypes.c_void_p:
        fn = _ptr()
        self.check(
            self.lib.cuModuleGetFunction(ctypes.byref(fn), module, name.encode()),
            f"cuModuleGetFunction({name})",
        )
        return fn

    def launch(
        self,
        fn: ctypes.c_void_p,
        grid: Sequence[int],
        block: Sequence[int],
        params: ctypes.Array,
        name: str,
    ) -> None:
        """``params``: a (void* * n) array whose entries point at each argument's value."""
        self.check(
            self.lib.cuLaunchKernel(fn, *map(int, grid), *map(int, block), 0, None, params, None),
            f"cuLaunchKernel({name})",
        )

    def synchronize(self) -> None:
        self.check(self.lib.cuCtxSynchronize(), "cuCtxSynchronize")


def driver():
    """The driver in use: the NVIDIA driver, or the CPU emulation under
    NNCOMPILE_CUDA_EMULATOR=1 (emulator.py)."""
    from .emulator import emulated_driver, emulating

    return emulated_driver() if emulating() else _device_driver()


@functools.cache
def _device_driver() -> Driver:
    return Driver()


def pointer_args(ptrs: Sequence[int]) -> tuple[ctypes.Array, ctypes.Array]:
    """The kernelParams array for device-pointer arguments: (values, pointers to them);
    keep both alive until the launch has been issued."""
    values = (_u64 * len(ptrs))(*ptrs)
    base = ctypes.addressof(values)
    pointers = (_ptr * len(ptrs))(*[base + 8 * i for i in range(len(ptrs))])
    return values, pointers
