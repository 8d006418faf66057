"""Simplification of index arithmetic in kernel IR, using the ranges of loop variables.

Lowering composes index maps naively: a reshape after a transpose becomes
``delinearize(linearize(...))`` with a division and a modulo per dimension. With each
loop variable's range known, such expressions collapse: an index is rewritten as an
affine sum ``c0 + sum(c_k * atom_k)``, and ``(sum) // d`` or ``(sum) % d`` drop the terms
whose coefficients are multiples of ``d`` whenever the remaining terms provably stay in
``[0, d)``. This keeps indices affine for the vectorizer and removes divisions from
inner loops.
"""

from __future__ import annotations

from .kernel import (
    INDEX,
    Binary,
    Cast,
    Const,
    Expr,
    Kernel,
    Let,
    Load,
    Loop,
    Select,
    Stmt,
    Unary,
    Var,
    children,
    const_index,
    iadd,
    imul,
    postorder,
)
from .kernel_visit import own_expressions, rebuild, with_parts

Range = tuple[int, int]  # inclusive bounds
_UNKNOWN: Range = (-(2**62), 2**62)


class IndexSimplifier:
    def __init__(self) -> None:
        self.ranges: dict[str, Range] = {}
        self._memo: dict[int, tuple[Expr, Expr]] = {}
        # Ranges already computed (reshapes make index arithmetic a DAG whose nodes many
        # ranges share); forgotten when a variable's range is set.
        self._ranges: dict[int, tuple[Expr, Range]] = {}

    def bind_range(self, name: str, r: Range) -> None:
        self.ranges[name] = r
        self._ranges.clear()

    # ---- ranges ------------------------------------------------------------------------

    def range_of(self, e: Expr) -> Range:
        # Operands first, from an explicit stack (index arithmetic can nest deeply).
        for x in postorder([e], lambda x: self._known(x) or (x is not e and not _ranged(x))):
            self._ranges[id(x)] = (x, self._range(x))
        return self._ranges[id(e)][1]

    def _known(self, e: Expr) -> bool:
        hit = self._ranges.get(id(e))
        return hit is not None and hit[0] is e

    def _operand_range(self, e: Expr) -> Range:
        return self._ranges[id(e)][1] if self._known(e) else _UNKNOWN

    def _range(self, e: Expr) -> Range:
        """The range of ``e`` given those of its operands (computed first)."""
        if isinstance(e, Const):
            v = int(e.value)
            return (v, v)
        if isinstance(e, Var):
            return self.ranges.get(e.name, _UNKNOWN)
        if isinstance(e, Binary) and e.dtype == INDEX:
            a, b = self._operand_range(e.a), self._operand_range(e.b)
            if e.op == "add":
                return (a[0] + b[0], a[1] + b[1])
            if e.op == "sub":
                return (a[0] - b[1], a[1] - b[0])
            if e.op == "mul":
                products = [x * y for x in a for y in b]
                return (min(products), max(products))
            if e.op in ("idiv", "mod") and isinstance(e.b, Const) and int(e.b.value) > 0:
                d = int(e.b.value)
                if a[0] >= 0:
                    return (a[0] // d, a[1] // d) if e.op == "idiv" else (0, min(d - 1, a[1]))
            if e.op == "max":
                return (max(a[0], b[0]), max(a[1], b[1]))
            if e.op == "min":
                return (min(a[0], b[0]), min(a[1], b[1]))
        if isinstance(e, Select) and e.dtype == INDEX:
            a, b = self._operand_range(e.a), self._operand_range(e.b)
            return (min(a[0], b[0]), max(a[1], b[1]))
        return _UNKNOWN

    # ---- affine decomposition ----------------------------------------------------------

    def affine(self, e: Expr) -> tuple[int, list[tuple[Expr, int]]]:
        """e == c0 + sum(c * atom); atoms are non-affine subexpressions or variables."""
        c0, terms = 0, []
        stack = [(e, 1)]  # (subexpression, its coefficient), left operands on top
        while stack:
            x, k = stack.pop()
            if isinstance(x, Const):
                c0 += k * int(x.value)
            elif isinstance(x, Binary) and x.dtype == INDEX and x.op in ("add", "sub"):
                stack.append((x.b, k if x.op == "add" else -k))
                stack.append((x.a, k))
            elif isinstance(x, Binary) and x.dtype == INDEX and x.op == "mul":
                y = x.b if isinstance(x.b, Const) else x.a if isinstance(x.a, Const) else None
                if y is None:
                    terms.append((x, k))
                else:
                    stack.append((x.a if y is x.b else x.b, k * int(y.value)))
            else:
                terms.append((x, k))
        merged = _merge(terms)
        joined = _rejoin(merged)
        if joined is merged:
            return c0, merged
        c1, rest = self.affine(self.build(0, joined))  # (a rejoined e may be a sum)
        return c0 + c1, rest

    def build(self, c0: int, terms: list[tuple[Expr, int]]) -> Expr:
        e: Expr = const_index(c0)
        for atom, k in terms:
            e = iadd(e, imul(atom, const_index(k)))
        return e

    def _span(self, c0: int, terms: list[tuple[Expr, int]]) -> Range:
        lo = hi = c0
        for atom, k in terms:
            a, b = self.range_of(atom)
            lo += min(a * k, b * k)
            hi += max(a * k, b * k)
        return lo, hi

    # ---- rewriting ---------------------------------------------------------------------

    def expr(self, e: Expr) -> Expr:
        if isinstance(e, (Const, Var)):
            return e
        hit = self._memo.get(id(e))
        if hit is None or hit[0] is not e:
            # Operands are rewritten first, in post-order from an explicit stack, so the
            # rewrite of each node finds its operands' results in the memo (no recursion).
            for x in postorder([e], self._done):
                self._memo[id(x)] = (x, self._rewrite(x))
            hit = self._memo[id(e)]
        return hit[1]

    def _done(self, e: Expr) -> bool:
        hit = self._memo.get(id(e))
        return not children(e) or (hit is not None and hit[0] is e)

    def _rewrite(self, e: Expr) -> Expr:
        if isinstance(e, (Const, Var)):
            return e
        if isinstance(e, Load):
            return Load(e.buffer, self.expr(e.index), e.dtype)
        if isinstance(e, Unary):
            return Unary(e.op, self.expr(e.x), e.dtype)
        if isinstance(e, Cast):
            return Cast(self.expr(e.x), e.dtype)
        if isinstance(e, Select):
            return Select(self.expr(e.cond), self.expr(e.a), self.expr(e.b), e.dtype)
        if not isinstance(e, Binary):
            return e
        a, b = self.expr(e.a), self.expr(e.b)
        if e.dtype == INDEX and e.op in ("idiv", "mod") and isinstance(b, Const):
            return self._div_mod(e.op, a, int(b.value))
        if e.dtype == INDEX and e.op in ("add", "sub", "mul"):
            c0, terms = self.affine(Binary(e.op, a, b, e.dtype))
            return self.build(c0, terms)
        if e.dtype == INDEX and e.op in ("max", "min"):
            (alo, ahi), (blo, bhi) = self.range_of(a), self.range_of(b)
            if e.op == "max":
                return a if alo >= bhi else (b if blo >= ahi else Binary(e.op, a, b, e.dtype))
            return a if ahi <= blo else (b if bhi <= alo else Binary(e.op, a, b, e.dtype))
        if e.op in _COMPARE and a.dtype == INDEX and b.dtype == INDEX:
            known = _compare(e.op, self.range_of(a), self.range_of(b))
            if known is not None:
                return Const(known, e.dtype)
        if e.op == "and" and e.dtype.is_bool and isinstance(a, Const):  # ints: bitwise
            return b if a.value else a
        if e.op == "and" and e.dtype.is_bool and isinstance(b, Const):
            return a if b.value else b
        return Binary(e.op, a, b, e.dtype)

    def _div_mod(self, op: str, a: Expr, d: int) -> Expr:
        c0, terms = self.affine(a)
        if d > 0:
            whole = [(t, k // d) for t, k in terms if k % d == 0]
            rest = [(t, k) for t, k in terms if k % d != 0]
            rc = c0 % d
            lo, hi = self._span(rc, rest)
            if 0 <= lo and hi < d:  # the remainder cannot carry into the quotient
                if op == "idiv":
                    return self.build(c0 // d, whole)
                return self.build(rc, rest)
            if not whole and 0 <= lo and op == "mod" and hi < d:
                return self.build(rc, rest)
        return Binary(op, self.build(c0, terms), const_index(d), INDEX)

    # ---- statements --------------------------------------------------------------------

    def block(self, body: list[Stmt]) -> list[Stmt]:
        return rebuild(body, self.before, self.after)

    def before(self, s: Stmt) -> tuple[Expr, ...]:
        """``s``'s own expressions simplified, in order (a loop's range is known in its
        body, a let's in the rest of its block)."""
        if isinstance(s, Loop) and isinstance(s.extent, int):
            self.bind_range(s.var, (0, max(s.extent - 1, 0)))
        new = tuple(self.expr(e) for e in own_expressions(s))
        if isinstance(s, Let) and new[0].dtype == INDEX:
            self.bind_range(s.name, self.range_of(new[0]))
        return new

    def after(self, s: Stmt, new: tuple[Expr, ...], inner: tuple[list[Stmt], ...]) -> list[Stmt]:
        return [with_parts(s, new, inner)]  # (a GEMM is kept as it is)


_COMPARE = ("lt", "le", "gt", "ge")


def _ranged(e: Expr) -> bool:
    """Whether ``range_of`` looks at ``e`` as an operand (others are unknown)."""
    return isinstance(e, (Const, Var)) or (isinstance(e, (Binary, Select)) and e.dtype == INDEX)


def _compare(op: str, a: Range, b: Range) -> bool | None:
    """The comparison's value if the ranges decide it, else None."""
    if op == "lt":
        return True if a[1] < b[0] else (False if a[0] >= b[1] else None)
    if op == "le":
        return True if a[1] <= b[0] else (False if a[0] > b[1] else None)
    if op == "gt":
        return _compare("lt", b, a)
    return _compare("le", b, a)


def _atom_key(atom: Expr) -> object:
    """Atoms that are the same term: a variable by its name, anything else by identity."""
    return ("var", atom.name) if isinstance(atom, Var) else id(atom)


def _split_by(atom: Expr, op: str) -> tuple[object, int] | None:
    """(key of e, d) for ``atom`` = e // d or e % d (``op``), else None."""
    if isinstance(atom, Binary) and atom.op == op and isinstance(atom.b, Const):
        return _atom_key(atom.a), int(atom.b.value)
    return None


def _rejoin(terms: list[tuple[Expr, int]]) -> list[tuple[Expr, int]]:
    """(e // d) * (k d) + (e % d) * k is e * k: a loop over several dimensions collapsed
    into one (its index split by delinearize, joined again by linearize) addresses memory
    through its variable again, which the vectorizer needs. ``terms`` itself when nothing
    joins."""
    remainders = {}
    for i, (atom, _k) in enumerate(terms):
        split = _split_by(atom, "mod")
        if split is not None:
            remainders[split] = i
    if not remainders:
        return terms
    out, used = list(terms), set()
    for i, (atom, k) in enumerate(terms):
        split = _split_by(atom, "idiv")
        j = remainders.get(split) if split is not None else None
        if j is not None and j not in used and k == terms[j][1] * split[1]:
            out[i] = (atom.a, terms[j][1])
            used.add(j)
    if not used:
        return terms
    return _merge([t for n, t in enumerate(out) if n not in used])


def _merge(terms: list[tuple[Expr, int]]) -> list[tuple[Expr, int]]:

    out: dict[object, list] = {}
    order: list[object] = []
    for atom, k in terms:
        key = _atom_key(atom)
        if key in out:
            out[key][1] += k
        else:
            out[key] = [atom, k]
            order.append(key)
    return [(out[key][0], out[key][1]) for key in order if out[key][1] != 0]


def simplify_kernel(kernel: Kernel) -> Kernel:
    return Kernel(kernel.name, kernel.params, IndexSimplifier().block(kernel.body), kernel.comment)
