"""Bound the depth of kernel expressions by binding subexpressions to lets.

A fused chain of n elementwise ops is one expression n deep, and code generators (and C
compilers) walk expressions recursively. ``bound_depth`` rewrites a kernel so that no
expression is deeper than ``MAX_DEPTH``: walking each statement's expressions operands
first, a subexpression that reaches the limit is bound to a ``let`` placed just before
the statement and used by name. Both walks use explicit stacks.

Evaluation order and sharing are kept. A let is computed right before the statement that
first uses it, where that statement would have computed it. An expression object shared
by several statements of a block is bound once and reused: back ends compute such an
object once for the block, and the kernel IR relies on it when a donated input is
overwritten in place. An expression reading a mutable local (an accumulator) is reused
only within its statement, since a later statement must see the local's new value.
"""

from __future__ import annotations

from .kernel import (
    MAX_DEPTH,
    Expr,
    Kernel,
    Let,
    Local,
    Loop,
    Stmt,
    Var,
    children,
    expressions,
    postorder,
    walk,
    with_children,
)
from .kernel_visit import own_expressions, rebuild, with_parts

# id(original) -> (original, replacement, depth of the replacement, reads a mutable local)
_Entry = tuple[Expr, Expr, int, bool]


def bound_depth(kernel: Kernel, limit: int = MAX_DEPTH) -> Kernel:
    """``kernel`` itself when no expression is deeper than ``limit``, else a copy whose
    deep subexpressions are let-bound."""
    if max_depth(kernel) <= limit:
        return kernel
    names = {s.name for s in walk(kernel.body) if isinstance(s, (Let, Local))}
    names |= {s.var for s in walk(kernel.body) if isinstance(s, Loop)}
    mutable = {s.name for s in walk(kernel.body) if isinstance(s, Local)}
    body = _Binder(limit, mutable, names).block(kernel.body)
    return Kernel(kernel.name, kernel.params, body, kernel.comment)


def max_depth(kernel: Kernel) -> int:
    """The depth of the kernel's deepest expression (a constant or variable is 1)."""
    depth: dict[int, int] = {}
    for e in postorder(expressions(kernel.body)):
        depth[id(e)] = 1 + max((depth[id(c)] for c in children(e)), default=0)
    return max(depth.values(), default=0)


class _Binder:
    def __init__(self, limit: int, mutable: set[str], taken: set[str]):
        self.limit = limit
        self.mutable = mutable
        self.taken = taken
        self.scopes: list[dict[int, _Entry]] = []  # one per open block
        self.count = 0

    def block(self, body: list[Stmt]) -> list[Stmt]:
        return rebuild(body, self.before, self.after, self.enter, self.leave)

    def enter(self, block: list[Stmt]) -> None:
        self.scopes.append({})

    def leave(self, block: list[Stmt]) -> None:
        self.scopes.pop()

    def before(self, s: Stmt) -> tuple[list[Stmt], tuple[Expr, ...]]:
        """The lets ``s``'s own expressions need, and the expressions using them (a loop's
        extent and an if's condition are rewritten in the enclosing block)."""
        lets: list[Stmt] = []
        own: dict[int, _Entry] = {}  # this statement's expressions reading locals
        return lets, tuple(self.expr(e, lets, own) for e in own_expressions(s))

    def after(self, s: Stmt, state, inner: tuple[list[Stmt], ...]) -> list[Stmt]:
        lets, exprs = state
        return lets + [with_parts(s, exprs, inner)]

    def lookup(self, e: Expr, own: dict[int, _Entry]) -> _Entry | None:
        for table in (own, *reversed(self.scopes)):
            hit = table.get(id(e))
            if hit is not None and hit[0] is e:
                return hit
        return None

    def expr(self, root: Expr, lets: list[Stmt], own: dict[int, _Entry]) -> Expr:
        """``root`` with every subexpression that reaches the depth limit let-bound (the
        root itself is never bound: an accumulation must stay an expression)."""
        for e in postorder([root], lambda x: self.lookup(x, own) is not None):
            kids = [self.lookup(c, own) for c in children(e)]
            changed = any(k[1] is not c for k, c in zip(kids, children(e), strict=True))
            new = with_children(e, [k[1] for k in kids]) if changed else e
            depth = 1 + max((k[2] for k in kids), default=0)
            reads = (isinstance(e, Var) and e.name in self.mutable) or any(k[3] for k in kids)
            if depth >= self.limit and e is not root:
                name = self.fresh()
                lets.append(Let(name, new))
                new, depth = Var(name, e.dtype), 1
            (own if reads else self.scopes[-1])[id(e)] = (e, new, depth, reads)
        return self.lookup(root, own)[1]

    def fresh(self) -> str:
        while True:
            self.count += 1
            name = f"b{self.count}"
            if name not in self.taken:
                self.taken.add(name)
                return name
