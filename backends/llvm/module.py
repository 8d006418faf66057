"""A Program -> one LLVM module with the exported entry point ``nc_entry(ptr args)``."""

from __future__ import annotations

import llvmlite.binding as llvm
import llvmlite.ir as ir

from ...ir.kernel_offsets import fold_offsets
from ...ir.kernel_printer import format_kernel
from ...ir.kernel_verify import verify_enabled, verify_kernel
from ...ir.symbolic import Dim
from ...lowering.program import Program, physical_params, reports_errors
from . import mathlib
from .codegen import (
    I8,
    I32,
    I64,
    PTR,
    VOID,
    KernelEmitter,
    bounds_checked,
)
from .float_env import subnormals_flushed
from .llvm_builders import set_function_attributes
from .parallel import (
    CONTEXT_BATCH,
    CONTEXT_THREADS,
    CONTEXT_WORKSPACE,
    ParallelRuntime,
    context_slot,
)


def argument_slots(program: Program) -> dict[str, int]:
    """Position in ``args`` of each buffer passed from Python (arena buffers are offsets
    into the arena instead)."""
    # The call context first (parallel.CONTEXT_THREADS, CONTEXT_WORKSPACE, CONTEXT_BATCH),
    # then buffers.
    slots: dict[str, int] = {
        "__threads__": CONTEXT_THREADS,
        "__workspace__": CONTEXT_WORKSPACE,
        "__batch__": CONTEXT_BATCH,
    }
    for name in program.inputs:
        slots[name] = len(slots)
    for name in program.outputs:
        slots[name] = len(slots)
    for name in program.constants:
        slots[name] = len(slots)
    slots["__arena__"] = len(slots)
    slots["status"] = len(slots)
    return slots


def canonical_kernel(kernel, physical: dict[str, str], number: int | None) -> str:
    """The kernel's text with its buffers named by position (after donation folds an
    output into its input) and without its name: equal texts compute the same thing."""
    params = physical_params(kernel, physical)
    rename = {p.name: f"%p{i}" for i, p in enumerate(params)}
    for p in kernel.params:
        rename.setdefault(p.name, rename[physical.get(p.name, p.name)])
    lines = format_kernel(kernel, rename).splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("kernel "))
    text = "\n".join(lines[head + 1 :])
    signature = ", ".join(f"{p.dtype}[{p.size}]" for p in params)
    return f"{signature}|{number}|{text}"


def build_module(program: Program, threads: int, per_kernel_entries: bool = False) -> str:
    """The module's IR text. With ``per_kernel_entries`` it also exports
    ``nc_kernel_<i>(ptr args)`` running kernel i alone (for per-kernel profiles)."""
    module = ir.Module(name=program.graph.name)
    module.triple = llvm.get_process_triple()
    parallel = ParallelRuntime(module, threads)
    kernels = []
    offsets: list[dict[str, int]] = []
    # Kernels that differ only in the buffers they get, or in constant offsets into them
    # (an unrolled loop's steps), share one function: less code for LLVM to optimize.
    shared: dict[str, ir.Function] = {}
    for number, k in enumerate(program.kernels):
        moved: dict[str, int] = {}
        if not bounds_checked():  # (checked indices are checked against whole buffers)
            k, moved = fold_offsets(k, program.physical)
            if verify_enabled():  # NNCOMPILE_VERIFY=1: the rewrite kept the IR sound
                verify_kernel(k)
        key = canonical_kernel(k, program.physical, number if bounds_checked() else None)
        if key not in shared:
            emitter = KernelEmitter(module, k, parallel, physical=program.physical)
            emitter.kernel_number = number
            shared[key] = emitter.emit()
        kernels.append(shared[key])
        offsets.append(moved)

    _emit_entry(module, program, kernels, offsets, "nc_entry", range(len(kernels)))
    if per_kernel_entries:
        for i in range(len(kernels)):
            _emit_entry(module, program, kernels, offsets, f"nc_kernel_{i}", [i])
    mathlib.finish(module)
    return str(module)


