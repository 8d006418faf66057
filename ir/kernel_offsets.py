"""Constant offsets of buffer accesses moved into the buffer pointers.

The steps of an unrolled loop compute the same thing at different places: step t of an
RNN reads its slice of the input projection at ``proj[32 * t + i2 + 192 * i1]``. With the
constant part of each buffer's indices taken out (``proj'[i2 + 192 * i1]`` with ``proj' =
proj + 32 * t``), the steps' kernels are equal up to their pointers, and a code generator
compiles one function for all of them instead of one per step.
"""

from __future__ import annotations

from .kernel import (
    Expr,
    Gemm,
    Kernel,
    Load,
    Stmt,
    Store,
    children,
    expressions,
    postorder,
    walk,
    with_children,
)
from .kernel_simplify import IndexSimplifier
from .kernel_visit import own_expressions, rebuild, with_parts


def fold_offsets(kernel: Kernel, physical: dict[str, str]) -> tuple[Kernel, dict[str, int]]:
    """``(kernel', offsets)``: for each buffer (by its ``physical`` name: a donated output
    and its input are one) the smallest constant term of its access indices, when positive,
    subtracted from every access in ``kernel'``. Running ``kernel'`` with each pointer
    advanced by its offset (in elements) is running ``kernel``. Buffers a GEMM uses keep
    their indices (its offsets are fields of its own)."""
    affine = IndexSimplifier().affine
    lowest: dict[str, int] = {}
    fixed: set[str] = set()

    def access(buffer: str, index: Expr) -> None:
        name = physical.get(buffer, buffer)
        c0 = affine(index)[0]
        lowest[name] = min(lowest.get(name, c0), c0)

    for s in walk(kernel.body):
        if isinstance(s, Store):
            access(s.buffer, s.index)
        elif isinstance(s, Gemm):
            fixed |= {physical.get(b, b) for b in (s.a, s.b, s.c)}
    for e in postorder(expressions(kernel.body)):
        if isinstance(e, Load):
            access(e.buffer, e.index)
    offsets = {b: c for b, c in lowest.items() if c > 0 and b not in fixed}
    if not offsets:
        return kernel, {}
    return _Shifter(offsets, physical).kernel(kernel), offsets


class _Shifter:
    def __init__(self, offsets: dict[str, int], physical: dict[str, str]):
        self.offsets = offsets
        self.physical = physical
        self.simplifier = IndexSimplifier()
        self.memo: dict[int, Expr] = {}  # kernel-wide: an expression shared stays shared

    def offset(self, buffer: str) -> int:
        return self.offsets.get(self.physical.get(buffer, buffer), 0)

    def shift(self, index: Expr, by: int) -> Expr:
        c0, terms = self.simplifier.affine(index)
        return self.simplifier.build(c0 - by, terms)

    def expr(self, root: Expr) -> Expr:
        for e in postorder([root], lambda x: id(x) in self.memo):
            kids = [self.memo[id(c)] for c in children(e)]
            changed = any(k is not c for k, c in zip(kids, children(e), strict=True))
            new = with_children(e, kids) if changed else e
            if isinstance(new, Load) and self.offset(new.buffer):
                new = Load(new.buffer, self.shift(new.index, self.offset(new.buffer)), new.dtype)
            self.memo[id(e)] = new
        return self.memo[id(root)]

    def kernel(self, k: Kernel) -> Kernel:
        return Kernel(k.name, k.params, self.block(k.body), k.comment)

    def block(self, body: list[Stmt]) -> list[Stmt]:
        return rebuild(body, self.before, self.after)

    def before(self, s: Stmt) -> tuple[Expr, ...]:
        """``s``'s own expressions, shifted (a GEMM's buffers keep their offsets)."""
        if isinstance(s, Store):
            index = self.expr(s.index)
            if self.offset(s.buffer):
                index = self.shift(index, self.offset(s.buffer))
            return (index, self.expr(s.value))
        return tuple(self.expr(e) for e in own_expressions(s))

    def after(self, s: Stmt, new: tuple[Expr, ...], inner: tuple[list[Stmt], ...]) -> list[Stmt]:
        return [with_parts(s, new, inner)]  # (a GEMM is kept as it is)
