"""Collapsing a nest of independent loops into one flat index space for a grid-stride
launch.

The CPU lowering marks only the outermost loop of an elementwise nest as parallel (two
cores need no more), so a launch over it would give a GPU as many threads as the
outermost extent, often the batch (64 threads for a convolution over 1.4M outputs).
A perfect nest under that loop is collapsed into one loop over the product of the
extents when its iterations provably do not interact:

- every store's index is an affine function of the loop variables that gives distinct
  iterations distinct elements (mixed-radix strides: each stride exceeds the span of all
  smaller ones), with every collapsed variable in it;
- stores to one buffer at several indices (a pooling window's elements) never meet: the
  union over all iterations has no repeats (enumerated, for nests up to 2^22 stores);
- a buffer the body stores is read, if at all, only at an index the body stores (an
  element of its own); buffers are compared by the memory they name (a donated output
  shares its input's);
- the body assigns no scalar declared outside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...ir.kernel import (
    Assign,
    Binary,
    Const,
    Expr,
    Gemm,
    Let,
    Load,
    Local,
    Loop,
    Stmt,
    Store,
    Var,
    as_size,
)
from ...ir.kernel import children as expr_children
from ...ir.kernel_visit import own_expressions, walk
from ...ir.symbolic import Dim, can_exceed, hint


@dataclass(frozen=True)
class Collapsed:
    loops: list[tuple[str, int | Dim]]  # (variable, extent), outermost first
    body: list[Stmt]

    @property
    def total(self) -> int | Dim:
        return math.prod(extent for _, extent in self.loops)


def collapse(loop: Loop, physical: dict[str, str] | None = None) -> Collapsed:
    """The longest perfect nest under ``loop`` (itself independent) safe to run as one
    flat loop; just ``loop`` when nothing below it qualifies. ``physical``: buffer ->
    the buffer whose memory it uses (Program.physical)."""
    memory = physical or {}
    # Only the outermost extent may be the symbolic batch size: its variable then has the
    # largest stride of every store, and the proof below, made at the hinted size, holds
    # for every size (what it checks of the inner loops does not depend on that extent).
    first = as_size(loop.extent)
    loops = [(loop.var, first)]
    body = loop.body
    best = Collapsed(list(loops), body)
    while (
        can_exceed(first, 0)
        and len(body) == 1
        and isinstance(body[0], Loop)
        and isinstance(body[0].extent, int)
        and body[0].extent > 0  # an empty nest stays as it is: it runs nothing
    ):
        inner = body[0]
        loops.append((inner.var, inner.extent))
        body = inner.body
        hinted = {v: hint(e) for v, e in loops}
        if _independent([v for v, _ in loops], body, hinted, memory):
            best = Collapsed(list(loops), body)
    return best


# ---- the proof ---------------------------------------------------------------------------


def _independent(
    nest_vars: list[str], body: list[Stmt], extents: dict[str, int], memory: dict[str, str]
) -> bool:
    stores: list[Store] = []
    loads: list[Load] = []
    declared: set[str] = set()
    assigned: set[str] = set()
    inner_extents = dict(extents)
    if not _walk(body, stores, loads, declared, assigned, inner_extents):
        return False
    if assigned - declared:
        return False  # updates a scalar that outlives one iteration
    for s in stores:
        terms = affine(s.index)
        if terms is None or not all(terms.get(v) for v in nest_vars):
            return False
        if not _injective(terms, inner_extents):
            return False
    written = stored_indices(stores, memory)
    for indices in written.values():
        if len(indices) > 1 and not _disjoint([affine(i) for i in indices], inner_extents):
            return False
    return reads_only_own_elements(loads, written, memory)


def stored_indices(stores: list[Store], memory: dict[str, str]) -> dict[str, list[Expr]]:
    """Memory (buffers sharing it count as one) -> the distinct indices stored there."""
    written: dict[str, list[Expr]] = {}
    for s in stores:
        at = written.setdefault(memory.get(s.buffer, s.buffer), [])
        if s.index not in at:
            at.append(s.index)
    return written


def reads_only_own_elements(
    loads: list[Load], written: dict[str, list[Expr]], memory: dict[str, str]
) -> bool:
    """Every load of stored memory is at an index the body stores: an iteration (or a
    lane) reads only elements of its own."""
    for ld in loads:
        at = written.get(memory.get(ld.buffer, ld.buffer))
        if at is not None and ld.index not in at:
            return False
    return True


def _walk(stmts, stores, loads, declared, assigned, extents) -> bool:
    """Collect the body's stores, loads, declared and assigned scalars; False for
    anything this analysis does not understand (a loop with a computed extent, a GEMM)."""
    for s in walk(stmts):
        if isinstance(s, Gemm) or (isinstance(s, Loop) and not isinstance(s.extent, int)):
            return False
        if isinstance(s, Store):
            stores.append(s)
        elif isinstance(s, (Let, Local)):
            declared.add(s.name)
        elif isinstance(s, Assign):
            assigned.add(s.name)
        elif isinstance(s, Loop):
            extents[s.var] = s.extent
        for e in own_expressions(s):
            loads += loads_in(e)
    return True


def loads_in(e: Expr) -> list[Load]:
    """Every load in an expression (a load's index included), in order, each load object
    once: expressions are DAGs (``x * x`` repeated is exponential as a tree)."""
    found: list[Load] = []
    seen: set[int] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, Load):
            found.append(x)
        stack.extend(reversed(expr_children(x)))
    return found


def affine(e: Expr) -> dict[str, int] | None:
    """{variable: coefficient} with the constant under "" , or None if not affine."""
    if isinstance(e, Const):
        return {"": int(e.value)} if not e.dtype.is_float else None
    if isinstance(e, Var):
        return {e.name: 1}
    if isinstance(e, Binary) and e.op in ("add", "sub"):
        a, b = affine(e.a), affine(e.b)
        if a is None or b is None:
            return None
        sign = 1 if e.op == "add" else -1
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0) + sign * v
        return out
    if isinstance(e, Binary) and e.op == "mul":
        a, b = affine(e.a), affine(e.b)
        if a is None or b is None:
            return None
        for const_side, other in ((a, b), (b, a)):
            if set(const_side) <= {""}:
                c = const_side.get("", 0)
                return {k: v * c for k, v in other.items()}
        return None
    return None


ENUMERATE_LIMIT = 1 << 22


def _disjoint(indices: list[dict[str, int]], extents: dict[str, int]) -> bool:
    """Whether several affine indices over the same box never produce one element twice
    (each is injective already): every element they reach, enumerated."""
    names = sorted({v for terms in indices for v in terms if v})
    if any(v not in extents for v in names):
        return False
    shape = [extents[v] for v in names]
    if len(indices) * math.prod(shape) > ENUMERATE_LIMIT:
        return False
    grids = np.meshgrid(*[np.arange(n, dtype=np.int64) for n in shape], indexing="ij")
    reached = [
        sum((terms.get(v, 0) * g for v, g in zip(names, grids, strict=True)), terms.get("", 0))
        for terms in indices
    ]
    flat = np.concatenate([np.broadcast_to(r, shape).ravel() for r in reached])
    return np.unique(flat).size == flat.size


def _injective(terms: dict[str, int], extents: dict[str, int]) -> bool:
    """Whether sum(coef * var) over the box 0 <= var < extent never repeats a value:
    sorted by |coef|, each one exceeds the largest total the smaller ones can reach."""
    reach = 0
    for var, coef in sorted(((v, c) for v, c in terms.items() if v and c), key=lambda t: abs(t[1])):
        if var not in extents:
            return False  # not a loop variable (a let): unknown range
        if abs(coef) <= reach:
            return False
        reach += abs(coef) * (extents[var] - 1)
    return True