# Kernels one function calls: an entry calling thousands of kernels (an unrolled RNN's
# training step) is one huge function, and LLVM's code generation is superlinear in it
# (LSTM x 1000 steps: 1.7 s for the entry alone, 0.3 s in parts of 128), so a long entry
# calls parts of this size.
ENTRY_PART = 128


def _emit_entry(
    module: ir.Module,
    program: Program,
    kernels: list[ir.Function],
    offsets: list[dict[str, int]],
    name: str,
    which,
) -> None:
    which, run_name = list(which), f"{name}.run"
    if len(which) <= ENTRY_PART:
        run = _emit_calls(module, program, kernels, offsets, run_name, which)
    else:
        run = ir.Function(module, ir.FunctionType(VOID, [PTR]), run_name)
        set_function_attributes(run)
        b = ir.IRBuilder(run.append_basic_block("entry"))
        status = _slot(b, run.args[0], argument_slots(program)["status"])
        for k in range(0, len(which), ENTRY_PART):
            part = which[k : k + ENTRY_PART]
            fn = _emit_calls(module, program, kernels, offsets, f"{run_name}.part{k}", part)
            fn.linkage = "internal"
            fn.attributes.add("noinline")
            b.call(fn, [run.args[0]])
            if any(reports_errors(program.kernels[i]) for i in part) or bounds_checked():
                failed = b.icmp_signed("!=", b.load(status, typ=I64), ir.Constant(I64, 0))
                with b.if_then(failed, likely=False):
                    b.ret_void()
        b.ret_void()
    # The exported entry: subnormals flushed around the whole run (float_env.py)
    run.linkage = "internal"
    run.attributes.add("noinline")  # (no arithmetic may move across the MXCSR writes)
    entry = ir.Function(module, ir.FunctionType(VOID, [PTR]), name)
    set_function_attributes(entry)
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    with subnormals_flushed(b):
        b.call(run, [entry.args[0]])
    b.ret_void()


def _slot(b: ir.IRBuilder, args: ir.Value, k: int) -> ir.Value:
    return b.load(b.gep(args, [ir.Constant(I32, k)], source_etype=PTR), typ=PTR)


def _emit_calls(
    module: ir.Module,
    program: Program,
    kernels: list[ir.Function],
    offsets: list[dict[str, int]],
    name: str,
    which: list[int],
) -> ir.Function:
    """A function ``name(ptr args)`` running kernels ``which`` in order; it returns at
    the first kernel that reports an error."""
    entry = ir.Function(module, ir.FunctionType(VOID, [PTR]), name)
    set_function_attributes(entry)
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    args = entry.args[0]
    loaded = {name: _slot(b, args, k) for name, k in argument_slots(program).items()}
    arena = loaded["__arena__"]
    n = context_slot(b, args, CONTEXT_BATCH, I64) if program.dynamic else None
    for i in which:
        kernel, fn = program.kernels[i], kernels[i]
        ptrs = []
        for p in physical_params(kernel, program.physical):
            buf = program.buffers[p.name]
            moved = offsets[i].get(p.name, 0) * p.dtype.itemsize  # bytes
            if buf.kind == "arena" and type(buf.offset) is Dim:  # static + per_row * n
                per_row = b.mul(n, ir.Constant(I64, buf.offset.scale))
                at = b.add(per_row, ir.Constant(I64, buf.offset.offset + moved))
                ptrs.append(b.gep(arena, [at], source_etype=I8))
            elif buf.kind == "arena":
                at = ir.Constant(I64, buf.offset + moved)
                ptrs.append(b.gep(arena, [at], source_etype=I8))
            elif moved:
                ptrs.append(b.gep(loaded[p.name], [ir.Constant(I64, moved)], source_etype=I8))
            else:
                ptrs.append(loaded[p.name])
        b.call(fn, [*ptrs, args])
        if reports_errors(kernel) or bounds_checked():
            # Stop at the first error: later kernels (an optimizer's in-place update of
            # donated weights) must not run on a failed step's values.
            failed = b.icmp_signed("!=", b.load(loaded["status"], typ=I64), ir.Constant(I64, 0))
            with b.if_then(failed, likely=False):
                b.ret_void()
    b.ret_void()
    return entry
