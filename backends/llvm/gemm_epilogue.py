"""A product's elementwise epilogue, run on each region of C as the region is finished,
while it is still in cache.

Fusion leaves a kernel such as ``C = A @ B`` followed by a loop over C's rows and columns
(``relu(C + bias)`` and its mask, an optimizer's update of a weight from its gradient
``C``). Run after the product, that loop reads all of C back from memory. The runtime's
bf16 GEMM runs it region by region instead (gemm.emit_gemm decides), on each 32-row panel
of its column block (gemm_bf16.py): the loop is outlined into an epilogue function over a
rectangle of (row, column) positions, and the kernel calls ``nc_rt_gemm_bf16_fused`` with
it. Where the GEMM cannot run it (a team that splits k or rows, a short k), it says so and
the kernel runs the loop as before. Every path computes the same numbers: the loop's
arithmetic is unchanged, only where it runs. (The float32 GEMMs do not take epilogues:
see gemm.emit_gemm and docs/architecture.md.)

What may be fused: a loop nest ``for i < m: for j < n:`` of lets and stores, right after a
single product, where

- C is read only at element (i, j);
- every written buffer is written at one place per (i, j) (an injective affine index), read
  only at that place, and is none of A, B and C (the GEMM is still reading A and B while
  the epilogue writes);
- other buffers are only read.

Then any order of the regions computes what the loop computed.
"""

from __future__ import annotations

import llvmlite.ir as ir

from ...ir.kernel import Gemm, Let, Load, Loop, Store, Var, postorder
from ...ir.kernel_simplify import IndexSimplifier
from ...ir.kernel_visit import own_expressions
from .gemm import emit_packed_call, is_dynamic
from .gemm_bf16 import EPILOGUE_TYPE
from .gemm_registers import fits_in_registers
from .llvm_builders import set_function_attributes
from .parallel import OutlinedBody, unpack_table

I64 = ir.IntType(64)


def _nest(s: Gemm, loop: Loop) -> Loop | None:
    """The inner loop of ``for i < m: for j < n: <lets and stores>``, or None."""
    if loop.extent != s.m or len(loop.body) != 1:
        return None
    inner = loop.body[0]
    if not isinstance(inner, Loop) or inner.extent != s.n:
        return None
    if not all(isinstance(x, (Let, Store)) for x in inner.body):
        return None
    return inner


def _place(affine, index, i: str, j: str) -> tuple[int, int, int] | None:
    """(offset, i's coefficient, j's) of an index affine in the loop variables, or None."""
    c0, terms = affine(index)
    coefficients = {i: 0, j: 0}
    for atom, k in terms:
        if not isinstance(atom, Var) or atom.name not in coefficients:
            return None
        coefficients[atom.name] += k
    return c0, coefficients[i], coefficients[j]


def _injective(place: tuple[int, int, int], m: int, n: int) -> bool:
    """Distinct (i, j) with i < m, j < n reach distinct elements: one coefficient steps
    over all the other's range."""
    _, ci, cj = place
    return (cj > 0 and ci >= n * cj) or (ci > 0 and cj >= m * ci)


def fuses_epilogue(em, s: Gemm, loop: Loop) -> bool:
    """Whether ``loop`` (right after ``s`` in a kernel) may run as the product's epilogue
    (the module docstring's conditions); gemm.emit_gemm runs it so where the product's
    form can."""
    if not s.bf16:
        return False  # (only the runtime's bf16 GEMM runs epilogues, gemm.emit_gemm)
    if em.in_parallel or s.batch != 1 or is_dynamic(s) or not isinstance(s.c_offset, int):
        return False
    if s.tile.get("registers") or fits_in_registers(s):
        return False  # (one register tile: nothing to run region by region)
    inner = _nest(s, loop)
    if inner is None:
        return False

    def memory(name: str) -> int:  # (a donated output and its input share one pointer)
        return id(em.buffers[name][0])

    i, j = loop.var, inner.var
    affine = IndexSimplifier().affine
    operands = {memory(s.a), memory(s.b)}
    c = memory(s.c)
    c_place = (s.c_offset, s.c_strides[1], s.c_strides[2])
    written: dict[int, tuple[int, int, int]] = {}
    for st in inner.body:
        if isinstance(st, Store):
            place = _place(affine, st.index, i, j)
            where = memory(st.buffer)
            if place is None or not _injective(place, s.m, s.n):
                return False
            if where in operands or where == c or written.setdefault(where, place) != place:
                return False
    for st in inner.body:
        for root in own_expressions(st):
            for e in postorder([root]):
                if not isinstance(e, Load):
                    continue
                where = memory(e.buffer)
                if where == c or where in written:
                    want = c_place if where == c else written[where]
                    if _place(affine, e.index, i, j) != want:
                        return False
    return True


def emit_runtime_gemm_with_epilogue(em, s: Gemm, loop: Loop) -> None:
    """``s`` by the runtime's bf16 GEMM with ``loop`` as its epilogue; ``loop`` after it,
    as usual, where the GEMM did not run it."""
    inner = loop.body[0]
    name = f"{em.fn.name}.epilogue{len(em.fn.blocks)}"
    body = OutlinedBody(em, name, [I64] * 4)  # ..., rows [r0, r1), columns [c0, c1)
    child = body.emitter(em.parallel)
    child.thread_number = ir.Constant(I64, 0)  # (its loops hold no GEMM)
    r0, r1, c0, c1 = body.fn.args[-4:]
    child.loop_ranges[inner.var] = (c0, c1)
    child.loop(loop, start=r0, stop=r1)
    child.b.ret_void()

    epilogue = ir.Function(em.module, EPILOGUE_TYPE, name)
    epilogue.linkage = "internal"
    set_function_attributes(epilogue)  # (the body is inlined here: its vector width)
    b = ir.IRBuilder(epilogue.append_basic_block("entry"))
    b.call(body.fn, unpack_table(b, epilogue.args[0], body.fields) + list(epilogue.args[1:]))
    b.ret_void()

    applied = emit_packed_call(em, s, (epilogue, body.table([])))
    with em.b.if_then(em.b.icmp_signed("==", applied, ir.Constant(I64, 0))):
        em.stmt(loop)
