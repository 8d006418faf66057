"""A compiled CUDA program, callable like the LLVM one, with its memory on the device.

The executable owns one device buffer per input, output and constant, the arena (the same
memory plan as the CPU) and the status word. A call copies NumPy inputs to the device,
launches every kernel in order on the default stream, checks the status word and copies
the outputs back. ``DeviceArray`` inputs are used where they are, without copies, and
with ``device_outputs`` the results stay on the device: a training step whose parameters
and optimizer state are donated then updates them in place on the device, and only the
batch goes across each step.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...contiguous_copy import c_contiguous
from ...ir.errors import DTypeError, ExecutionError, ShapeError
from ...ir.symbolic import BatchBinding, concrete, evaluate
from ...lowering.program import Program
from .driver import driver, pointer_args
from .emit import WORKSPACE, Launch


class DeviceArray:
    """An array in device memory. Arrays a call returns with ``device_outputs`` live in
    the executable's output buffers: the next call overwrites them unless they were
    donated back as inputs (then they are updated in place)."""

    __slots__ = ("device_pointer", "shape", "dtype", "_owner")

    def __init__(self, pointer: int, shape: tuple[int, ...], dtype: Any, owner: object = None):
        self.device_pointer = pointer
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self._owner = owner  # keeps the memory alive

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numpy(self) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        driver().to_host(out, self.device_pointer)
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    @staticmethod
    def from_numpy(array: np.ndarray) -> DeviceArray:
        """A new device copy of ``array`` (freed when the DeviceArray is collected)."""
        array = c_contiguous(np.asarray(array))
        memory = _DeviceMemory(array.nbytes)
        driver().to_device(memory.pointer, array)
        return DeviceArray(memory.pointer, array.shape, array.dtype, memory)

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype})"


class _DeviceMemory:
    def __init__(self, nbytes: int):
        self.nbytes = max(int(nbytes), 1)
        self.pointer = driver().alloc(self.nbytes)

    def holds(self, pointer: int, nbytes: int) -> bool:
        return self.pointer <= pointer and pointer + nbytes <= self.pointer + self.nbytes

    def __del__(self) -> None:
        try:
            driver().free(self.pointer)
        except Exception:  # interpreter shutdown: the context goes with the process
            pass


def _allocated_by_us(value: DeviceArray) -> bool:
    """The array's bytes lie inside device memory nncompile allocated (so a call can never
    read or write outside it)."""
    owner, start, size = value._owner, value.device_pointer, value.nbytes
    if isinstance(owner, _DeviceMemory):
        return owner.holds(start, size)
    if isinstance(owner, CUDAExecutable):
        return any(m.holds(start, size) for m in owner.memory.values())
    return False


class CUDAExecutable:
    def __init__(
        self,
        program: Program,
        launches: list[Launch],
        cubin: bytes,
        device_outputs: bool = False,
    ):
        cu = driver()
        self.program = program
        self.launches = launches
        self.device_outputs = device_outputs  # results stay on the device (DeviceArrays)
        self.module = cu.load_module(cubin)
        self._functions = [cu.function(self.module, x.function) for x in launches]
        self._arguments_key: tuple | None = None
        self._arguments_cache: list[tuple] = []
        self.memory: dict[str, _DeviceMemory] = {}
        # A dynamic-batch program's memory holds the largest batch size n seen so far;
        # ``n`` is this call's.
        self.dynamic, self.n, self.capacity = program.dynamic, 1, 1
        self._binding = BatchBinding(
            [v.shape for v in program.graph.inputs], [v.shape for v in program.graph.outputs]
        )
        self._allocate(1)
        for name, buf in program.buffers.items():
            if buf.kind in ("constant", "status"):
                self.memory[name] = _DeviceMemory(buf.nbytes)
        for name, array in program.constants.items():
            cu.to_device(self.memory[name].pointer, np.ascontiguousarray(array))
        graph = program.graph
        self._want = [(v.shape, v.dtype.np) for v in graph.inputs]
        self._donated_from = {o: i for o, i in program.donations.items()}

    def _allocate(self, n: int) -> None:
        """Inputs, outputs, the arena and the split-K workspace for batch size ``n``
        (their sizes depend on it in a dynamic-batch program; otherwise it is 1)."""
        for name, buf in self.program.buffers.items():
            if buf.kind in ("input", "output"):
                self.memory[name] = _DeviceMemory(evaluate(buf.nbytes, n))
        self.arena = _DeviceMemory(max(evaluate(self.program.arena_bytes, n), 64))
        # split-K GEMMs' partial tiles; launches run in order, so they share one
        self.workspace = _DeviceMemory(
            max([64] + [evaluate(x.workspace, n) for x in self.launches])
        )
        self.capacity = n
        self._arguments_key = None
        self._output_pointers = {
            self.memory[name].pointer
            for o, name in enumerate(self.program.outputs)
            if o not in self.program.donations
        }

    def _bind_batch(self, arrays: Sequence[object]) -> None:
        """A dynamic-batch program: this call's n (memory grown to it when it is new)."""
        n, shapes, _ = self._binding.bind([np.shape(a) for a in arrays])
        if n > self.capacity:
            self._allocate(n)
        self.n = n
        self._want = [(s, d) for s, (_, d) in zip(shapes, self._want, strict=True)]

    # ---- arguments ---------------------------------------------------------------------
    def _input(self, i: int, value: object) -> tuple[int, np.ndarray | None]:
        """(device pointer, host array or None) for input i, checked like the CPU does."""
        shape, dtype = self._want[i]
        name = self.program.graph.inputs[i].name
        if isinstance(value, DeviceArray):
            if not _allocated_by_us(value):
                raise ExecutionError(
                    f"input {i} (%{name}): a DeviceArray must come from DeviceArray.from_numpy "
                    "or a compiled function's device outputs (its memory is not known)"
                )
            if value.dtype != dtype or value.shape != shape:
                raise ShapeError(
                    f"input {i} (%{name}) expects {dtype}{list(shape)}, got a device array "
                    f"{value.dtype}{list(value.shape)}"
                )
            if value.device_pointer in self._output_pointers or value.device_pointer % 16:
                # one of our own outputs (the kernels may overwrite it while reading it), or
                # not 16-byte aligned for the kernels' vector loads: use a copy
                own = self.memory[self.program.inputs[i]].pointer
                driver().copy(own, value.device_pointer, value.nbytes)
                return own, None
            return value.device_pointer, None
        array = np.asarray(value)
        if array.dtype != dtype:
            if isinstance(value, (bool, int, float)) and array.shape == shape == ():
                array = array.astype(dtype)
            else:
                raise DTypeError(f"input {i} (%{name}) expects {dtype}, got {array.dtype}")
        if array.shape != shape:
            raise ShapeError(f"input {i} (%{name}) expects shape {shape}, got {array.shape}")
        pointer = self.memory[self.program.inputs[i]].pointer
        driver().to_device(pointer, array)
        return pointer, array

    def _pointer(self, name: str, inputs: list[int], outputs: list[int]) -> int:
        if name == WORKSPACE:
            return self.workspace.pointer
        buf = self.program.buffers[name]
        if buf.kind == "input":
            return inputs[buf.position]
        if buf.kind == "output":
            return outputs[buf.position]
        if buf.kind == "arena":
            return self.arena.pointer + evaluate(buf.offset, self.n)
        return self.memory[name].pointer  # constant or status

    # ---- a call ------------------------------------------------------------------------
    def __call__(self, arrays: Sequence[object]) -> list[Any]:
        def run(launch_all, read) -> None:
            launch_all(range(len(self.launches)))

        return self._execute(arrays, run)

    def kernel_entries(self) -> list[list[int]]:
        """Each kernel's launches (their positions), in program order: a kernel's launches
        are named ``<kernel name>_<n>`` (``_sum`` after a split-K GEMM's), see program.py."""
        entries: list[list[int]] = [[] for _ in self.program.kernels]
        k = 0
        for i, launch in enumerate(self.launches):
            while k < len(entries) and not _launches_kernel(launch, self.program.kernels[k].name):
                k += 1
            if k == len(entries):
                raise ExecutionError(f"launch {launch.function} matches no kernel, in order")
            entries[k].append(i)
        return entries

    def call_checked(
        self,
        arrays: Sequence[object],
        entries: list[list[int]],
        on_kernel: Callable[[int, Callable[[str], np.ndarray]], None],
    ) -> list[Any]:
        """Like calling, but calls ``on_kernel(i, read)`` after kernel ``i``'s launches;
        ``read(buffer)`` copies the buffer to the host as it is at that moment."""

        def run(launch_all, read) -> None:
            for i, launches in enumerate(entries):
                launch_all(launches)
                driver().synchronize()
                on_kernel(i, read)

        return self._execute(arrays, run)

    def call_timed(
        self, arrays: Sequence[object], entries: list[list[int]]
    ) -> tuple[list[Any], list[float]]:
        """Like calling, but synchronizes after each kernel; returns the seconds of each."""
        seconds: list[float] = []

        def run(launch_all, read) -> None:
            for launches in entries:
                start = time.perf_counter()
                launch_all(launches)
                driver().synchronize()
                seconds.append(time.perf_counter() - start)

        return self._execute(arrays, run), seconds

    def _execute(self, arrays: Sequence[object], run) -> list[Any]:
        program, cu = self.program, driver()
        if len(arrays) != len(self._want):
            raise ExecutionError(f"expected {len(self._want)} inputs, got {len(arrays)}")
        cu.make_current()
        if self.dynamic:
            self._bind_batch(arrays)
        bound = [self._input(i, a) for i, a in enumerate(arrays)]
        inputs = [p for p, _ in bound]
        outputs = [
            inputs[self._donated_from[o]] if o in self._donated_from else self.memory[n].pointer
            for o, n in enumerate(program.outputs)
        ]
        status = self.memory["status"].pointer
        cu.zero(status, 8)
        arguments = self._arguments(inputs, outputs)

        def launch_all(which) -> None:
            for i in which:
                launch = self.launches[i]
                grid = launch.grid_at(self.n)
                cu.launch(self._functions[i], grid, launch.block, arguments[i][1], launch.function)

        def read(name: str) -> np.ndarray:
            buf = program.buffers[name]
            host = np.empty(evaluate(buf.size, self.n), buf.dtype.np)
            cu.to_host(host, self._pointer(name, inputs, outputs))
            return host

        run(launch_all, read)
        for o, src in program.output_copies:
            nbytes = evaluate(program.buffers[program.outputs[o]].nbytes, self.n)
            cu.copy(outputs[o], self._pointer(src, inputs, outputs), nbytes)
        cu.synchronize()
        code = np.zeros(1, np.int64)
        cu.to_host(code, status)
        if code[0]:
            message = program.status_messages.get(int(code[0]), f"error code {int(code[0])}")
            raise ExecutionError(f"{message} (detected in compiled CUDA code)")
        return [self._result(o, outputs[o], bound, arrays) for o in range(len(program.outputs))]

    def _arguments(self, inputs: list[int], outputs: list[int]) -> list[tuple]:
        """Each launch's kernelParams for these buffers, built once and reused while the
        buffers stay where they are (a training loop's steps): the calls then cost the
        launches, not the Python that builds their arguments."""
        key = (*inputs, *outputs, self.n)
        if key != self._arguments_key:
            self._arguments_cache = [
                pointer_args(
                    [self._pointer(p, inputs, outputs) for p in launch.params]
                    + [self.n] * launch.batch_size  # (an int64 value, in a 64-bit slot)
                )
                for launch in self.launches
            ]
            self._arguments_key = key
        return self._arguments_cache

    def _result(self, o: int, pointer: int, bound: list, given: Sequence[object]) -> Any:
        value = self.program.graph.outputs[o]
        shape, dtype = concrete(value.shape, self.n), value.dtype.np
        donor = self._donated_from.get(o)
        if self.device_outputs:
            if donor is not None and isinstance(given[donor], DeviceArray):
                if given[donor].device_pointer == pointer:
                    return given[donor]  # updated in place on the device
            return DeviceArray(pointer, shape, dtype, self)
        if donor is not None and bound[donor][1] is not None and bound[donor][1].flags.writeable:
            host = bound[donor][1]  # donated NumPy input: written in place, as on the CPU
        else:
            host = np.empty(shape, dtype)
        driver().to_host(host, pointer)
        return host


def _launches_kernel(launch: Launch, kernel_name: str) -> bool:
    return re.fullmatch(re.escape(kernel_name) + r"_\d+(_sum)?", launch.function) is not None
