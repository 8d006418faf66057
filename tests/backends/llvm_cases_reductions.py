"""LLVM op cases for reductions (sum/mean/max/min over every axis choice, the chunked
column-reduction path, arg-reductions), registered in llvm_cases.CASES and run by
test_llvm_ops.py (and tests/gpu)."""

from __future__ import annotations

import math

import numpy as np

import nncompile as nc

from . import llvm_support as S
from .llvm_cases import case

F32, F64, I32, I64, BOOL = S.F32, S.F64, S.I32, S.I64, S.BOOL
acc, data, rng_for = S.acc, S.data, S.rng_for


# ---- reductions -------------------------------------------------------------------------


REDUCE_AXES = [
    (None, False),
    (0, True),
    (1, False),
    (2, False),
    (2, True),
    ((0, 2), False),
    ((1, 2), True),
    ((0, 1), False),
]


@case("reduce", "float32", "float64")
def _reduce_float(dtype):
    rng = rng_for("reduce", dtype)
    x = data(rng, (3, 5, 17), dtype)
    one = data(rng, (1, 5, 1), dtype)
    empty = np.zeros((0, 5), dtype)
    tol = {}

    def fn(x, one, empty):
        out = {}
        for axes, keep in REDUCE_AXES:
            k = f"{axes}{'k' if keep else ''}"
            n = x.size if axes is None else math.prod(x.shape[a] for a in np.atleast_1d(axes))
            out[f"sum/{k}"] = nc.sum(x, axes, keep)
            out[f"mean/{k}"] = nc.mean(x, axes, keep)
            out[f"max/{k}"] = nc.max(x, axes, keep)
            out[f"min/{k}"] = nc.min(x, axes, keep)
            tol[f"sum/{k}"] = acc(dtype, n, 3.0)
            tol[f"mean/{k}"] = acc(dtype, n, 3.0 / n)
        for name, f in (("sum", nc.sum), ("mean", nc.mean), ("max", nc.max), ("min", nc.min)):
            out[f"{name}/one"] = f(one, (0, 2))
            out[f"{name}/one_all"] = f(one)
            out[f"{name}/empty_axis0"] = f(empty, 0)  # 0, nan, -inf, inf
            out[f"{name}/empty_axis1"] = f(empty, 1, True)
        out["sum/nothing"] = nc.sum(x, ())
        return out

    fn(*(nc.as_tensor(a) for a in (x, one, empty)))  # fills tol
    return fn, (x, one, empty), {**tol, "*": "arith"}


@case("reduce", "int32", "int64", "bool")
def _reduce_int(dtype):
    rng = rng_for("reduce", dtype)
    x = data(rng, (3, 5, 17), dtype, -1000, 1000)
    empty = np.zeros((0, 5), dtype)

    def fn(x, empty):
        out = {}
        for axes, keep in REDUCE_AXES[::2]:
            k = f"{axes}{'k' if keep else ''}"
            if dtype != "bool":
                out[f"sum/{k}"] = nc.sum(x, axes, keep)
            out[f"max/{k}"] = nc.max(x, axes, keep)
            out[f"min/{k}"] = nc.min(x, axes, keep)
        out["max/empty"] = nc.max(empty, 0)  # the dtype's lowest value
        out["min/empty"] = nc.min(empty, 0)
        out["sum/empty"] = nc.sum(empty, 0)
        return out

    return fn, (x, empty), "exact"


# reduced axes leading, more rows than kept columns: the chunked column-reduction path
COLUMN_REDUCTIONS = [
    ((37, 5), (0,)),
    ((6, 7, 3), (0, 1)),
    ((40, 3, 1), (0,)),
    ((33, 2, 4), (0,)),
    ((8, 6, 2), (0, 1)),  # 48 rows: every one of the 16 chunks has rows
]


@case("column-reduce", "float32", "float64", "int32", "int64", "bool")
def _column_reduce(dtype):
    rng = rng_for("column-reduce", dtype)
    xs = [data(rng, shape, dtype, -1000, 1000) for shape, _ in COLUMN_REDUCTIONS]
    if np.dtype(dtype).kind == "f":
        xs[0][3, 1], xs[0][36, 4] = np.nan, np.inf  # NaN wins max/min; inf in a sum
    tol = {}

    def fn(*xs):
        out = {}
        for i, (x, (shape, axes)) in enumerate(zip(xs, COLUMN_REDUCTIONS, strict=True)):
            keep = i == 2
            out[f"max/{i}"] = nc.max(x, axes, keep)
            out[f"min/{i}"] = nc.min(x, axes, keep)
            if dtype == "bool":
                continue
            n = math.prod(shape[a] for a in axes)
            out[f"sum/{i}"] = nc.sum(x, axes, keep)
            tol[f"sum/{i}"] = acc(dtype, n, 1000.0)
            if np.dtype(dtype).kind == "f":
                # two reductions of one input and a fused epilogue, as in a bias gradient
                out[f"mean/{i}"] = nc.mean(x * x, axes, keep) * 2 - nc.sum(x, axes, keep)
                tol[f"mean/{i}"] = acc(dtype, n, 1e6)
        return out

    fn(*(nc.as_tensor(a) for a in xs))  # fills tol
    return fn, tuple(xs), {**tol, "*": "exact"}


@case("arg", "float32", "float64", "int32", "int64")
def _arg(dtype):
    rng = rng_for("arg", dtype)
    ties = data(rng, (3, 17, 33), I64, -2, 2).astype(dtype)  # many equal maxima
    x = data(rng, (5, 33), dtype, -1000, 1000)
    if np.dtype(dtype).kind == "f":
        special = np.array(
            [[1, np.nan, 3, np.nan], [np.inf, 1, np.inf, 2], [-np.inf] * 4, [0, -0.0, 0, np.nan]],
            dtype,
        )
    else:
        info = np.iinfo(dtype)
        special = np.array([[info.min] * 4, [info.max, 0, info.max, 1], [0, 0, 0, 0]], dtype)

    def fn(ties, x, special):
        out = {}
        for axis in (None, 0, 1, 2, -1):
            out[f"argmax/{axis}"] = nc.argmax(ties, axis)
            out[f"argmin/{axis}"] = nc.argmin(ties, axis)
        out["argmax/keep"] = nc.argmax(ties, 1, keepdims=True)
        out["argmin/keep"] = nc.argmin(x, 0, keepdims=True)
        for axis in (0, 1):
            out[f"argmax/special{axis}"] = nc.argmax(special, axis)
            out[f"argmin/special{axis}"] = nc.argmin(special, axis)
        return out

    return fn, (ties, x, special), "exact"


@case("arg-bool")
def _arg_bool():
    rng = rng_for("arg-bool")
    x = data(rng, (4, 17), BOOL)
    x[0] = False

    def fn(x):
        return {"argmax": nc.argmax(x, 1), "argmin": nc.argmin(x, 0), "all": nc.argmax(x)}

    return fn, (x,), "exact"
