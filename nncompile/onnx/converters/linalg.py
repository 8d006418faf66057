"""Det: the determinant of each trailing square matrix by Gaussian elimination with
partial pivoting (as LAPACK's getrf, which np.linalg.det uses), unrolled over the
(static) matrix size; the row swaps are gathers chosen by argmax, so the result
differentiates and compiles like the rest."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .math import const, float_input
from .shape import invalid

# elimination is unrolled: n steps of O(n^2) ops each
_MAX_SIZE = 64


@converter("Det", since=11)
def det(ctx: NodeContext) -> list[Any]:
    a = nc.as_tensor(float_input(ctx, 0))
    shape = tuple(a.shape)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        invalid(ctx, f"input of shape {shape} (needs (..., M, M))")
    n = shape[-1]
    if n > _MAX_SIZE:
        ctx.unsupported(f"{n} x {n} matrices (the elimination is unrolled up to {_MAX_SIZE})")
    if n == 0:
        return [np.ones(shape[:-2], np.dtype(a.dtype))]  # the empty product
    rows = np.arange(n, dtype=np.int64)
    result: Any = None
    for k in range(n):
        column = nc.abs(a[..., k:, k])  # (..., n - k)
        p = nc.add(nc.astype(nc.argmax(column, axis=-1), np.int64), np.int64(k))  # (...)
        pe = nc.expand_dims(p, -1)  # (..., 1)
        order = nc.where(
            nc.equal(rows, np.int64(k)), pe, nc.where(nc.equal(rows, pe), np.int64(k), rows)
        )  # (..., n): rows k and p swapped
        a = nc.take_along_axis(a, nc.broadcast_to(nc.expand_dims(order, -1), shape), axis=-2)
        pivot = a[..., k, k]
        flip = nc.where(nc.equal(p, np.int64(k)), const(1, pivot), const(-1, pivot))
        step = nc.multiply(pivot, flip)
        result = step if result is None else nc.multiply(result, step)
        if k == n - 1:
            break
        safe = nc.where(nc.equal(pivot, const(0, pivot)), const(1, pivot), pivot)
        factors = nc.divide(a[..., k + 1 :, k], nc.expand_dims(safe, -1))  # (..., n-k-1)
        lower = nc.subtract(
            a[..., k + 1 :, :],
            nc.multiply(nc.expand_dims(factors, -1), nc.expand_dims(a[..., k, :], -2)),
        )
        a = nc.concatenate([a[..., : k + 1, :], lower], axis=-2)
    return [result]
