"""Parallel loops through libgomp: ``GOMP_parallel(fn, data, nthreads, 0)``.

A loop marked parallel is outlined into its own function taking one pointer to a table
of everything the body reads (buffer pointers and scalars in scope), one 8-byte slot
each. Each thread runs a
contiguous chunk of the iterations, chosen from ``omp_get_thread_num`` and
``omp_get_num_threads``. Nested parallel loops run serially inside their region.

The team size is not baked into the code: every kernel gets the call's context (the
argument table, whose slot ``CONTEXT_THREADS`` holds the thread count for this call), and
a count of 1 calls the outlined body directly, never entering libgomp. That is what lets
the executable choose per call (threads.py: fewer threads when the cores are taken) and
run serially in a child process forked after libgomp started its threads.
"""

from __future__ import annotations

import ctypes.util
import functools
import os

import llvmlite.binding as llvm
import llvmlite.ir as ir

from ... import config
from ...backend import (  # noqa: F401  (imported from here too)
    available_cores,
    check_threads,
    default_threads,
)
from .float_env import subnormals_flushed

I32, I64, PTR, VOID = ir.IntType(32), ir.IntType(64), ir.PointerType(), ir.VoidType()


def store_untyped(
    b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, align: int | None = None
) -> None:
    """A store without llvmlite's pointee check: it types a struct field's GEP as pointing
    to the whole struct, which LLVM's opaque pointers do not care about."""
    st = ir.instructions.StoreInstr(b.block, value, ptr)
    st.align = align
    b._insert(st)


# libgomp's spin count when the user sets none: its own default for a machine that is not
# oversubscribed. Left unset, libgomp often picks its "throttled" count and its threads
# fall asleep between the parallel loops of one step; waking them costs more than many
# kernels take (measured: MLP step 0.48 -> 0.30 ms).
SPINCOUNT = "300000"

_pinned: list[ctypes.CDLL] = []


def load_permanently(path: str) -> None:
    """Make a shared library's symbols visible to JIT code, for good. llvmlite dlcloses the
    libraries it loaded when the process exits; libgomp's idle threads may still be
    running its code then, so the library is also opened with RTLD_NODELETE and never
    unloaded (without it a process exits with SIGSEGV under OMP_WAIT_POLICY=active)."""
    _pinned.append(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL | getattr(os, "RTLD_NODELETE", 0)))
    llvm.load_library_permanently(path)


@functools.cache
def load_libgomp() -> bool:
    path = ctypes.util.find_library("gomp")
    if not path:
        return False
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = SPINCOUNT  # read by libgomp when it is loaded
    try:
        load_permanently(path)
    except (OSError, RuntimeError):
        return False
    return True


# Slots of the argument table every kernel reads (module.argument_slots puts them first).
CONTEXT_THREADS = 0  # this call's thread count (an integer in a pointer-sized slot)
CONTEXT_WORKSPACE = 1  # this call's GEMM packing buffers
CONTEXT_BATCH = 2  # a dynamic-batch program's batch size n for this call (an integer)

# More threads than this is a typo: libgomp aborts (or crashes) creating tens of thousands.
MAX_THREADS = config.THREADS.high


def context_slot(b: ir.IRBuilder, context: ir.Value, slot: int, typ: ir.Type) -> ir.Value:
    """Slot ``slot`` of the call context (the argument table), read as ``typ``."""
    return b.load(b.gep(context, [ir.Constant(I32, slot)], source_etype=PTR), typ=typ)


