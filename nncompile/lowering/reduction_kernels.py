"""Lower a reduction fusion group to one Kernel: a parallel loop over the outer (kept)
index; inside it one pass over the row per reduction, then the outer-space outputs, then
a pass storing row-space outputs. Column reductions (the reduced axes outermost) are
lowered as chunked partial sums instead."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..ir import dtypes as dt
from ..ir.graph import Node
from ..ir.kernel import (
    INDEX,
    Assign,
    Binary,
    Cast,
    Expr,
    If,
    Kernel,
    Let,
    Load,
    Local,
    Loop,
    Stmt,
    Store,
    Unary,
    Var,
    ceil_div,
    const_index,
    delinearize,
    expressions,
    iadd,
    imul,
    linearize,
    postorder,
)
from ..ir.kernel_simplify import IndexSimplifier
from ..ir.symbolic import Dim, can_exceed, hint
from .exprs import combine_chunks, const

if TYPE_CHECKING:
    from .kernels import KernelBuilder


def _init(op: str, d: dt.DType) -> Expr:
    if op in ("reduce_sum", "reduce_mean"):
        return const(0, d)
    if op in ("reduce_max", "argmax"):
        return const(-np.inf if d.is_float else (False if d.is_bool else np.iinfo(d.np).min), d)
    return const(np.inf if d.is_float else (True if d.is_bool else np.iinfo(d.np).max), d)


def _combine(op: str, acc: Expr, x: Expr, d: dt.DType) -> Expr:
    if op in ("reduce_sum", "reduce_mean"):
        return Binary("add", acc, x, d)
    if d.is_bool:
        return Binary("or" if op == "reduce_max" else "and", acc, x, d)
    return Binary("max" if op == "reduce_max" else "min", acc, x, d)


def lower_reduction(kb: KernelBuilder) -> Kernel:
    g = kb.group
    row_shape, axes = g.row_shape, g.row_axes
    outer_dims = [i for i in range(len(row_shape)) if i not in axes]
    outer_shape = tuple(row_shape[i] for i in outer_dims)
    reductions = [
        n
        for n in g.nodes
        if n.op in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "argmax", "argmin")
    ]
    pre = kb.hoist_scalars(g.nodes, {id(n) for n in reductions})
    # Values over the row space (by element count: a value from before the reduction may
    # be a reshape of the rows) are stored in a pass over the rows.
    row_numel = math.prod(row_shape)
    row_outputs = [
        v for v in g.outputs if v.type.size == row_numel and v.producer not in reductions
    ]
    outer_outputs = [v for v in g.outputs if v not in row_outputs]
    # One-element outputs hoisted before the loops (an optimizer's bias corrections beside
    # a bias gradient) are stored once, at index 0, not at every outer index.
    if can_exceed(math.prod(outer_shape), 1):
        hoisted = [v for v in outer_outputs if v.type.size == 1 and id(v) in kb.elements.bound]
        pre += [Store(kb.buffer(v), const_index(0), kb.elements.at(v, [])) for v in hoisted]
        outer_outputs = [v for v in outer_outputs if v not in hoisted]

    def merge(outer: list[Expr], row: list[Expr]) -> list[Expr]:
        it_o, it_r = iter(outer), iter(row)
        return [next(it_r) if i in axes else next(it_o) for i in range(len(row_shape))]

    def row_stores(outer: list[Expr], ri: list[Expr]) -> list[Stmt]:
        start = len(kb.elements.checks)
        return kb.checked([kb.store_at(v, merge(outer, ri), row_shape) for v in row_outputs], start)

    def store_outer(outer: list[Expr]) -> list[Stmt]:
        # Index checks are placed in the loop whose variables they use.
        start = len(kb.elements.checks)
        flat = linearize(outer, outer_shape)
        outer_stores = [
            Store(kb.buffer(v), flat, kb.elements.at(v, delinearize(flat, v.shape)))
            for v in outer_outputs
        ]
        return kb.checked(outer_stores, start)

    if kb.target.row_sums == "chunks" and _is_column_reduction(
        reductions, row_outputs, row_shape, axes
    ):
        partials, stmts = _column_partials(kb, reductions, merge, row_shape, axes, outer_shape)

        def finish(outer: list[Expr]) -> list[Stmt]:
            return partials(outer) + store_outer(outer)

        return kb.kernel(pre + stmts + kb.nest(outer_shape, finish))

    def body(outer: list[Expr]) -> list[Stmt]:
        stmts: list[Stmt] = []
        for r in reductions:
            stmts += _reduction_pass(kb, r, outer, merge, row_shape, axes)
        stmts += store_outer(outer)
        if row_outputs:
            row = tuple(row_shape[i] for i in axes)
            stmts += kb.nest(row, lambda ri: row_stores(outer, ri), parallel=False, prefix="r")
        return stmts

    reduced = math.prod(row_shape[i] for i in axes)  # elements per outer index
    return kb.kernel(pre + kb.nest(outer_shape, body, work=reduced))


COLUMN_CHUNKS = 16  # a column reduction splits its rows into this many parallel chunks


def _is_column_reduction(reductions, row_outputs, row_shape, axes) -> bool:
    """Reduced axes leading and kept axes trailing (a bias gradient over NHWC data, say),
    with enough rows for the chunks: reducing column by column would read with a stride.
    (Rows fewer than columns too: a bias gradient over 256 rows of 1024 features read
    down its columns took 214 us, folded by rows 25 us; the partials add 2 * chunks / rows
    of the data's traffic.)"""
    kept = math.prod(row_shape[len(axes) :])
    rows = math.prod(row_shape[: len(axes)])
    return (
        not row_outputs
        and tuple(sorted(axes)) == tuple(range(len(axes)))
        and len(axes) < len(row_shape)
        and all(r.op not in ("argmax", "argmin") for r in reductions)
        and hint(kept) >= 2
        and hint(rows) >= 2 * COLUMN_CHUNKS
    )


def _column_partials(kb: KernelBuilder, reductions, merge, row_shape, axes, outer_shape):
    """Chunks of rows in parallel, each folding whole contiguous rows into its own partial
    results (the inner loop over the kept columns vectorizes); returns the statements and a
    function giving, at an outer index, the statements combining the chunks' partials."""
    row = tuple(row_shape[i] for i in axes)
    rows, kept = math.prod(row), math.prod(outer_shape)
    chunks = COLUMN_CHUNKS
    t_var, i_var = kb.fresh("t"), kb.fresh("i")
    t, i = Var(t_var, INDEX), Var(i_var, INDEX)
    buffers = {}
    init: list[Stmt] = []
    for r in reductions:
        d = r.inputs[0].dtype
        buf = buffers[id(r)] = kb.scratch("partial", d, chunks * kept)
        fill = _init(r.op, d)
        init += kb.nest((chunks * kept,), lambda ix, b=buf, f=fill: [Store(b, ix[0], f)])

    def fold(r_indices: list[list[Expr]], outer: list[Expr]) -> list[Stmt]:
        """partial += the rows ``r_indices`` at ``outer``, summed among themselves first."""
        start = len(kb.elements.checks)
        at = iadd(imul(t, const_index(kept)), linearize(outer, outer_shape))
        stmts: list[Stmt] = []
        for r in reductions:
            x, d, b = r.inputs[0], r.inputs[0].dtype, buffers[id(r)]
            values = [kb.elements.at(x, merge(outer, ri)) for ri in r_indices]
            while len(values) > 1:  # a tree: (x0 + x1) + (x2 + x3)
                pairs = zip(values[::2], values[1::2], strict=False)
                values = [_combine(r.op, a, c, d) for a, c in pairs] + values[len(values) & ~1 :]
            stmts.append(Store(b, at, _combine(r.op, Load(b, at, d), values[0], d)))
        return kb.checked(stmts, start)

    def per_rows(r_indices: list[list[Expr]]) -> list[Stmt]:
        return kb.nest(
            outer_shape, lambda outer: fold(r_indices, outer), parallel=False, prefix="c"
        )

    if type(row[0]) is Dim or row[0] >= chunks:
        # chunks of the leading row axis (the images of a batch): the row's other indices
        # are plain loop variables, not a flat row number divided and reduced per row
        per_lead = ceil_div(row[0], chunks)  # (at run time if symbolic)
        lead = iadd(imul(t, per_lead), i)
        real = Binary("lt", lead, const_index(row[0]), dt.bool_)
        if len(row) == 1 or type(row[-1]) is Dim:
            rest = kb.nest(row[1:], lambda ix: per_rows([[lead, *ix]]), parallel=False, prefix="r")
        else:
            rest = kb.nest(
                row[1:-1], lambda mid: _grouped_rows(kb, row[-1], lead, mid, per_rows), False, "r"
            )
        loop = Loop(t_var, chunks, [Loop(i_var, per_lead, [If(real, rest)])], parallel=True)
    else:
        per_chunk = -(-rows // chunks)
        r_flat = iadd(imul(t, const_index(per_chunk)), i)
        real = Binary("lt", r_flat, const_index(rows), dt.bool_)
        body = [If(real, per_rows([delinearize(r_flat, row)]))]
        loop = Loop(t_var, chunks, [Loop(i_var, per_chunk, body)], parallel=True)

    def partials(outer: list[Expr]) -> list[Stmt]:
        flat = linearize(outer, outer_shape)
        stmts: list[Stmt] = []
        for r in reductions:
            d = r.inputs[0].dtype
            total = combine_chunks(
                buffers[id(r)],
                flat,
                chunks,
                kept,
                d,
                lambda a, b, op=r.op, d=d: _combine(op, a, b, d),
            )
            stmts += _bind_result(kb, r, total, rows)
        return stmts

    return partials, init + [loop]


# A column reduction folds this many rows of its last row axis into the partial results
# at once (summed among themselves first): each update of a partial waits for the store of
# the one before, so one update per row was bound by that wait (64x26x26x32 summed over
# all but the channels, one Zen 5 core: 0.148 ms; 2 rows per update 0.083, 4 rows 0.053)
ROWS_PER_UPDATE = 4


def _grouped_rows(kb: KernelBuilder, last: int, lead: Expr, mid: list[Expr], per_rows):
    """The loops over the last row axis (``last`` rows) of one leading index and middle
    index ``mid``: groups of ROWS_PER_UPDATE rows, then the rows left over one by one."""
    full, tail = divmod(last, ROWS_PER_UPDATE)

    def group(g: list[Expr]) -> list[Stmt]:
        base = imul(g[0], const_index(ROWS_PER_UPDATE))
        return per_rows([[lead, *mid, iadd(base, const_index(j))] for j in range(ROWS_PER_UPDATE)])

    def single(g: list[Expr]) -> list[Stmt]:
        return per_rows([[lead, *mid, iadd(g[0], const_index(full * ROWS_PER_UPDATE))]])

    stmts = kb.nest((full,), group, parallel=False, prefix="r")
    return stmts + (kb.nest((tail,), single, parallel=False, prefix="r") if tail else [])


def _reduction_pass(
    kb: KernelBuilder, r: Node, outer: list[Expr], merge, row_shape, axes
) -> list[Stmt]:
    x, out = r.inputs[0], r.outputs[0]
    d = x.dtype
    row = tuple(row_shape[i] for i in axes)
    acc = kb.fresh("acc")
    stmts: list[Stmt] = [Local(acc, d, _init(r.op, d))]
    if r.op in ("argmax", "argmin"):
        best = kb.fresh("arg")
        stmts.append(Local(best, INDEX, const_index(0)))

        def step(ri: list[Expr]) -> list[Stmt]:
            start = len(kb.elements.checks)
            value = kb.elements.at(x, merge(outer, ri))
            cur = Var(acc, d)
            better = Binary("gt" if r.op == "argmax" else "lt", value, cur, dt.bool_)
            if d.is_float:  # the first NaN wins, as in NumPy
                nan_new = Binary("ne", value, value, dt.bool_)
                nan_old = Binary("ne", cur, cur, dt.bool_)
                better = Binary(
                    "or",
                    better,
                    Binary("and", nan_new, Unary("not", nan_old, dt.bool_), dt.bool_),
                    dt.bool_,
                )
            flat = linearize(ri, row)
            return kb.checked([If(better, [Assign(acc, value), Assign(best, flat)])], start)

        stmts += _row_loops(kb, row, axes, step)
        kb.elements.bind(
            out, Var(best, INDEX) if out.dtype == INDEX else Cast(Var(best, INDEX), out.dtype)
        )
        return stmts

    def step(ri: list[Expr]) -> list[Stmt]:
        start = len(kb.elements.checks)
        value = kb.elements.at(x, merge(outer, ri))
        return kb.checked([Assign(acc, _combine(r.op, Var(acc, d), value, d))], start)

    stmts += _row_loops(kb, row, axes, step)
    return stmts + _bind_result(kb, r, Var(acc, d), math.prod(row))


def _collapsed(row: tuple, axes) -> tuple[tuple, Callable[[list[Expr]], list[Expr]]]:
    """The loops of a pass over the reduced ``row``: reduced axes next to each other in the
    data (axes 2 and 3 of NCHW data: the image's pixels) are one loop, a long contiguous
    one the vectorizer can use (26 x 26 pixels: 16 of each 26 in vectors, the rest one by
    one); and a function from that loop nest's indices to the row's. Symbolic sizes keep
    their own loops."""
    groups: list[list[int]] = []
    for j, axis in enumerate(axes):
        joins = (
            groups
            and axes[j - 1] == axis - 1
            and type(row[j]) is not Dim
            and type(row[groups[-1][-1]]) is not Dim
        )
        if joins:
            groups[-1].append(j)
        else:
            groups.append([j])
    loops = tuple(math.prod(row[j] for j in g) for g in groups)

    def expand(index: list[Expr]) -> list[Expr]:
        out: list[Expr] = []
        for g, i in zip(groups, index, strict=True):
            out += delinearize(i, tuple(row[j] for j in g)) if len(g) > 1 else [i]
        return out

    return loops, expand


def _row_loops(kb: KernelBuilder, row: tuple, axes, step) -> list[Stmt]:
    """The loop nest of one pass over the reduced ``row``, ``step(index)`` its body: with
    neighbouring reduced axes as one loop (_collapsed) where the data's addresses come out
    as that loop's variable again, else one loop per axis (a transposed input would be
    addressed through a division and a remainder per element)."""
    loops, expand = _collapsed(row, axes)
    if len(loops) == len(row):
        return kb.nest(row, step, parallel=False, prefix="r")
    joined: list[str] = []

    def body(index: list[Expr]) -> list[Stmt]:
        joined.extend(v.name for v in index if isinstance(v, Var))
        return step(expand(index))

    stmts = kb.nest(loops, body, parallel=False, prefix="r")
    if _splits_remain(stmts, set(joined)):
        return kb.nest(row, step, parallel=False, prefix="r")
    return stmts


def _splits_remain(stmts: list[Stmt], names: set[str]) -> bool:
    """Whether, once simplified, any expression of ``stmts`` still divides (or takes a
    remainder of) an index built from the loop variables ``names``."""
    simplifier = IndexSimplifier()
    for e in expressions(stmts):
        for x in postorder([simplifier.expr(e)]):
            if isinstance(x, Binary) and x.op in ("idiv", "mod") and x.dtype == INDEX:
                if any(isinstance(v, Var) and v.name in names for v in postorder([x.a])):
                    return True
    return False


def _bind_result(kb: KernelBuilder, r: Node, total: Expr, count: int) -> list[Stmt]:
    """Name a reduction's result (a mean divides by the ``count`` reduced elements) and
    make it the value of the reduction's output in the rest of the kernel."""
    d = r.inputs[0].dtype
    if r.op == "reduce_mean" and type(count) is Dim:  # divides by the run-time count
        total = Binary("div", total, Cast(const_index(count), d), d)
    elif r.op == "reduce_mean":
        total = Binary("div", total, const(max(count, 0), d), d)
    name = kb.fresh("red")
    kb.elements.bind(r.outputs[0], Var(name, d))
    return [Let(name, total)]


# ---- contraction and opaque groups ----------------------------------------------------------
