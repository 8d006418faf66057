"""Four elements per thread with 16-byte loads and stores, for elementwise launches.

A collapsed grid-stride nest (collapse.py) is vectorized when its innermost extent is a
multiple of four, its body is straight-line (lets and stores), it reads what it stores
only at the element it stores (an in-place update), and some float32 access moves with
the innermost variable at unit stride from a start that is a multiple of four elements:
such an access becomes one ``float4`` load or store for four consecutive iterations.
Accesses that do not move with the innermost variable (broadcasts) are loaded once for
the four; any other access (bools, integers, strides) is done element by element.
Buffers start 16-byte aligned (allocations and arena offsets are multiples of 64 bytes),
so a vector access is aligned.

The body is written out once per lane: lane k has the innermost variable plus k, its own
copies of the lets, and the vector loads' k-th components.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...ir import dtypes as dt
from ...ir.kernel import (
    INDEX,
    Binary,
    Cast,
    Const,
    Expr,
    Let,
    Load,
    Select,
    Stmt,
    Store,
    Unary,
    Var,
)
from .collapse import Collapsed, affine, loads_in, reads_only_own_elements, stored_indices

LANES = 4
COMPONENTS = "xyzw"


@dataclass
class VectorBody:
    loads: list[Load]  # one float4 each, named nc_v<i>, loaded before the lanes
    lanes: list[list[Stmt]]  # the body for each lane
    stores: list[tuple[Store, list[str]]] = field(default_factory=list)  # float4 stores


def vectorize(nest: Collapsed, memory: dict[str, str]) -> VectorBody | None:
    """The nest's body written for four lanes, or None when it does not qualify."""
    inner, extent = nest.loops[-1]
    if nest.total == 0 or extent % LANES or not nest.body:
        return None
    if not all(isinstance(s, (Let, Store)) for s in nest.body):
        return None
    stores = [s for s in nest.body if isinstance(s, Store)]
    loads: list[Load] = []
    for s in nest.body:
        for e in [s.value] if isinstance(s, Let) else [s.index, s.value]:
            loads += loads_in(e)
    if not reads_only_own_elements(loads, stored_indices(stores, memory), memory):
        return None
    loop_vars = {v for v, _ in nest.loops}
    vector_loads = _unique(
        [ld for ld in loads if _vector_access(ld.index, ld.dtype, inner, loop_vars)]
    )
    vector_stores = [
        s
        for s in nest.body
        if isinstance(s, Store) and _vector_access(s.index, s.value.dtype, inner, loop_vars)
    ]
    if not vector_loads and not vector_stores:
        return None
    names = {(ld.buffer, ld.index): f"nc_v{i}" for i, ld in enumerate(vector_loads)}
    lets = {s.name for s in nest.body if isinstance(s, Let)}
    number = {id(s): i for i, s in enumerate(vector_stores)}
    out = VectorBody(vector_loads, [], [(s, []) for s in vector_stores])
    for k in range(LANES):
        rewrite = _LaneRewriter(k, inner, lets, names)
        body: list[Stmt] = []
        for s in nest.body:
            if isinstance(s, Let):
                body.append(Let(f"{s.name}_{k}", rewrite(s.value)))
            elif id(s) in number:  # this lane's value, stored with the others' after
                name = f"nc_w{number[id(s)]}_{k}"
                out.stores[number[id(s)]][1].append(name)
                body.append(Let(name, rewrite(s.value)))
            else:
                body.append(Store(s.buffer, rewrite(s.index), rewrite(s.value)))
        out.lanes.append(body)
    return out


def _vector_access(index: Expr, dtype: dt.DType, inner: str, loop_vars: set[str]) -> bool:
    """A float32 access at unit stride in ``inner`` from a multiple of four elements,
    indexed by the nest's loop variables only (it is addressed before the lanes' lets)."""
    if dtype != dt.float32:
        return False
    terms = affine(index)
    if terms is None or terms.get(inner) != 1:
        return False
    if any(v and v not in loop_vars for v in terms):
        return False
    return all(c % LANES == 0 for v, c in terms.items() if v != inner)


def _unique(loads: list[Load]) -> list[Load]:
    seen: dict[tuple, Load] = {}
    for ld in loads:
        seen.setdefault((ld.buffer, ld.index), ld)
    return list(seen.values())


class _LaneRewriter:
    """An expression as lane ``k`` computes it. Subexpressions that do not depend on the
    lane stay the same objects, so the printer computes them once for all four lanes."""

    def __init__(self, k: int, inner: str, lets: set[str], vector_names: dict[tuple, str]):
        self.k, self.inner, self.lets, self.vector_names = k, inner, lets, vector_names
        self.done: dict[int, Expr] = {}

    def __call__(self, e: Expr) -> Expr:
        if id(e) not in self.done:
            self.done[id(e)] = self._rewrite(e)
        return self.done[id(e)]

    def _rewrite(self, e: Expr) -> Expr:
        if isinstance(e, Const):
            return e
        if isinstance(e, Var):
            if e.name == self.inner and self.k:
                return Binary("add", e, Const(self.k, INDEX), INDEX)
            if e.name in self.lets:
                return Var(f"{e.name}_{self.k}", e.dtype)
            return e
        if isinstance(e, Load):
            name = self.vector_names.get((e.buffer, e.index))
            if name is not None:
                return Var(f"{name}.{COMPONENTS[self.k]}", e.dtype)
            index = self(e.index)
            return e if index is e.index else Load(e.buffer, index, e.dtype)
        if isinstance(e, Unary):
            x = self(e.x)
            return e if x is e.x else Unary(e.op, x, e.dtype)
        if isinstance(e, Cast):
            x = self(e.x)
            return e if x is e.x else Cast(x, e.dtype)
        if isinstance(e, Binary):
            a, b = self(e.a), self(e.b)
            return e if (a is e.a and b is e.b) else Binary(e.op, a, b, e.dtype)
        if isinstance(e, Select):
            c, a, b = self(e.cond), self(e.a), self(e.b)
            if c is e.cond and a is e.a and b is e.b:
                return e
            return Select(c, a, b, e.dtype)
        raise TypeError(f"unknown expression {e!r}")
