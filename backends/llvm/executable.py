"""A compiled program, callable with NumPy arrays: one native call per invocation.

Before native code runs, every argument is checked: dtype, shape, C-contiguity and
alignment; a violation raises DTypeError / ShapeError naming the input. Outputs are
fresh arrays (or, with donation, the donated input arrays themselves). The arena and the
argument pointer table are allocated once and reused across calls.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from ...contiguous_copy import c_contiguous
from ...ir.errors import DTypeError, ExecutionError, ShapeError
from ...ir.kernel import Gemm, Loop, walk
from ...ir.symbolic import BatchBinding, evaluate
from ...lowering.program import Program, donated_write_may_precede_error
from .gemm_packed import WORKSPACE_BYTES
from .jit import NativeCode
from .module import argument_slots
from .parallel import CONTEXT_BATCH, CONTEXT_THREADS, CONTEXT_WORKSPACE
from .runtime import runtime
from .threads import ThreadChooser

_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # releases the GIL during the call


def aligned_empty(nbytes: int, align: int = 64) -> np.ndarray:
    raw = np.empty(nbytes + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start : start + nbytes]


def _aligned_copy(array: np.ndarray) -> np.ndarray:
    """A constant (a folded weight) on a 64-byte boundary, as arena buffers are: vector
    loads that straddle cache lines cost two (measured: a GEMM reading a 5408-long weight
    row, 0.29 -> 0.21 ms)."""
    array = np.ascontiguousarray(array)
    out = aligned_empty(array.nbytes).view(array.dtype).reshape(array.shape)
    out[...] = array
    return out


class _CallContext:
    """What one call writes besides its outputs: the argument table, the arena, the status
    word and the GEMM workspace. Concurrent calls each take their own."""

    def __init__(self, executable: LLVMExecutable):
        program, slots = executable.program, executable._slots
        self.args = (ctypes.c_void_p * len(slots))()
        self.address = ctypes.addressof(self.args)
        self.arena_bytes = program.arena_bytes  # (a*n + b bytes in a dynamic-batch program)
        self.capacity = 1  # the largest batch size the arena holds
        self.batch = 1  # this call's
        self.arena = aligned_empty(max(evaluate(self.arena_bytes, self.capacity), 64))
        self.status = np.zeros(1, np.int64)
        self.status_word = ctypes.c_int64.from_buffer(self.status)  # (faster to read)
        # Only programs that call the packed GEMM need its packing buffers (one slice per
        # thread: GEMMs in parallel loops, split k).
        self.workspace = aligned_empty(max(64, WORKSPACE_BYTES * executable.workspaces))
        for name, array in executable._constants.items():
            self.args[slots[name]] = array.ctypes.data
        self.arena_slot = slots["__arena__"]
        self.args[self.arena_slot] = self.arena.ctypes.data
        self.args[slots["status"]] = self.status.ctypes.data
        self.args[CONTEXT_WORKSPACE] = self.workspace.ctypes.data
        self.bound: list[object] = [None] * len(executable._io_slots)
        self.recycled: list[np.ndarray | None] = [None] * len(program.outputs)
        self.current: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])

    def fit(self, n: int) -> None:
        """Make the arena big enough for batch size ``n`` (a dynamic-batch program): it
        grows to the largest batch seen and stays that size."""
        self.args[CONTEXT_BATCH] = self.batch = n
        if n > self.capacity:
            self.arena = aligned_empty(max(evaluate(self.arena_bytes, n), 64))
            self.args[self.arena_slot] = self.arena.ctypes.data
            self.capacity = n


class LLVMExecutable:
    def __init__(self, program: Program, native: NativeCode, threads: int = 1):
        self.program = program
        self.native = native  # keeps the engine (and so the code) alive
        self._entry = _ENTRY(native.entry_address)
        self._slots = argument_slots(program)
        self._constants = {n: _aligned_copy(a) for n, a in program.constants.items()}
        self._runtime = runtime()  # the code it calls stays alive with it
        self._inputs = [program.buffers[n] for n in program.inputs]
        self._want_dtype = [np.dtype(b.dtype.np) for b in self._inputs]
        self._io_slots = [self._slots[n] for n in program.inputs + program.outputs]
        self._want_shape = [v.shape for v in program.graph.inputs]
        # A dynamic-batch program: each call's batch size n, and the shapes it gives.
        self.dynamic = program.dynamic
        self._binding = BatchBinding(self._want_shape, [v.shape for v in program.graph.outputs])
        self._outputs = [program.buffers[n] for n in program.outputs]
        statements = [s for k in program.kernels for s in walk(k.body)]
        self.uses_gemm = _has_float_gemm(statements)
        self.threads = threads
        # GEMM buffers: one slice per thread, for GEMMs inside parallel loops (each on one
        # thread) and for a team's GEMM that splits k (gemm_team_split.py)
        self.workspaces = threads if self.uses_gemm else 0
        # A program without parallel loops or GEMMs never enters libgomp: nothing to choose
        # (and a child forked after calling it has no reason to run serially).
        parallel = self.uses_gemm or any(isinstance(s, Loop) and s.parallel for s in statements)
        # One thread chooser per size class of the batch size n (a dynamic-batch program's
        # calls of 2 and of 2000 rows have different best thread counts; other programs
        # have one class).
        self._most_threads = threads if parallel else 1
        self._choosers: dict[int, ThreadChooser] = {}
        # (a program of fixed shapes has one: looked up once)
        self._chooser = None if self.dynamic else self._chooser_for(1)
        # A failing call must leave donated inputs as they were: when a kernel that can
        # report an error runs after one that writes a donated buffer, keep a copy.
        self._snapshot_donated = donated_write_may_precede_error(program)
        self._free: list[_CallContext] = [_CallContext(self)]

    def check_input(self, i: int, value: object, want_shapes: list | None = None) -> np.ndarray:
        want_shape = (want_shapes or self._want_shape)[i]
        # Fast path: the common case costs a few attribute reads (`aligned` covers
        # misaligned views; `ctypes.data` is slow to ask for; a native-order dtype is one
        # object, so `is` answers for it).
        if type(value) is np.ndarray and value.shape == want_shape:
            dtype = value.dtype
            if dtype is self._want_dtype[i] or dtype == self._want_dtype[i]:
                flags = value.flags
                if flags.c_contiguous and flags.aligned:
                    return value
        buf = self._inputs[i]
        want_dtype = buf.dtype.np
        name = self.program.graph.inputs[i].name
        if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
            value = np.asarray(value, dtype=want_dtype)  # a Python number for a scalar input
        if not isinstance(value, np.ndarray):
            value = np.asarray(value)
        if value.dtype != want_dtype:
            raise DTypeError(f"input {i} (%{name}) must be {want_dtype}, got {value.dtype}")
        if value.shape != want_shape:
            raise ShapeError(f"input {i} (%{name}) must have shape {want_shape}, got {value.shape}")
        if not value.flags.c_contiguous or not value.flags.aligned:
            # Views (x.T, x[:, :3], Fortran order, negative strides) are accepted as NumPy
            # would: the compiled code reads one contiguous copy (a copy's cost).
            value = c_contiguous(value)
        return value

    def __call__(self, arrays: Sequence[object]) -> list[np.ndarray]:
        """Run on flat input arrays. Outputs are new arrays, except donated ones, which are
        written into (and returned as) the input arrays they took over."""
        return self._execute(arrays, self._run_entry)

    def _run_entry(self, context: _CallContext) -> None:
        self._entry(context.address)

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

        def run(context: _CallContext) -> None:
            for entry in entries:
                start = time.perf_counter()
                entry(context.address)
                seconds.append(time.perf_counter() - start)

        return self._execute(arrays, run, measured=False), seconds

    def call_checked(
        self,
        arrays: Sequence[object],
        entries: list[Callable[[int], None]],
        on_kernel: Callable[[int, Callable[[str], np.ndarray]], None],
    ) -> list[np.ndarray]:
        """Like calling, but runs the kernels one entry at a time and calls
        ``on_kernel(i, read)`` after kernel ``i``; ``read(buffer)`` is the buffer's memory
        at that moment (arena buffers are reused later, so read them then)."""

        def run(context: _CallContext) -> None:
            inputs, outputs = context.current
            for i, entry in enumerate(entries):
                entry(context.address)
                on_kernel(i, lambda name: self._read(name, context))

        return self._execute(arrays, run, measured=False)

    def _execute(
        self, arrays: Sequence[object], run: Callable[[_CallContext], None], measured: bool = True
    ) -> list[np.ndarray]:
        """``measured``: an ordinary call, timed for the thread chooser. Kernel-by-kernel
        runs (profiles, check mode) use every thread and teach the chooser nothing."""
        if len(arrays) != len(self._inputs):
            raise ExecutionError(f"expected {len(self._inputs)} inputs, got {len(arrays)}")
        n, in_shapes, out_shapes = 1, None, None
        if self.dynamic:
            n, in_shapes, out_shapes = self._binding.bind([np.shape(a) for a in arrays])
        check = self.check_input
        inputs = [check(i, a, in_shapes) for i, a in enumerate(arrays)]
        donations = self.program.donations
        for j in donations.values():
            if inputs[j] is arrays[j] and not inputs[j].flags.writeable:
                name = self.program.graph.inputs[j].name
                raise ExecutionError(
                    f"input {j} (%{name}) is donated but read-only; pass a "
                    "writable array or compile without donate_argnums"
                )
        context = self._acquire()
        try:
            if self.dynamic:
                context.fit(n)
            fresh = self._fresh_output
            # (two forms: the common call without donations skips a lookup per output and
            # copies the list for recycling, 0.2 us of a 2.2 us call)
            if donations:
                outputs = [
                    inputs[donations[i]] if i in donations else fresh(context, i, buf, out_shapes)
                    for i, buf in enumerate(self._outputs)
                ]
            else:
                outputs = [
                    fresh(context, i, buf, out_shapes) for i, buf in enumerate(self._outputs)
                ]
            saved = []
            if self._snapshot_donated:
                saved = [(inputs[j], inputs[j].copy()) for j in donations.values()]
            # A training loop passes the same arrays every step: rebind only what changed
            # (asking an array for its address is the slowest part of a call).
            args, bound = context.args, context.bound
            for slot, a in enumerate(inputs + outputs):
                if bound[slot] is not a:
                    args[self._io_slots[slot]] = a.ctypes.data
                    bound[slot] = a
            status = context.status_word
            status.value = 0
            context.current = (inputs, outputs)
            chooser = self._chooser if self._chooser is not None else self._chooser_for(n)
            threads = chooser.threads() if measured else chooser.all_threads()
            args[CONTEXT_THREADS] = threads
            start = time.perf_counter()
            run(context)
            if measured:
                chooser.record(threads, time.perf_counter() - start)
            code = status.value
            if code:
                for array, copy in saved:  # the call failed: donated inputs as they were
                    array[...] = copy
                raise ExecutionError(self._error_message(code))
            for i, src in self.program.output_copies:
                outputs[i][...] = self._read(src, context).reshape(outputs[i].shape)
            if donations:
                context.recycled = [None if i in donations else o for i, o in enumerate(outputs)]
            else:
                context.recycled = outputs.copy()  # (the caller may change the list returned)
        finally:
            context.current = ([], [])
            self._release(context)
        return outputs

    def _error_message(self, code: int) -> str:
        message = self.program.status_messages.get(code, f"error code {code}")
        if code < 0:
            kernel = self.program.kernels[-code - 1].name
            message = f"out-of-bounds access in kernel {kernel} (a compiler bug)"
        return f"{message} (detected in compiled code)"

    def _acquire(self) -> _CallContext:
        # (list.pop and list.append are atomic: no lock, which would cost a tenth of a
        # small call)
        try:
            return self._free.pop()
        except IndexError:
            return _CallContext(self)  # a concurrent call: its own arena and workspace

    def _release(self, context: _CallContext) -> None:
        self._free.append(context)

    def _chooser_for(self, n: int) -> ThreadChooser:
        """The thread chooser of batch sizes around ``n`` (a power-of-two class)."""
        size_class = n.bit_length()
        chooser = self._choosers.get(size_class)
        if chooser is None:
            chooser = self._choosers.setdefault(size_class, ThreadChooser(self._most_threads))
        return chooser

    def _fresh_output(
        self, context: _CallContext, i: int, buf, shapes: list[tuple] | None = None
    ) -> np.ndarray:
        """A new output array, or this context's last one if the caller has dropped every
        reference to it (fresh memory costs a page fault per 4 KiB on first touch)."""
        shape = self.program.graph.outputs[i].shape if shapes is None else shapes[i]
        old = context.recycled[i]
        # References we hold: recycled, bound (the argument table's last binding), this
        # local, and getrefcount's argument. Any more and the caller still has it.
        if old is not None and sys.getrefcount(old) <= 4 and old.base is None:
            if old.shape == shape:
                return old
        return np.empty(shape, buf.dtype.np)

    def _read(self, name: str, context: _CallContext) -> np.ndarray:
        buf = self.program.buffers[name]
        inputs, outputs = context.current
        if buf.kind == "input":
            return inputs[buf.position]
        if buf.kind == "output":
            return outputs[buf.position]
        if buf.kind == "constant":
            return self._constants[name]
        if buf.kind == "arena":
            start = evaluate(buf.offset, context.batch)
            raw = context.arena[start : start + evaluate(buf.nbytes, context.batch)]
            return raw.view(buf.dtype.np)
        raise ExecutionError(f"cannot read buffer {name} ({buf.kind})")


def _has_float_gemm(body: list) -> bool:
    return any(isinstance(s, Gemm) and s.dtype.is_float for s in walk(body))
