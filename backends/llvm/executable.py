"""A compiled program, callable with NumPy arrays: one native call per invocation.

Before native code runs, every argument is checked: dtype, shape, C-contiguity and
alignment; a violation raises DTypeError / ShapeError naming the input. Outputs are
fresh arrays (or, with donation, the donated input arrays themselves). The arena and the
argument pointer table are allocated once and reused across calls.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from ...ir.errors import DTypeError, ExecutionError, ShapeError
from ...lowering.program import Program
from .jit import NativeCode
from .module import argument_slots
from .runtime import runtime

_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # releases the GIL during the call


def aligned_empty(nbytes: int, align: int = 64) -> np.ndarray:
    raw = np.empty(nbytes + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start : start + nbytes]


class LLVMExecutable:
    def __init__(self, program: Program, native: NativeCode, threads: int = 1):
        self.program = program
        self.native = native  # keeps the engine (and so the code) alive
        self._entry = _ENTRY(native.entry_address)
        slots = argument_slots(program)
        self._slots = slots
        self._args = (ctypes.c_void_p * len(slots))()
        self._arena = aligned_empty(max(program.arena_bytes, 64))
        self._status = np.zeros(1, np.int64)
        self._constants = {n: np.ascontiguousarray(a) for n, a in program.constants.items()}
        for name, array in self._constants.items():
            self._args[slots[name]] = array.ctypes.data
        self._args[slots["__arena__"]] = self._arena.ctypes.data
        self._args[slots["status"]] = self._status.ctypes.data
        self._runtime = runtime(threads)  # the code it calls stays alive with it
        self._inputs = [program.buffers[n] for n in program.inputs]
        self._want_dtype = [b.dtype.np for b in self._inputs]
        self._io_slots = [slots[n] for n in program.inputs + program.outputs]
        self._bound: list[object] = [None] * len(self._io_slots)
        self._args_address = ctypes.addressof(self._args)

        self._want_shape = [v.shape for v in program.graph.inputs]

        self._outputs = [program.buffers[n] for n in program.outputs]
        self._lock = threading.Lock()  # one arena: calls must not overlap
        self._recycled: list[np.ndarray | None] = [None] * len(self._outputs)

    def check_input(self, i: int, value: object) -> np.ndarray:
        # Fast path: the common case costs a few attribute reads (`aligned` covers
        # misaligned views; `ctypes.data` is slow to ask for).
        if (
            type(value) is np.ndarray
            and value.dtype == self._want_dtype[i]
            and value.shape == self._want_shape[i]
            and value.flags.c_contiguous
            and value.flags.aligned
        ):
            return value
        buf = self._inputs[i]
        want_dtype, want_shape = buf.dtype.np, self.program.graph.inputs[i].shape
        name = self.program.graph.inputs[i].name
        if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
            value = np.asarray(value, dtype=want_dtype)  # a Python number for a scalar input
        if not isinstance(value, np.ndarray):
            value = np.asarray(value)
        if value.dtype != want_dtype:
            raise DTypeError(f"input {i} (%{name}) must be {want_dtype}, got {value.dtype}")
        if value.shape != want_shape:
            raise ShapeError(f"input {i} (%{name}) must have shape {want_shape}, got {value.shape}")
        if not value.flags.c_contiguous:
            raise ShapeError(
                f"input {i} (%{name}) must be C-contiguous "
                "(np.ascontiguousarray makes a contiguous copy)"
            )
        if value.ctypes.data % value.dtype.itemsize:
            raise ShapeError(f"input {i} (%{name}) is misaligned for {value.dtype}")
        return value

    def __call__(self, arrays: Sequence[object]) -> list[np.ndarray]:
        """Run on flat input arrays. Outputs are new arrays, except donated ones, which are
        written into (and returned as) the input arrays they took over."""
        return self._execute(arrays, self._run_entry)

    def _run_entry(self) -> None:
        self._entry(self._args_address)

    def kernel_entries(self) -> list[Callable[[int], None]]:
        """One entry per kernel (``nc_kernel_<i>``), for modules built with
        ``per_kernel_entries``."""
        engine = self.native.engine
        entries = []
        for i in range(len(self.program.kernels)):
            address = engine.get_function_address(f"nc_kernel_{i}")
            if not address:
                raise ExecutionError("this module was built without per-kernel entry points")
            entries.append(_ENTRY(address))
        return entries

    def call_timed(
        self, arrays: Sequence[object], entries: list[Callable[[int], None]]
    ) -> tuple[list[np.ndarray], list[float]]:
        """Like calling, but runs the kernels one entry at a time, in program order (so
        each sees the data it would in a normal call); returns the seconds of each."""
        seconds: list[float] = []

        def run() -> None:
            for entry in entries:
                start = time.perf_counter()
                entry(self._args_address)
                seconds.append(time.perf_counter() - start)

        return self._execute(arrays, run), seconds

    def call_checked(
        self,
        arrays: Sequence[object],
        entries: list[Callable[[int], None]],
        on_kernel: Callable[[int, Callable[[str], np.ndarray]], None],
    ) -> list[np.ndarray]:
        """Like calling, but runs the kernels one entry at a time and calls
        ``on_kernel(i, read)`` after kernel ``i``; ``read(buffer)`` is the buffer's memory
        at that moment (arena buffers are reused later, so read them then)."""

        def run() -> None:
            inputs, outputs = self._current
            for i, entry in enumerate(entries):
                entry(self._args_address)
                on_kernel(i, lambda name: self._read(name, inputs, outputs))

        return self._execute(arrays, run)

    def _execute(self, arrays: Sequence[object], run: Callable[[], None]) -> list[np.ndarray]:
        if len(arrays) != len(self._inputs):
            raise ExecutionError(f"expected {len(self._inputs)} inputs, got {len(arrays)}")
        inputs = [self.check_input(i, a) for i, a in enumerate(arrays)]
        outputs = []
        donations = self.program.donations
        for i, buf in enumerate(self._outputs):
            if i in donations:
                given = inputs[donations[i]]
                if not given.flags.writeable:
                    name = self.program.graph.inputs[donations[i]].name
                    raise ExecutionError(
                        f"input {donations[i]} (%{name}) is donated but read-only; pass a "
                        "writable array or compile without donate_argnums"
                    )
                outputs.append(given)
            else:
                outputs.append(self._fresh_output(i, buf))

        with self._lock:
            # A training loop passes the same arrays every step: rebind only what changed
            # (asking an array for its address is the slowest part of a call).
            for slot, a in enumerate(inputs + outputs):
                if self._bound[slot] is not a:
                    self._args[self._io_slots[slot]] = a.ctypes.data
                    self._bound[slot] = a
            self._status[0] = 0
            self._current = (inputs, outputs)
            run()

            code = int(self._status[0])
            if code:
                message = self.program.status_messages.get(code, f"error code {code}")
                if code < 0:
                    kernel = self.program.kernels[-code - 1].name
                    message = f"out-of-bounds access in kernel {kernel} (a compiler bug)"
                raise ExecutionError(f"{message} (detected in compiled code)")
            for i, src in self.program.output_copies:
                outputs[i][...] = self._read(src, inputs, outputs).reshape(outputs[i].shape)
        self._recycled = [None if i in donations else o for i, o in enumerate(outputs)]
        return outputs

    def _fresh_output(self, i: int, buf) -> np.ndarray:
        """A new output array, or last call's if the caller has dropped every reference to
        it (fresh memory costs a page fault per 4 KiB on first touch)."""
        old = self._recycled[i]
        # References we hold: _recycled, _bound (the argument table's last binding), this
        # local, and getrefcount's argument. Any more and the caller still has it.
        if old is not None and sys.getrefcount(old) <= 4 and old.base is None:
            return old

        return np.empty(self.program.graph.outputs[i].shape, buf.dtype.np)

    def _read(self, name: str, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> np.ndarray:
        buf = self.program.buffers[name]
        if buf.kind == "input":
            return inputs[buf.position]
        if buf.kind == "output":
            return outputs[buf.position]
        if buf.kind == "constant":
            return self._constants[name]
        if buf.kind == "arena":
            raw = self._arena[buf.offset : buf.offset + buf.nbytes]
            return raw.view(buf.dtype.np)
        raise ExecutionError(f"cannot read buffer {name} ({buf.kind})")
