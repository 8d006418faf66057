"""The cases of test_reference_ops.py: ``case(op, inputs, attrs, expected, tag)`` registers
one, with its expectation built here from first principles (index loops, Python ints,
float64 math, the ONNX spec's rules), never from backends/numpy/reference.py, so a
mistake made there cannot also be made here. This module holds the registry, the data
and the independent helpers; the case modules beside it fill the registry by op family.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

F32, F64, I32, I64, BOOL = map(np.dtype, ("float32", "float64", "int32", "int64", "bool"))
FLOATS = (F32, F64)
INTS = (I32, I64)
NUMERIC = FLOATS + INTS
ALL = NUMERIC + (BOOL,)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# (rtol, atol). "math": transcendental functions (a few ulp). "acc": sums, where float32
# accumulation order legitimately differs from the exact sum computed here.
TOLERANCES = {
    "math": {F32: (1e-6, 1e-7), F64: (1e-12, 1e-15)},
    "acc": {F32: (1e-5, 1e-5), F64: (1e-12, 1e-12)},
}


@dataclass
class Case:
    op: str
    inputs: list[np.ndarray]
    attrs: dict[str, Any]
    expected: Callable[[], np.ndarray]  # lazy: a broken expectation fails one test only
    id: str
    tol: str = "exact"  # "exact" | "signed" (exact, sign of zero too) | "math" | "acc"


CASES: list[Case] = []
_SEEDS = itertools.count(1)


def case(op: str, inputs: Sequence[Any], attrs: dict, expected: Any, tag: str, tol="exact"):
    if isinstance(expected, np.ndarray):
        expected = partial(np.array, expected, copy=True)
    ins = [np.asarray(a) for a in inputs]
    tag = tag.replace(" ", "")  # ids without spaces are easier to select with -k
    CASES.append(Case(op, ins, dict(attrs), expected, f"{op}-{tag}-{len(CASES)}", tol))


# ---- data ---------------------------------------------------------------------------------


def rand(shape, dtype, low=-3.0, high=3.0) -> np.ndarray:
    rng = np.random.default_rng(next(_SEEDS))
    dtype = np.dtype(dtype)
    if dtype == BOOL:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.kind == "i":
        return np.asarray(rng.integers(int(low), int(high), size=shape, endpoint=True), dtype)
    return np.asarray(rng.uniform(low, high, size=shape), dtype)


def nonzero(shape, dtype) -> np.ndarray:
    mag = rand(shape, dtype, 1, 7) if np.dtype(dtype).kind == "i" else rand(shape, dtype, 0.5, 3)
    return np.where(rand(shape, BOOL), mag, -mag).astype(dtype)


def ties(shape, dtype) -> np.ndarray:
    # Few distinct values so comparisons and arg-reductions meet equal elements.
    return rand(shape, I64, -2, 2).astype(dtype)


# ---- independent helpers: broadcasting, index loops -----------------------------------------


def bshape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0} - {1}
        assert len(dims) <= 1, shapes
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def bindex(idx: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The element of an operand of ``shape`` that broadcasts to output index ``idx``."""
    off = len(idx) - len(shape)
    return tuple(0 if d == 1 else idx[off + k] for k, d in enumerate(shape))


def build(shape, dtype, value_at: Callable[[tuple[int, ...]], Any]) -> np.ndarray:
    out = np.zeros(shape, dtype)
    with np.errstate(all="ignore"):  # float64 -> float32 overflow to inf is intended
        for idx in np.ndindex(*shape):
            out[idx] = value_at(idx)
    return out


def elementwise(fn, out_dtype, *arrays: np.ndarray) -> np.ndarray:
    shape = bshape(*(a.shape for a in arrays))
    return build(shape, out_dtype, lambda i: fn(*(a[bindex(i, a.shape)].item() for a in arrays)))


def _exp(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _trunc_div(a, b):
    if isinstance(a, float):
        return a / b
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def _int_pow(a: int, b: float | int) -> int:
    if b >= 0 and float(b).is_integer():
        return a ** int(b)
    return math.trunc(float(a) ** b)
