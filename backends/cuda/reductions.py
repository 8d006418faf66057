"""Reductions a thread block runs together: recognizing them in the kernel IR.

A reduction nest is a nest of counted loops whose innermost body holds only ``let`` and
``acc = acc <op> value`` statements, where each ``acc`` is a local declared with the
identity of ``op`` (0 for add, -inf for max, ...) and no value reads an accumulator. The
threads of a block then split the nest's iterations, each accumulating a partial from
the identity, and ``nc_block_reduce`` combines the partials: the same result up to the
order of the combination (which the tolerances of sums already allow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...ir import dtypes as dt
from ...ir.kernel import (
    Assign,
    Binary,
    Const,
    Expr,
    Let,
    Local,
    Loop,
    Stmt,
    Var,
    as_size,
    postorder,
)
from ...ir.symbolic import Dim, can_exceed
from .emit import binary, reg_type

OPS = ("add", "max", "min")


@dataclass(frozen=True)
class Nest:
    loops: list[tuple[str, int | Dim]]  # (variable, extent), outermost first
    body: list[Stmt]  # lets and accumulations, innermost
    accumulators: dict[str, tuple[str, dt.DType]]  # accumulator -> (op, dtype)


def identity(op: str, d: dt.DType) -> float | int | None:
    if d.is_bool:
        return None
    if op == "add":
        return 0
    if d.is_float:
        return -math.inf if op == "max" else math.inf
    info = (-(2**63), 2**63 - 1) if d.name == "int64" else (-(2**31), 2**31 - 1)
    return info[0] if op == "max" else info[1]


def _reads(e: Expr, names: set[str]) -> bool:
    # Each expression object once: expressions are DAGs (``x * x`` repeated is
    # exponential as a tree).
    return any(isinstance(x, Var) and x.name in names for x in postorder([e]))


def _counted(loop: Loop) -> bool:
    """A loop of a known, non-empty extent (a fixed one, or the batch size n)."""
    size = as_size(loop.extent)
    return size is not None and can_exceed(size, 0)


def reduction_nest(s: Stmt, locals_: dict[str, Local]) -> Nest | None:
    loops: list[tuple[str, int | Dim]] = []
    while isinstance(s, Loop) and _counted(s):
        loops.append((s.var, as_size(s.extent)))
        if len(s.body) == 1 and isinstance(s.body[0], Loop):
            s = s.body[0]
            continue
        body = s.body
        break
    else:
        return None
    accumulators: dict[str, str] = {}
    for stmt in body:
        if isinstance(stmt, Assign):
            v = stmt.value
            local = locals_.get(stmt.name)
            if (
                local is None
                or not isinstance(v, Binary)
                or v.op not in OPS
                or not (isinstance(v.a, Var) and v.a.name == stmt.name)
                or accumulators.get(stmt.name, (v.op,))[0] != v.op
            ):
                return None
            init = local.init
            want = identity(v.op, local.dtype)
            if want is None or not isinstance(init, Const) or init.value != want:
                return None
            accumulators[stmt.name] = (v.op, local.dtype)
        elif not isinstance(stmt, Let):
            return None
    if not accumulators:
        return None
    names = set(accumulators)
    for stmt in body:
        value = stmt.value.b if isinstance(stmt, Assign) else stmt.value
        if _reads(value, names):
            return None
    return Nest(loops, body, accumulators)


def combine_function(op: str, d: dt.DType) -> tuple[str, str]:
    """(name, definition) of the device function combining two partials."""
    t = reg_type(d)
    name = f"nc_combine_{op}_{t}"
    body = binary(op, "a", "b", d)
    definition = f"__device__ __forceinline__ {t} {name}({t} a, {t} b) {{ return {body}; }}"
    return name, definition
