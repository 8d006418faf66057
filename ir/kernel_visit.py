"""The one way analyses walk kernel IR.

Every walker of statements and expressions goes through these helpers, so a new
statement or expression kind is an error everywhere at once (``UnknownNodeError``)
instead of a silent default in the walkers that forgot it. Walks never recurse: an
unrolled loop's kernels nest deeply, and expressions are DAGs (each object is visited
once; ``kernel.postorder``).

- ``blocks(s)``: the statement lists nested in ``s``;
- ``own_expressions(s)``: the expressions ``s`` itself evaluates (not its nested blocks');
- ``walk(body)``: every statement, pre-order;
- ``KernelVisitor``: per-kind hooks with block entry and exit, for analyses with scopes;
- ``rebuild``: a new statement list from per-statement hooks, for rewriting passes;
- ``children`` / ``postorder`` (from ``kernel``): an expression's operands (raising for an
  unknown kind) and every distinct subexpression, operands first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from .kernel import (
    Assign,
    Binary,
    Cast,
    Const,
    Expr,
    Gemm,
    If,
    Let,
    Load,
    Local,
    Loop,
    Select,
    Stmt,
    Store,
    Unary,
    UnknownNodeError,
    Var,
    children,
    postorder,
)

__all__ = [
    "EXPRESSION_KINDS",
    "STATEMENT_KINDS",
    "KernelVisitor",
    "UnknownNodeError",
    "blocks",
    "buffers_written",
    "children",
    "expressions",
    "own_expressions",
    "postorder",
    "rebuild",
    "walk",
    "with_parts",
]

STATEMENT_KINDS = (Loop, Store, Let, Local, Assign, If, Gemm)
EXPRESSION_KINDS = (Const, Var, Load, Unary, Binary, Select, Cast)


def unknown_statement(s: object) -> UnknownNodeError:
    return UnknownNodeError(f"not a kernel statement: {type(s).__name__} ({s!r:.200})")


def unknown_expression(e: object) -> UnknownNodeError:
    return UnknownNodeError(f"not a kernel expression: {type(e).__name__} ({e!r:.200})")


def blocks(s: Stmt) -> tuple[list[Stmt], ...]:
    """The statement lists nested in ``s``, in execution order."""
    if isinstance(s, Loop):
        return (s.body,)
    if isinstance(s, If):
        return (s.then, s.otherwise)
    if isinstance(s, (Store, Let, Local, Assign, Gemm)):
        return ()
    raise unknown_statement(s)


def own_expressions(s: Stmt, gemm_offsets: bool = False) -> tuple[Expr, ...]:
    """The expressions ``s`` itself evaluates, in order (a constant loop extent or GEMM
    offset is an int, not an expression; GEMM offsets only when ``gemm_offsets``)."""
    if isinstance(s, Store):
        return (s.index, s.value)
    if isinstance(s, (Let, Assign)):
        return (s.value,)
    if isinstance(s, Local):
        return (s.init,)
    if isinstance(s, If):
        return (s.cond,)
    if isinstance(s, Loop):
        return () if isinstance(s.extent, int) else (s.extent,)
    if isinstance(s, Gemm):
        if not gemm_offsets:
            return ()
        offsets = (s.a_offset, s.b_offset, s.c_offset)
        return tuple(o for o in offsets if not isinstance(o, int))
    raise unknown_statement(s)


def with_parts(s: Stmt, exprs: tuple[Expr, ...], inner: tuple[list[Stmt], ...]) -> Stmt:
    """``s`` with its own expressions (``own_expressions`` order, GEMM offsets left out)
    and nested blocks (``blocks`` order) replaced: what a rewriting pass builds."""
    if isinstance(s, Loop):
        extent = s.extent if isinstance(s.extent, int) else exprs[0]
        return Loop(s.var, extent, inner[0], s.parallel, s.vectorize, s.independent)
    if isinstance(s, Store):
        return Store(s.buffer, exprs[0], exprs[1])
    if isinstance(s, Let):
        return Let(s.name, exprs[0])
    if isinstance(s, Local):
        return Local(s.name, s.dtype, exprs[0])
    if isinstance(s, Assign):
        return Assign(s.name, exprs[0])
    if isinstance(s, If):
        return If(exprs[0], inner[0], inner[1])
    if isinstance(s, Gemm):
        return s
    raise unknown_statement(s)


def walk(body: list[Stmt]) -> Iterator[Stmt]:
    """Every statement of ``body`` and of the blocks nested in it, pre-order."""
    stack = list(reversed(body))
    while stack:
        s = stack.pop()
        yield s
        for block in reversed(blocks(s)):
            stack.extend(reversed(block))


def expressions(body: list[Stmt], gemm_offsets: bool = False) -> Iterator[Expr]:
    """The root expressions the statements of ``body`` (nested blocks included) evaluate,
    in order."""
    for s in walk(body):
        yield from own_expressions(s, gemm_offsets)


def subexpressions(roots: Iterable[Expr]) -> Iterator[Expr]:
    """Every node of the expressions ``roots``, each shared node once (index arithmetic is
    a DAG: walked as a tree it can be exponential), without recursion."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend(getattr(e, f) for f in e._operands)


