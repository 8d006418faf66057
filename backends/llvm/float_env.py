"""Subnormal floats flushed to zero while compiled code runs (x86 MXCSR FTZ and DAZ).

Arithmetic on subnormal numbers takes a slow microcode path on x86 (tens to a hundred
times slower per instruction). Training makes them routinely: Adam's first moment of a
weight whose gradient is exactly 0 (a dead ReLU unit, an always-black MNIST pixel) decays
by 0.9 per step into the subnormal range, and measured on the seed CNN's MNIST epoch the
optimizer update then ran 0.4 -> 3.2 ms per step. XLA's CPU runtime and TensorFlow flush
subnormals for the same reason. Every entry point that runs on a thread (the exported
call, each parallel region's per-thread trampoline, the GEMM's team body) saves the
thread's MXCSR, sets FTZ|DAZ, and restores it on the way out, so code outside nncompile
(NumPy, the caller) keeps IEEE subnormals. NNCOMPILE_FLUSH_DENORMALS=0 keeps them here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import llvmlite.ir as ir

from ... import config
from .llvm_builders import declare

I32, PTR, VOID = ir.IntType(32), ir.PointerType(), ir.VoidType()
FTZ_DAZ = (1 << 15) | (1 << 6)  # MXCSR: flush-to-zero, denormals-are-zero


def flushing(module: ir.Module) -> bool:
    """Whether code in ``module`` flushes: an x86 target, and not turned off."""
    triple = module.triple or ""
    x86 = triple.startswith(("x86_64", "i386", "i686"))
    return x86 and config.get_bool(config.FLUSH_DENORMALS)


@contextmanager
def subnormals_flushed(b: ir.IRBuilder, pool_thread: ir.Value | None = None) -> Iterator[None]:
    """Bracket the instructions emitted inside the ``with`` (a call: keep it a call to a
    noinline function, so LLVM cannot move arithmetic across the MXCSR writes).

    ``pool_thread`` (an i1) is true on a thread of libgomp's pool rather than the caller's:
    such a thread was created inside a flushed call and inherited FTZ|DAZ as its "saved"
    state, so on the way out it returns to IEEE subnormals instead of what it found (else
    later code on the pool, a program compiled with flushing off included, would flush)."""
    module = b.module
    if not flushing(module):
        yield
        return
    save = declare(module, "llvm.x86.sse.stmxcsr", ir.FunctionType(VOID, [PTR]))
    load = declare(module, "llvm.x86.sse.ldmxcsr", ir.FunctionType(VOID, [PTR]))
    with b.goto_entry_block():
        old, new = b.alloca(I32, name="mxcsr.old"), b.alloca(I32, name="mxcsr.new")
    b.call(save, [old])
    b.store(b.or_(b.load(old), ir.Constant(I32, FTZ_DAZ)), new)
    b.call(load, [new])
    yield
    if pool_thread is not None:
        ieee = b.and_(b.load(old), ir.Constant(I32, ~FTZ_DAZ & 0xFFFFFFFF))
        b.store(b.select(pool_thread, ieee, b.load(old)), old)
    b.call(load, [old])