class ParallelRuntime:
    def __init__(self, module: ir.Module, threads: int):
        self.module = module
        self.threads = threads
        self.enabled = threads > 1 and load_libgomp()
        self.count = 0

    def _fn(self, name: str, ftype: ir.FunctionType) -> ir.Function:
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ftype, name)
        return fn

    def emit_parallel_loop(self, em, loop) -> None:
        # Everything the outlined body may read (buffers, scalars in scope, the call context
        # with the GEMM workspaces), then the extent and whether a team runs it
        self.count += 1
        outlined_body = OutlinedBody(em, f"{em.fn.name}.par{self.count}", [I64, I64, I64])
        fields = outlined_body.fields + [I64, I64]
        outlined = ir.Function(
            self.module, ir.FunctionType(VOID, [PTR]), f"{em.fn.name}.par{self.count}"
        )
        outlined.linkage = "internal"
        # The body is inlined here before the vectorizer runs, and an inlined body takes
        # this function's attributes: without them its loops get 256-bit vectors.
        from .llvm_builders import set_function_attributes

        set_function_attributes(outlined)

        # Caller: pack the table and start the team.
        b = em.b
        slot = outlined_body.table([em.index(loop.extent)], extra_slots=1)
        gomp = self._fn("GOMP_parallel", ir.FunctionType(VOID, [PTR, PTR, I32, I32]))
        threads = context_slot(b, em.context, CONTEXT_THREADS, I64)
        in_team = b.gep(slot, [ir.Constant(I32, len(fields) - 1)], source_etype=PTR)
        with b.if_else(b.icmp_signed(">", threads, ir.Constant(I64, 1))) as (team, alone):
            with team:
                store_untyped(b, ir.Constant(I64, 1), in_team)
                count = b.trunc(threads, I32)
                b.call(gomp, [outlined, slot, count, ir.Constant(I32, 0)])
            with alone:  # the whole range on this thread, whatever team it may be in
                store_untyped(b, ir.Constant(I64, 0), in_team)
                b.call(outlined, [slot])

        # ..., the context, this thread's number in the team (its GEMM workspace), lo, hi
        child = outlined_body.emitter(self)
        body_fn = outlined_body.fn
        child.thread_number = body_fn.args[-3]
        child.loop(loop, start=body_fn.args[-2], stop=body_fn.args[-1])
        child.b.ret_void()

        # Trampoline: unpack the struct, take this thread's chunk, call the body.
        cb = ir.IRBuilder(outlined.append_basic_block("entry"))
        loaded = unpack_table(cb, outlined.args[0], fields)
        extent, team = loaded[-2], cb.icmp_signed("!=", loaded[-1], ir.Constant(I64, 0))
        tid = cb.sext(cb.call(self._fn("omp_get_thread_num", ir.FunctionType(I32, [])), []), I64)
        nth = cb.sext(cb.call(self._fn("omp_get_num_threads", ir.FunctionType(I32, [])), []), I64)
        # Run alone (a thread count of 1), the caller may still be inside some other
        # OpenMP team (an application's parallel region): its numbers are not ours.
        tid = cb.select(team, tid, ir.Constant(I64, 0))
        nth = cb.select(team, nth, ir.Constant(I64, 1))
        chunk = cb.sdiv(cb.add(extent, cb.sub(nth, ir.Constant(I64, 1))), nth)
        lo = cb.mul(tid, chunk)
        hi = cb.add(lo, chunk)
        hi = cb.select(cb.icmp_signed("<", hi, extent), hi, extent)
        pool_thread = cb.icmp_signed("!=", tid, ir.Constant(I64, 0))
        with subnormals_flushed(cb, pool_thread):  # (a team's threads run here, not in nc_entry)
            cb.call(body_fn, loaded[:-2] + [tid, lo, hi])
        cb.ret_void()


def unpack_table(b: ir.IRBuilder, data: ir.Value, fields: list[ir.Type]) -> list[ir.Value]:
    """The values an OutlinedBody's table holds (8-byte slots), as ``fields`` types."""
    return [
        b.load(b.gep(data, [ir.Constant(I32, k)], source_etype=PTR), typ=t)
        for k, t in enumerate(fields)
    ]


class OutlinedBody:
    """A function for part of a kernel, run elsewhere (a team's threads, a GEMM's
    epilogue): its arguments are every buffer pointer of the kernel (one per distinct
    memory: a donated pair shares one, ``noalias``), the scalars in scope, the call context,
    then ``extra`` arguments of its own. The caller passes them in a table of 8-byte slots
    (``table``): a struct type would be spelled out in full by every field's GEP,
    quadratic text for a kernel with a thousand buffers (a wide concat)."""

    def __init__(self, em, name: str, extra: list[ir.Type]):
        self.em = em
        self.pointers: list[ir.Value] = []
        for value, _ in em.buffers.values():
            if all(value is not q for q in self.pointers):
                self.pointers.append(value)
        self.scalars = [(n, v) for scope in em.scopes for n, v in scope.items()]
        # what the table holds: pointers, scalars, then the call context
        self.fields = [PTR] * len(self.pointers) + [v.type for _, v in self.scalars] + [PTR]
        # The body is a function whose buffer pointers are noalias *arguments*: read from
        # the table they would be plain pointers, and possible aliasing would stop the
        # vectorizer. The caller of the body inlines it, keeping the noalias facts.
        self.fn = ir.Function(em.module, ir.FunctionType(VOID, self.fields + extra), f"{name}.body")
        self.fn.linkage = "internal"
        for arg in self.fn.args[: len(self.pointers)]:
            arg.add_attribute("noalias")
        self.fn.append_basic_block("entry")

    def table(self, more: list[ir.Value], extra_slots: int = 0) -> ir.Value:
        """A table (in the kernel's frame) of the body's captured values and the call
        context, then ``more`` and ``extra_slots`` more slots for the caller to fill."""
        b = self.em.b
        values = self.pointers + [v for _, v in self.scalars] + [self.em.context] + more
        with b.goto_entry_block():
            slot = b.alloca(ir.ArrayType(I64, len(values) + extra_slots))
        for k, v in enumerate(values):
            store_untyped(b, v, b.gep(slot, [ir.Constant(I32, k)], source_etype=PTR))
        return slot

    def emitter(self, runtime: ParallelRuntime):
        """A kernel emitter writing into the body, its buffers and scalars the body's
        arguments (it emits no parallel regions of its own)."""
        from .codegen import KernelEmitter

        em, fn = self.em, self.fn
        buffers = {}
        for name, (value, dtype) in em.buffers.items():
            k = next(i for i, q in enumerate(self.pointers) if q is value)
            buffers[name] = (fn.args[k], dtype)
        child = KernelEmitter(
            em.module, em.kernel, runtime, fn=fn, buffers=buffers, extreme_ops=em.extreme_ops
        )
        child.in_parallel = True
        child.kernel_number = em.kernel_number
        child.context = fn.args[len(self.fields) - 1]
        for k, (n, _) in enumerate(self.scalars):
            child.scopes[0][n] = fn.args[len(self.pointers) + k]
        return child