def buffers_written(s: Stmt) -> Iterator[str]:
    """The buffers ``s`` writes itself (not its nested blocks)."""
    if isinstance(s, Store):
        yield s.buffer
    elif isinstance(s, Gemm):
        yield s.c


_HOOKS = {
    Loop: "loop",
    Store: "store",
    Let: "let",
    Local: "local",
    Assign: "assign",
    If: "if_",
    Gemm: "gemm",
}
_BLOCK, _END_BLOCK, _STMT, _LEAVE = range(4)


class KernelVisitor:
    """Statement hooks with scopes. ``visit(body)`` calls, in execution order,
    ``enter_block(block)`` and ``leave_block(block)`` around each block, the statement's
    kind hook (``loop``, ``store``, ``let``, ``local``, ``assign``, ``if_``, ``gemm``)
    before its nested blocks and ``leave(s)`` after them. Unknown kinds raise; hooks left
    undefined do nothing. No recursion."""

    def visit(self, body: list[Stmt]) -> None:
        stack: list[tuple[int, object]] = [(_BLOCK, body)]
        while stack:
            kind, item = stack.pop()
            if kind == _BLOCK:
                self.enter_block(item)
                stack.append((_END_BLOCK, item))
                stack.extend((_STMT, s) for s in reversed(item))
            elif kind == _END_BLOCK:
                self.leave_block(item)
            elif kind == _STMT:
                hook = _HOOKS.get(type(item))
                if hook is None:
                    raise unknown_statement(item)
                getattr(self, hook)(item)
                stack.append((_LEAVE, item))
                stack.extend((_BLOCK, b) for b in reversed(blocks(item)))
            else:
                self.leave(item)

    def enter_block(self, block: list[Stmt]) -> None:
        pass

    def leave_block(self, block: list[Stmt]) -> None:
        pass

    def leave(self, s: Stmt) -> None:
        pass

    def loop(self, s: Loop) -> None:
        pass

    def store(self, s: Store) -> None:
        pass

    def let(self, s: Let) -> None:
        pass

    def local(self, s: Local) -> None:
        pass

    def assign(self, s: Assign) -> None:
        pass

    def if_(self, s: If) -> None:
        pass

    def gemm(self, s: Gemm) -> None:
        pass


def rebuild(
    body: list[Stmt],
    before: Callable[[Stmt], object],
    after: Callable[[Stmt, object, tuple[list[Stmt], ...]], list[Stmt]],
    enter_block: Callable[[list[Stmt]], None] | None = None,
    leave_block: Callable[[list[Stmt]], None] | None = None,
) -> list[Stmt]:
    """A rewritten copy of ``body``, without recursion. In execution order, each statement
    gets ``before(s)`` (rewrite its own expressions: a loop's extent is rewritten before
    its body), then its nested blocks are rebuilt (``enter_block`` / ``leave_block``
    around each), then ``after(s, before's result, new blocks)`` returns the statements
    that replace it. Unknown kinds raise."""
    open_blocks: list[list[Stmt]] = []  # the outputs of the blocks being rebuilt
    finished: list[list[Stmt]] = []  # rebuilt blocks not yet taken by their statement
    stack: list[tuple[int, object]] = [(_BLOCK, body)]
    while stack:
        kind, item = stack.pop()
        if kind == _BLOCK:
            if enter_block is not None:
                enter_block(item)
            open_blocks.append([])
            stack.append((_END_BLOCK, item))
            stack.extend((_STMT, s) for s in reversed(item))
        elif kind == _END_BLOCK:
            if leave_block is not None:
                leave_block(item)
            finished.append(open_blocks.pop())
        elif kind == _STMT:
            nested = blocks(item)
            state = before(item)
            if not nested:
                open_blocks[-1].extend(after(item, state, ()))
                continue
            stack.append((_LEAVE, (item, state, len(nested))))
            stack.extend((_BLOCK, b) for b in reversed(nested))
        else:
            s, state, n = item
            new_blocks = tuple(finished[-n:])
            del finished[-n:]
            open_blocks[-1].extend(after(s, state, new_blocks))
    return finished.pop()
