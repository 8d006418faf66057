"""ONNX Einsum as sums, transposes and batched matmuls, operand by operand (left to
right). Ellipses and a letter repeated within one operand (diagonals) are refused."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import nncompile as nc

from ...errors import ShapeError
from ..registry import NodeContext, converter
from .math import dtype_of


def parse(ctx: NodeContext, equation: str, count: int) -> tuple[list[str], str]:
    """The operands' index letters and the output's (implicit mode: the letters used
    once, sorted, as NumPy does)."""
    eq = equation.replace(" ", "")
    if "..." in eq:
        ctx.unsupported(f"equation {equation!r}: ellipsis (...) is not supported")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != count:
        raise ShapeError(
            f"ONNX node {ctx.name!r} (Einsum): equation {equation!r} names {len(terms)} "
            f"operands, the node has {count}"
        )
    letters = "".join(terms)
    if not all(c.isalpha() for c in letters + out):
        ctx.unsupported(f"equation {equation!r}: only letters are supported as indices")
    for t in terms:
        if len(set(t)) != len(t):
            ctx.unsupported(f"equation {equation!r}: a repeated index within one operand "
                            "(a diagonal) is not supported")  # fmt: skip
    if not arrow:
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if len(set(out)) != len(out) or not set(out) <= set(letters):
        raise ShapeError(
            f"ONNX node {ctx.name!r} (Einsum): output indices {out!r} must be distinct "
            f"letters of the operands in {equation!r}"
        )
    return terms, out


def _sizes(ctx: NodeContext, terms: list[str], xs: list[Any]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for t, x in zip(terms, xs, strict=True):
        shape = np.shape(x)
        if len(shape) != len(t):
            raise ShapeError(f"ONNX node {ctx.name!r} (Einsum): operand {t!r} has shape {shape}")
        for c, n in zip(t, shape, strict=True):
            if sizes.setdefault(c, n) != n:
                raise ShapeError(
                    f"ONNX node {ctx.name!r} (Einsum): index {c!r} has sizes {sizes[c]} and {n}"
                )
    return sizes


def _sum_out(x: Any, term: str, keep: set[str]) -> tuple[Any, str]:
    """Sum the indices of ``term`` that nothing later needs."""
    gone = tuple(i for i, c in enumerate(term) if c not in keep)
    if not gone:
        return x, term
    return nc.sum(x, axis=gone), "".join(c for c in term if c in keep)


def _arrange(x: Any, term: str, order: str) -> Any:
    perm = [term.index(c) for c in order]
    return x if perm == list(range(len(term))) else nc.transpose(x, perm)


def _pair(a: Any, ta: str, b: Any, tb: str, keep: set[str], sizes: dict) -> tuple[Any, str]:
    """a (indices ta) times b (tb), summing shared indices not in ``keep``: one batched
    matmul of (batch, left, contracted) by (batch, contracted, right)."""
    a, ta = _sum_out(a, ta, keep | set(tb))
    b, tb = _sum_out(b, tb, keep | set(ta))
    batch = "".join(c for c in ta if c in tb and c in keep)
    contract = "".join(c for c in ta if c in tb and c not in keep)
    left = "".join(c for c in ta if c not in tb)
    right = "".join(c for c in tb if c not in ta)

    def size(s: str) -> int:
        return math.prod(sizes[c] for c in s)

    # no shared index: an outer product, contracting a size-1 axis
    nb, nk = size(batch), size(contract)
    a3 = nc.reshape(_arrange(a, ta, batch + left + contract), (nb, size(left), nk))
    b3 = nc.reshape(_arrange(b, tb, batch + contract + right), (nb, nk, size(right)))
    y = nc.matmul(a3, b3)
    term = batch + left + right
    return nc.reshape(y, tuple(sizes[c] for c in term)), term


@converter("Einsum", since=12)
def einsum(ctx: NodeContext) -> list[Any]:
    xs = [ctx.input(i) for i in range(ctx.num_inputs)]
    terms, out = parse(ctx, ctx.attr("equation"), len(xs))
    kinds = {dtype_of(x) for x in xs}
    if len(kinds) != 1 or next(iter(kinds)).kind != "f":
        ctx.unsupported(f"operand dtypes {sorted(map(str, kinds))}: only one float dtype")
    sizes = _sizes(ctx, terms, xs)
    y, term = _sum_out(xs[0], terms[0], set(out) | set("".join(terms[1:])))
    for k in range(1, len(xs)):
        keep = set(out) | set("".join(terms[k + 1 :]))
        y, term = _pair(y, term, xs[k], terms[k], keep, sizes)
    y, term = _sum_out(y, term, set(out))
    return [_arrange(y, term, out)]
