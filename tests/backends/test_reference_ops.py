"""Every primitive's NumPy reference, checked against independent expectations.

Expected values are built here from first principles (index loops, Python ints, float64
math, the ONNX spec's rules), never from backends/numpy/reference.py, so a mistake made
there cannot also be made here. Each case runs through ``call_reference`` and through the
eager op-level API ``dispatch.bind``.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pytest
from nncompile.backends.numpy import call_reference
from nncompile.ir import all_ops, get_op
from nncompile.ir.symbolic import bound_batch

import nncompile as nc
from nncompile.dispatch import bind

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


# ---- elementwise ------------------------------------------------------------------------------

UNARY_SHAPES = [(), (7,), (2, 3, 4), (0, 3), (1, 1, 5)]
BINARY_SHAPES = [
    ((3, 1), (1, 4)),
    ((2, 3, 4), (4,)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((), ()),
    ((0, 3), (1, 3)),
    ((1,), (0,)),
    ((5,), (5,)),
]


def _positive(shape, dtype):
    return rand(shape, dtype, 0.1, 5)


def _unit(shape, dtype):  # inside the domain of arcsin, arccos, arctanh
    return rand(shape, dtype, -0.95, 0.95)


def _above_one(shape, dtype):  # inside arccosh's domain
    return rand(shape, dtype, 1.05, 5)


# op -> (dtypes, scalar function, tolerance, data maker)
UNARY = {
    "neg": (NUMERIC, operator.neg, "exact", rand),
    "abs": (NUMERIC, abs, "exact", rand),
    "sign": (NUMERIC, lambda v: (v > 0) - (v < 0), "exact", ties),
    "relu": (NUMERIC, lambda v: v if v > 0 else 0, "exact", rand),
    "exp": (FLOATS, _exp, "math", rand),
    "log": (FLOATS, math.log, "math", _positive),
    "sqrt": (FLOATS, math.sqrt, "exact", _positive),  # IEEE: correctly rounded
    "reciprocal": (FLOATS, lambda v: 1 / v, "exact", nonzero),
    "tanh": (FLOATS, math.tanh, "math", rand),
    "sigmoid": (FLOATS, lambda v: 1 / (1 + _exp(-v)), "math", rand),
    "erf": (FLOATS, math.erf, "math", rand),
    "hardswish": (FLOATS, lambda v: v * min(max(v + 3, 0), 6) / 6, "math", rand),  # float64
    "sin": (FLOATS, math.sin, "math", rand),
    "cos": (FLOATS, math.cos, "math", rand),
    "tan": (FLOATS, math.tan, "math", rand),
    "arcsin": (FLOATS, math.asin, "math", _unit),
    "arccos": (FLOATS, math.acos, "math", _unit),
    "arctan": (FLOATS, math.atan, "math", rand),
    "sinh": (FLOATS, math.sinh, "math", rand),
    "cosh": (FLOATS, math.cosh, "math", rand),
    "arcsinh": (FLOATS, math.asinh, "math", rand),
    "arccosh": (FLOATS, math.acosh, "math", _above_one),
    "arctanh": (FLOATS, math.atanh, "math", _unit),
    "logical_not": ((BOOL,), operator.not_, "exact", rand),
    "bitwise_not": (INTS, operator.invert, "exact", rand),  # Python ints: two's complement
    "stop_gradient": (ALL, lambda v: v, "exact", rand),  # the identity (no gradient)
}

for _op, (_dtypes, _fn, _tol, _make) in UNARY.items():
    for _dtype, _shape in itertools.product(_dtypes, UNARY_SHAPES):
        _x = _make(_shape, _dtype)
        case(_op, [_x], {}, partial(elementwise, _fn, _dtype, _x), f"{_dtype}{_shape}", _tol)

# IEEE special values: overflow, infinities, NaN, the two sigmoid branches. Expected
# values are float64 results, rounded to the tested dtype.
_SPECIAL_UNARY = {
    "exp": (
        [-np.inf, -200, 0, 100, np.inf, np.nan],
        [0, math.exp(-200), 1, math.exp(100)] + [np.inf, np.nan],
    ),
    "log": ([0, -1, np.inf, 1], [-np.inf, np.nan, np.inf, 0]),
    "sqrt": ([-1, 0, np.inf, 4], [np.nan, 0, np.inf, 2]),
    "reciprocal": ([0, -0.0, np.inf, -4], [np.inf, -np.inf, 0, -0.25]),
    "tanh": ([-np.inf, -20, 0, 20, np.inf], [-1, math.tanh(-20), 0, math.tanh(20), 1]),
    "hardswish": (
        [-np.inf, -4, -3, -1.5, 0, 1.5, 3, 4, np.inf, np.nan],
        [np.nan, -0.0, -0.0, -0.375, 0, 1.125, 3, 4, np.inf, np.nan],
    ),
    "erf": ([-np.inf, -6, 0, 6, np.inf, np.nan], [-1, math.erf(-6), 0, math.erf(6), 1, np.nan]),
    "sigmoid": (
        [-1000, -100, -20, 0, 20, 100, 1000, -np.inf, np.inf],
        [0, 1 / (1 + math.exp(100)), 1 / (1 + math.exp(20)), 0.5]
        + [1 / (1 + math.exp(-20)), 1, 1, 0, 1],
    ),
}
for _op, (_x, _y) in _SPECIAL_UNARY.items():
    for _dtype in FLOATS:
        with np.errstate(over="ignore"):  # exp(100) overflows float32 to inf on purpose
            _want = np.array(_y, np.float64).astype(_dtype)
        case(_op, [np.array(_x, _dtype)], {}, _want, f"special-{_dtype}", "math")

# op -> (dtypes, scalar function, result is bool, tolerance, data maker)
BINARY = {
    "add": (NUMERIC, operator.add, False, rand),
    "sub": (NUMERIC, operator.sub, False, rand),
    "mul": (NUMERIC, operator.mul, False, rand),
    "div": (NUMERIC, _trunc_div, False, None),
    "maximum": (NUMERIC, max, False, ties),
    "minimum": (NUMERIC, min, False, ties),
    "logical_and": ((BOOL,), lambda a, b: a and b, False, rand),
    "logical_or": ((BOOL,), lambda a, b: a or b, False, rand),
    "logical_xor": ((BOOL,), operator.ne, False, rand),
    "bitwise_and": (INTS, operator.and_, False, rand),
    "bitwise_or": (INTS, operator.or_, False, rand),
    "bitwise_xor": (INTS, operator.xor, False, rand),
    "equal": (ALL, operator.eq, True, ties),
    "not_equal": (ALL, operator.ne, True, ties),
    "less": (NUMERIC, operator.lt, True, ties),
    "less_equal": (NUMERIC, operator.le, True, ties),
    "greater": (NUMERIC, operator.gt, True, ties),
    "greater_equal": (NUMERIC, operator.ge, True, ties),
}

for _op, (_dtypes, _fn, _is_cmp, _make) in BINARY.items():
    for _dtype, (_sa, _sb) in itertools.product(_dtypes, BINARY_SHAPES):
        _a = (_make or rand)(_sa, _dtype)
        _b = (_make or nonzero)(_sb, _dtype)  # div: never divide by zero (UB for ints)
        _out = BOOL if _is_cmp else _dtype
        _exp_fn = partial(elementwise, _fn, _out, _a, _b)
        case(_op, [_a, _b], {}, _exp_fn, f"{_dtype}{_sa}{_sb}")

# Bitwise ops on every bit, the sign bit and the extremes included.
_BITWISE = {"bitwise_and": operator.and_, "bitwise_or": operator.or_, "bitwise_xor": operator.xor}
for _dtype in INTS:
    _info = np.iinfo(_dtype)
    _a = np.array([0, -1, _info.min, _info.max, 0x5A5A, -0x1234], _dtype)
    _b = np.array([-1, _info.min, _info.max, 0x0F0F, -0x5A5B, 7], _dtype)
    _fn = partial(elementwise, operator.invert, _dtype, _a)
    case("bitwise_not", [_a], {}, _fn, f"edges-{_dtype}")
    for _op, _bits in _BITWISE.items():
        case(_op, [_a, _b], {}, partial(elementwise, _bits, _dtype, _a, _b), f"edges-{_dtype}")

# ONNX Div on integers truncates toward zero; NumPy's // floors.
for _dtype in INTS:
    _a = np.array([-7, 7, -7, 7, 6, -6, 0, 1, -1, -9], _dtype)
    _b = np.array([2, 2, -2, -2, 3, 3, 5, -3, 3, -3], _dtype)
    _want = np.array([-3, 3, 3, -3, 2, -2, 0, 0, 0, 3], _dtype)
    case("div", [_a, _b], {}, _want, f"trunc-{_dtype}")
for _dtype in FLOATS:
    case(
        "div",
        [np.array([1, -1, 0, 3], _dtype), np.array([0, 0, 0, -0.0], _dtype)],
        {},
        np.array([np.inf, -np.inf, np.nan, -np.inf], _dtype),
        f"by-zero-{_dtype}",
    )

# Pow keeps the base's dtype whatever the exponent's dtype.
_POW = [
    (rand((3, 1), F32, 0.1, 3), rand((1, 4), F32), "math"),
    (nonzero((2, 3, 4), F64), rand((4,), I32), "math"),
    (rand((2, 3), F32, 0.1, 3), rand((), F64), "math"),
    (rand((), F64, 0.1, 3), rand((), F64), "math"),
    (rand((0, 3), F32, 0.1, 3), rand((1, 3), F32), "math"),
    (rand((5,), I32, -4, 4), rand((5,), I64, 0, 5), "exact"),
    (rand((3, 1), I64, -4, 4), rand((1, 4), I32, 0, 5), "exact"),
    (np.array([2, -1, 1, -2, 3, 5], I64), np.array([-1, -1, -2, -1, 0, -2], I64), "exact"),
    (np.array([4, 2, 9, 8], I32), np.array(0.5, F32), "exact"),  # truncated back to int
    (np.array([2, 3], I32), np.array([3.0, 2.0], F64), "exact"),
]
for _a, _b, _tol in _POW:
    _fn = _int_pow if _a.dtype.kind == "i" else operator.pow
    _tag = f"{_a.dtype}{_a.shape}^{_b.dtype}{_b.shape}"
    case("pow", [_a, _b], {}, partial(elementwise, _fn, _a.dtype, _a, _b), _tag, _tol)
case(
    "pow",
    [np.array([2, -1, 1, -2, 3], I64), np.array([-1, -1, -2, -1, 0], I64)],
    {},
    np.array([0, -1, 1, 0, 1], I64),
    "negative-int-exponent",
)

_WHERE_SHAPES = [
    ((3, 1), (1, 4), ()),
    ((2, 3, 4), (4,), (3, 1)),
    ((), (), ()),
    ((0, 3), (1, 3), (0, 1)),
    ((5,), (5,), (5,)),
]
for _dtype, (_sc, _sx, _sy) in itertools.product(ALL, _WHERE_SHAPES):
    _c, _x, _y = rand(_sc, BOOL), rand(_sx, _dtype), rand(_sy, _dtype)
    _fn = partial(elementwise, lambda c, x, y: x if c else y, _dtype, _c, _x, _y)
    case("where", [_c, _x, _y], {}, _fn, f"{_dtype}{_sc}{_sx}{_sy}")


def _convert(v, dst: np.dtype):
    if dst == BOOL:
        return v != 0
    return int(v) if dst.kind == "i" else float(v)  # int() truncates toward zero


_CAST_SOURCES = {
    "float": [-2.75, -1.0, -0.5, 0.0, 0.5, 1.0, 3.9, 100.25],
    "int": [-3, -1, 0, 1, 2, 7, 100, -100],
    "bool": [True, False, False, True, True, False, True, False],
}
for _src, _dst in itertools.product(ALL, ALL):
    _kind = "bool" if _src == BOOL else ("int" if _src.kind == "i" else "float")
    _vals = np.array(_CAST_SOURCES[_kind], _src)
    for _x in (_vals.reshape(2, 4), _vals[6].reshape(()), _vals[:0].reshape(0, 2)):
        _fn = partial(elementwise, partial(_convert, dst=_dst), _dst, _x)
        case("cast", [_x], {"to": _dst}, _fn, f"{_src}-{_dst}{_x.shape}")
# dtype names are accepted as well as dtypes
case("cast", [np.array([1.5, -1.5], F64)], {"to": "int32"}, np.array([1, -1], I32), "by-name")


def _saturated(v: float, dst: np.dtype) -> int:
    """Float -> int as LLVM's fptosi.sat: NaN gives 0, beyond the range the nearest bound."""
    bound = 2 ** (np.iinfo(dst).bits - 1)
    if math.isnan(v):
        return 0
    if v >= bound:
        return bound - 1
    return -bound if v < -bound else int(v)


_CAST_EDGES = [math.nan, math.inf, -math.inf, 1e10, -1e10, 2.0**31, -(2.0**31), 2.0**31 - 1]
_CAST_EDGES += [-(2.0**31) - 1, 2.0**63, -(2.0**63), 2.9, -2.9, 1e30, -1e30, -0.0]
for _src, _dst in itertools.product(FLOATS, INTS):
    with np.errstate(over="ignore"):
        _x = np.array(_CAST_EDGES, _src)  # in float32, 2**31 - 1 rounds to 2**31
    _fn = partial(elementwise, partial(_saturated, dst=_dst), _dst, _x)
    case("cast", [_x], {"to": _dst}, _fn, f"saturating-{_src}-{_dst}")


# Signed zeros in max / min (IEEE 754-2019 maximum and minimum: -0 < +0, NaN propagates),
# where NumPy returns either zero depending on operand order. Checked with the sign bit.
_NAN = math.nan
_MAX_A = [0.0, -0.0, 0.0, -0.0, _NAN, 1.0, -0.0]
_MAX_B = [-0.0, 0.0, 0.0, -0.0, 0.0, _NAN, -1.0]
_SIGNED_ZERO_CASES = [
    ("maximum", [_MAX_A, _MAX_B], {}, [0.0, 0.0, 0.0, -0.0, _NAN, _NAN, -0.0]),
    ("minimum", [_MAX_A, _MAX_B], {}, [-0.0, -0.0, 0.0, -0.0, _NAN, _NAN, -1.0]),
    ("relu", [[-0.0, 0.0, -1.0]], {}, [0.0, 0.0, 0.0]),
    (
        "reduce_max",
        [[[-0.0, 0.0], [0.0, -0.0], [-0.0, -0.0], [0.0, 0.0], [-0.0, -1.0]]],
        {"axes": [1], "keepdims": False},
        [0.0, 0.0, -0.0, 0.0, -0.0],
    ),
    (
        "reduce_min",
        [[[-0.0, 0.0], [0.0, -0.0], [-0.0, -0.0], [0.0, 0.0], [0.0, 1.0]]],
        {"axes": [1], "keepdims": False},
        [-0.0, -0.0, -0.0, 0.0, 0.0],
    ),
    (
        "max_pool2d",
        [[[[[-0.0, 0.0, 0.0, -0.0, -0.0, -0.0]]]]],
        {"kernel": [1, 2], "strides": [1, 2]},
        [[[[0.0, 0.0, -0.0]]]],
    ),
]
for _op, _ins, _attrs, _want in _SIGNED_ZERO_CASES:
    for _dtype in FLOATS:
        _arrays = [np.array(a, _dtype) for a in _ins]
        case(_op, _arrays, _attrs, np.array(_want, _dtype), f"signed-zeros-{_dtype}", "signed")


# ---- reductions ----------------------------------------------------------------------------


def _lowest(dtype: np.dtype):
    if dtype.kind == "f":
        return -math.inf
    return False if dtype == BOOL else int(np.iinfo(dtype).min)


def _highest(dtype: np.dtype):
    if dtype.kind == "f":
        return math.inf
    return True if dtype == BOOL else int(np.iinfo(dtype).max)


def fold(x: np.ndarray, axes, keepdims: bool, combine, out_dtype) -> np.ndarray:
    """Reduce by visiting every element of every reduced slice in Python."""
    n = x.ndim
    red = sorted({a % n for a in axes}) if n else []
    keep = [i for i in range(n) if i not in red]

    def at(idx):
        values = []
        for r in np.ndindex(*(x.shape[i] for i in red)):
            full = dict(zip(keep, idx, strict=True)) | dict(zip(red, r, strict=True))
            values.append(x[tuple(full[i] for i in range(n))].item())
        return combine(values)

    out = build(tuple(x.shape[i] for i in keep), out_dtype, at)
    if keepdims:
        out = out.reshape(tuple(1 if i in red else d for i, d in enumerate(x.shape)))
    return out


def _sum(values, dtype):
    return math.fsum(values) if dtype.kind == "f" else sum(values)


def _mean(values):
    return math.fsum(values) / len(values) if values else math.nan


REDUCE = {
    "reduce_sum": (NUMERIC, lambda v, d: _sum(v, d)),
    "reduce_mean": (FLOATS, lambda v, d: _mean(v)),
    "reduce_max": (ALL, lambda v, d: max(v, default=_lowest(d))),
    "reduce_min": (ALL, lambda v, d: min(v, default=_highest(d))),
}
_REDUCE_SHAPES = [
    ((2, 3, 4), (1,), False),
    ((2, 3, 4), (0, 2), True),
    ((2, 3, 4), (-1,), False),
    ((2, 3, 4), (2, 0, 1), False),
    ((2, 3, 4), (), True),
    ((), (), False),
    ((3, 1), (1,), True),
    ((0, 3), (0,), False),  # reduces an empty axis: the identity (0, -inf, +inf, NaN)
    ((0, 3), (1,), True),
    ((2, 0, 3), (0, 2), False),
]
for _op, (_dtypes, _combine) in REDUCE.items():
    for _dtype, (_shape, _axes, _keep) in itertools.product(_dtypes, _REDUCE_SHAPES):
        _x = rand(_shape, _dtype, 0, 3) if _op == "reduce_sum" else ties(_shape, _dtype)
        if _dtype.kind == "f" and _op != "reduce_sum":
            _x = rand(_shape, _dtype)
        _fn = partial(fold, _x, _axes, _keep, partial(_combine, d=_dtype), _dtype)
        _attrs = {"axes": _axes, "keepdims": _keep}
        case(_op, [_x], _attrs, _fn, f"{_dtype}{_shape}{_axes}{_keep}", "acc")

for _dtype in FLOATS:
    _empty = np.zeros((0, 3), _dtype)
    _attrs = {"axes": [0], "keepdims": False}
    case("reduce_max", [_empty], _attrs, np.full(3, -np.inf, _dtype), f"empty-is-ninf-{_dtype}")
    case("reduce_min", [_empty], _attrs, np.full(3, np.inf, _dtype), f"empty-is-inf-{_dtype}")
    case("reduce_mean", [_empty], _attrs, np.full(3, np.nan, _dtype), f"empty-is-nan-{_dtype}")

_ARG_SHAPES = [
    ((2, 3, 4), 1, False),
    ((2, 3, 4), -1, True),
    ((2, 3, 4), 0, False),
    ((5,), 0, False),
    ((3, 1), 1, True),
    ((0, 3), 1, False),
    ((4, 3), -2, True),
]
_ARG = {"argmax": max, "argmin": min}
for _op, _pick in _ARG.items():
    for _dtype, (_shape, _axis, _keep) in itertools.product(NUMERIC, _ARG_SHAPES):
        _x = ties(_shape, _dtype)
        _combine = partial(lambda pick, v: v.index(pick(v)), _pick)  # first occurrence
        _fn = partial(fold, _x, (_axis,), _keep, _combine, I64)
        case(_op, [_x], {"axis": _axis, "keepdims": _keep}, _fn, f"{_dtype}{_shape}{_axis}")
    for _dtype in NUMERIC:
        _x = np.array([1, 3, 0, 3, 0, 3], _dtype)
        _want = 1 if _op == "argmax" else 2
        case(_op, [_x], {"axis": 0, "keepdims": False}, np.array(_want, I64), f"first-{_dtype}")


# ---- movement ----------------------------------------------------------------------------------


def reshape_expected(x: np.ndarray, shape) -> np.ndarray:
    flat = [x[i].item() for i in np.ndindex(*x.shape)]  # row-major order
    return np.array(flat, x.dtype).reshape(shape)


_RESHAPES = [
    ((2, 3, 4), (6, 4)),
    ((2, 3, 4), (4, 1, 6)),
    ((), (1, 1)),
    ((1,), ()),
    ((0, 3), (3, 0, 1)),
    ((6,), (6,)),
]
for _dtype, (_src, _dst) in itertools.product(ALL, _RESHAPES):
    _x = rand(_src, _dtype)
    case("reshape", [_x], {"shape": _dst}, partial(reshape_expected, _x, _dst), f"{_dtype}{_dst}")


def transpose_expected(x: np.ndarray, perm) -> np.ndarray:
    def at(o):
        src = [0] * x.ndim
        for j, p in enumerate(perm):
            src[p] = o[j]
        return x[tuple(src)]

    return build(tuple(x.shape[p] for p in perm), x.dtype, at)


_PERMS = [((2, 3, 4), (2, 0, 1)), ((2, 3), (1, 0)), ((), ()), ((0, 3, 1), (1, 2, 0))]
_PERMS += [((5,), (0,)), ((2, 3, 4), (0, 1, 2)), ((2, 3, 4), (1, 2, 0))]
for _dtype, (_shape, _perm) in itertools.product(ALL, _PERMS):
    _x = rand(_shape, _dtype)
    _fn = partial(transpose_expected, _x, _perm)
    case("transpose", [_x], {"perm": _perm}, _fn, f"{_dtype}{_shape}{_perm}")


def expand_expected(x: np.ndarray, out_shape) -> np.ndarray:
    return build(out_shape, x.dtype, lambda o: x[bindex(o, x.shape)])


# (input shape, target, result): ONNX Expand broadcasts both ways.
_EXPANDS = [
    ((3, 1), (2, 1, 6), (2, 3, 6)),
    ((4,), (3, 4), (3, 4)),
    ((), (2, 3), (2, 3)),
    ((2, 1), (1,), (2, 1)),
    ((2, 1), (3,), (2, 3)),
    ((1, 3), (0, 3), (0, 3)),
    ((0, 1), (1, 5), (0, 5)),
    ((2, 3), (), (2, 3)),
    ((1, 1), (3, 1, 1), (3, 1, 1)),
]
for _dtype, (_shape, _target, _result) in itertools.product(ALL, _EXPANDS):
    _x = rand(_shape, _dtype)
    _fn = partial(expand_expected, _x, _result)
    case("expand", [_x], {"shape": list(_target)}, _fn, f"{_dtype}{_shape}->{_target}")


def onnx_slice_indices(dim: int, start: int, end: int, step: int) -> list[int]:
    """The indices ONNX Slice selects on one axis, from the spec's clamping rules."""
    start += dim if start < 0 else 0
    end += dim if end < 0 else 0
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:  # an end of -1 after clamping means "through index 0"
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return list(range(start, end, step))


def slice_expected(x: np.ndarray, starts, ends, axes, steps) -> np.ndarray:
    picks = [list(range(d)) for d in x.shape]
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        picks[a % x.ndim] = onnx_slice_indices(x.shape[a % x.ndim], s, e, st)
    shape = tuple(len(p) for p in picks)
    return build(shape, x.dtype, lambda o: x[tuple(p[i] for p, i in zip(picks, o, strict=True))])


# (shape, starts, ends, axes, steps)
_SLICES = [
    ((5,), [1], [4], [0], [1]),
    ((5,), [0], [5], [0], [2]),
    ((5,), [4], [INT64_MIN], [0], [-1]),  # sentinel end: through index 0
    ((5,), [-1], [INT64_MIN], [0], [-2]),
    ((5,), [2], [INT64_MAX], [0], [1]),  # sentinel end clamps to the dim
    ((5,), [-100], [100], [0], [1]),
    ((5,), [3], [1], [0], [1]),  # empty
    ((5,), [1], [3], [0], [-1]),  # empty
    ((5,), [10], [1], [0], [-1]),  # start clamps to dim - 1
    ((5,), [-1], [-4], [0], [-1]),
    ((5,), [-10], [2], [0], [-1]),  # start clamps below the axis: empty
    ((4, 5, 6), [1, -1], [3, INT64_MIN], [0, -1], [1, -2]),
    ((4, 5, 6), [5, 0], [0, 4], [2, 0], [-2, 3]),  # axes out of order
    ((4, 5, 6), [0, 1, 2], [INT64_MAX, 5, 3], [0, 1, 2], [3, 2, 1]),
    ((3, 1), [0], [INT64_MAX], [1], [-1]),
    ((0, 3), [0], [INT64_MAX], [1], [-1]),
    ((0, 3), [INT64_MAX], [INT64_MIN], [0], [-1]),
    ((), [], [], [], []),
]
for _dtype, (_shape, *_spec) in itertools.product((F32, F64, I32, I64, BOOL), _SLICES):
    _x = rand(_shape, _dtype)
    _attrs = dict(zip(("starts", "ends", "axes", "steps"), _spec, strict=True))
    _fn = partial(slice_expected, _x, *_spec)
    case("slice", [_x], _attrs, _fn, f"{_dtype}{_shape}{_spec}")


def pad_expected(x: np.ndarray, pads, mode: str, value: float) -> np.ndarray:
    n = x.ndim
    begin, end = pads[:n], pads[n:]

    def source(i: int, d: int, b: int) -> int | None:
        j = i - b
        if 0 <= j < d:
            return j
        if mode == "constant":
            return None
        if mode == "edge":
            return min(max(j, 0), d - 1)
        while not 0 <= j < d:  # reflect about the edge elements, not repeating them
            j = -j if j < 0 else 2 * (d - 1) - j
        return j

    def at(o):
        src = [source(i, d, b) for i, d, b in zip(o, x.shape, begin, strict=True)]
        return value if None in src else x[tuple(src)]

    shape = tuple(d + b + e for d, b, e in zip(x.shape, begin, end, strict=True))
    return build(shape, x.dtype, at)


# (shape, pads, mode, value)
_PADS = [
    ((3, 4), [1, 2, 0, 1], "constant", 0.0),
    ((3, 4), [0, 0, 2, 3], "constant", 1.0),
    ((2, 3, 4), [0, 1, 2, 1, 0, 1], "constant", 0.0),
    ((), [], "constant", 0.0),
    ((0, 3), [1, 0, 2, 1], "constant", 1.0),
    ((3, 4), [2, 1, 1, 3], "reflect", 0.0),
    ((4,), [3, 3], "reflect", 0.0),
    ((2, 3, 4), [1, 0, 2, 0, 2, 3], "reflect", 0.0),
    ((0, 3), [0, 1, 0, 1], "reflect", 0.0),
    ((3, 4), [2, 1, 1, 3], "edge", 0.0),
    ((1,), [2, 3], "edge", 0.0),
    ((0, 3), [0, 1, 0, 2], "edge", 0.0),
]
for _dtype, (_shape, _pads, _mode, _value) in itertools.product(ALL, _PADS):
    _x = rand(_shape, _dtype)
    _fn = partial(pad_expected, _x, _pads, _mode, _value)
    _attrs = {"pads": _pads, "mode": _mode, "value": _value}
    case("pad", [_x], _attrs, _fn, f"{_dtype}{_shape}{_mode}{_pads}")
for _dtype in FLOATS:
    _x = rand((2, 2), _dtype)
    _fn = partial(pad_expected, _x, [1, 1, 1, 1], "constant", -2.5)
    case("pad", [_x], {"pads": [1, 1, 1, 1], "value": -2.5}, _fn, f"value-{_dtype}")


def concat_expected(xs: list[np.ndarray], axis: int) -> np.ndarray:
    axis %= xs[0].ndim
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)

    def at(o):
        i = o[axis]
        for x in xs:
            if i < x.shape[axis]:
                return x[o[:axis] + (i,) + o[axis + 1 :]]
            i -= x.shape[axis]
        raise AssertionError(o)

    return build(tuple(shape), xs[0].dtype, at)


_CONCATS = [
    ([(2, 3), (1, 3), (4, 3)], 0),
    ([(2, 1), (2, 0), (2, 3)], 1),
    ([(2, 3, 1), (2, 3, 2), (2, 3, 3)], -1),
    ([(2, 1, 3), (2, 2, 3), (2, 1, 3)], -2),
    ([(3,)], 0),
    ([(0, 2), (0, 2), (0, 2)], 1),
]
for _dtype, (_shapes, _axis) in itertools.product(ALL, _CONCATS):
    _xs = [rand(s, _dtype) for s in _shapes]
    _fn = partial(concat_expected, _xs, _axis)
    case("concat", _xs, {"axis": _axis}, _fn, f"{_dtype}{_shapes}{_axis}")


def gather_expected(data: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    axis %= data.ndim
    size, k = data.shape[axis], idx.ndim

    def at(o):
        i = int(idx[o[axis : axis + k]])
        return data[o[:axis] + (i + size if i < 0 else i,) + o[axis + k :]]

    return build(data.shape[:axis] + idx.shape + data.shape[axis + 1 :], data.dtype, at)


# (data shape, indices, axis)
_GATHERS = [
    ((5, 3), np.array([0, -1, 2, -5, 4], I64), 0),
    ((2, 4, 3), np.array([[1, -1], [-4, 3]], I32), 1),
    ((4,), np.array(-2, I64), -1),
    ((3, 4), np.zeros((0,), I64), 1),
    ((0, 3), np.array([1, -3], I32), 1),
    ((3, 4), np.array([[3], [-2]], I64), -1),
    ((2, 3), np.array(1, I32), 0),
]
for _dtype, (_shape, _idx, _axis) in itertools.product(ALL, _GATHERS):
    _x = rand(_shape, _dtype)
    _fn = partial(gather_expected, _x, _idx, _axis)
    case("gather", [_x, _idx], {"axis": _axis}, _fn, f"{_dtype}{_shape}{_idx.shape}{_axis}")


def gather_elements_expected(data: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    axis %= data.ndim
    size = data.shape[axis]

    def at(o):
        i = int(idx[o])
        return data[o[:axis] + (i + size if i < 0 else i,) + o[axis + 1 :]]

    return build(idx.shape, data.dtype, at)


# (data shape, indices shape, axis); indices may be smaller than data off the axis
_GATHER_ELEMENTS = [
    ((3, 4), (2, 3), 0),
    ((3, 4), (2, 5), 1),
    ((2, 3, 4), (2, 2, 4), 1),
    ((2, 3, 4), (1, 3, 2), -1),
    ((3, 4), (3, 4), -2),
    ((3,), (0,), 0),
    ((0, 3), (0, 2), 1),
]
for _dtype, (_shape, _ishape, _axis) in itertools.product(ALL, _GATHER_ELEMENTS):
    _x = rand(_shape, _dtype)
    _n = _shape[_axis]
    _idx = rand(_ishape, I64 if _axis >= 0 else I32, -_n, _n - 1)
    _fn = partial(gather_elements_expected, _x, _idx, _axis)
    _tag = f"{_dtype}{_shape}{_ishape}{_axis}"
    case("gather_elements", [_x, _idx], {"axis": _axis}, _fn, _tag)


def one_hot_expected(idx: np.ndarray, depth: int, axis: int, dtype) -> np.ndarray:
    axis %= idx.ndim + 1

    def at(o):
        v = int(idx[o[:axis] + o[axis + 1 :]])
        v += depth if -depth <= v < 0 else 0  # others out of range: an all-zero row
        return 1 if v == o[axis] else 0

    return build(idx.shape[:axis] + (depth,) + idx.shape[axis:], dtype, at)


# (indices, depth, axis, dtype or None for the default float32)
_ONE_HOTS = [
    (np.array([0, 2, -1, 3, -4, 5, 4, -5], I64), 4, -1, None),
    (np.array([[0, -1, 2], [3, -3, 1]], I32), 3, 0, I32),
    (np.array([[0, -1, 2], [3, -3, 1]], I64), 3, 1, BOOL),
    (np.array([[0, -1, 2], [3, -3, 1]], I64), 3, -2, F64),
    (np.array([[0, -1, 2], [3, -3, 1]], I64), 3, 2, I64),
    (np.array(2, I64), 5, 0, F64),
    (np.array(-7, I32), 5, -1, None),
    (np.zeros((0,), I64), 3, -1, F32),
    (np.array([0, 1, -1], I64), 0, -1, F32),
]
for _idx, _depth, _axis, _dtype in _ONE_HOTS:
    _attrs = {"depth": _depth, "axis": _axis} | ({"dtype": _dtype} if _dtype else {})
    _fn = partial(one_hot_expected, _idx, _depth, _axis, _dtype or F32)
    case("one_hot", [_idx], _attrs, _fn, f"{_idx.shape}-d{_depth}-a{_axis}-{_dtype}")

_CONSTANTS = [rand((2, 3), F32), rand((), I64), rand((0, 2), BOOL), rand((3,), F64)]
_CONSTANTS += [rand((1,), I32)]
for _v in _CONSTANTS:
    case("constant", [], {"value": _v}, _v.copy(), f"{_v.dtype}{_v.shape}")


# ---- contractions -----------------------------------------------------------------------------


def matmul_expected(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
    b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
    batch = bshape(a2.shape[:-2], b2.shape[:-2])
    (m, k), n = a2.shape[-2:], b2.shape[-1]

    def at(o):
        ai, bi = bindex(o[:-2], a2.shape[:-2]), bindex(o[:-2], b2.shape[:-2])
        terms = [a2[ai + (o[-2], j)].item() * b2[bi + (j, o[-1])].item() for j in range(k)]
        return _sum(terms, a.dtype)

    out = build(batch + (m, n), a.dtype, at)
    if a.ndim == 1:
        out = out.reshape(out.shape[:-2] + out.shape[-1:])
    if b.ndim == 1:
        out = out.reshape(out.shape[:-1])
    return out


_MATMULS = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((4,), (2, 4, 3)),
    ((2, 3, 4), (4,)),
    ((3, 0), (0, 2)),
    ((0, 4), (4, 2)),
    ((1, 1), (1, 1)),
]
for _dtype, (_sa, _sb) in itertools.product(NUMERIC, _MATMULS):
    _a, _b = rand(_sa, _dtype), rand(_sb, _dtype)
    case("matmul", [_a, _b], {}, partial(matmul_expected, _a, _b), f"{_dtype}{_sa}{_sb}", "acc")


def _window_out(size: int, k: int, s: int, pad_total: int, d: int) -> int:
    return (size + pad_total - d * (k - 1) - 1) // s + 1


def _window_taps(x: np.ndarray, o, kernel, strides, pads, dilations):
    """(ki, kj, y, x) of every in-bounds tap of output position o=(i, j)."""
    h, w = x.shape[2:]
    for ki in range(kernel[0]):
        for kj in range(kernel[1]):
            y = o[0] * strides[0] - pads[0] + ki * dilations[0]
            xx = o[1] * strides[1] - pads[1] + kj * dilations[1]
            if 0 <= y < h and 0 <= xx < w:
                yield ki, kj, y, xx


def conv2d_expected(x, w, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), groups=1):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = _window_out(h, kh, strides[0], pads[0] + pads[2], dilations[0])
    ow = _window_out(wd, kw, strides[1], pads[1] + pads[3], dilations[1])
    per_group = o // groups

    def at(idx):
        b, oc, i, j = idx
        g = oc // per_group
        terms = [
            x[b, g * cg + ci, y, xx].item() * w[oc, ci, ki, kj].item()
            for ci in range(cg)
            for ki, kj, y, xx in _window_taps(x, (i, j), (kh, kw), strides, pads, dilations)
        ]
        return math.fsum(terms)

    return build((n, o, oh, ow), x.dtype, at)


def pool_expected(x, kind, kernel, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), cip=False):
    n, c, h, w = x.shape
    oh = _window_out(h, kernel[0], strides[0], pads[0] + pads[2], dilations[0])
    ow = _window_out(w, kernel[1], strides[1], pads[1] + pads[3], dilations[1])

    def at(idx):
        b, ch, i, j = idx
        taps = _window_taps(x, (i, j), kernel, strides, pads, dilations)
        vals = [x[b, ch, y, xx].item() for _, _, y, xx in taps]
        if kind == "max":
            return max(vals, default=-math.inf)  # padding never wins
        return math.fsum(vals) / (kernel[0] * kernel[1] if cip else len(vals))

    return build((n, c, oh, ow), x.dtype, at)


# (x shape, w shape, attrs)
_CONVS = [
    ((1, 1, 5, 5), (1, 1, 3, 3), {}),
    ((2, 3, 7, 6), (4, 3, 3, 2), {"strides": [2, 1]}),
    ((1, 2, 5, 6), (3, 2, 3, 3), {"pads": [1, 0, 2, 1]}),
    ((1, 2, 6, 7), (2, 2, 2, 3), {"dilations": [2, 1], "pads": [2, 1, 2, 1]}),
    ((1, 4, 5, 5), (6, 2, 3, 3), {"groups": 2}),
    ((2, 3, 6, 6), (3, 1, 3, 3), {"groups": 3, "pads": [1, 1, 1, 1]}),  # depthwise
    ((1, 3, 5, 5), (6, 1, 2, 2), {"groups": 3, "strides": [2, 2]}),  # channel multiplier 2
    (
        (2, 4, 9, 8),
        (4, 2, 2, 3),
        {"strides": [2, 3], "pads": [0, 2, 1, 1], "dilations": [2, 2], "groups": 2},
    ),
    ((1, 2, 4, 4), (3, 2, 1, 1), {}),
    ((0, 2, 4, 4), (3, 2, 3, 3), {}),
    ((1, 2, 3, 4), (2, 2, 3, 4), {}),  # kernel covers the input: 1x1 output
]
for _dtype, (_sx, _sw, _attrs) in itertools.product(FLOATS, _CONVS):
    _x, _w = rand(_sx, _dtype), rand(_sw, _dtype)
    _fn = partial(
        conv2d_expected, _x, _w, **{k: tuple(v) if k != "groups" else v for k, v in _attrs.items()}
    )
    case("conv2d", [_x, _w], _attrs, _fn, f"{_dtype}{_sx}{_sw}{_attrs}", "acc")

# (x shape, attrs); max-pool data is negative so a padding value of 0 would win
_POOLS = [
    ((1, 2, 4, 4), {"kernel": [2, 2], "strides": [2, 2]}),
    ((2, 1, 5, 5), {"kernel": [3, 3], "pads": [1, 1, 1, 1]}),
    ((1, 2, 5, 4), {"kernel": [3, 2], "pads": [0, 1, 2, 0]}),
    ((1, 1, 6, 6), {"kernel": [2, 2], "dilations": [2, 2]}),
    ((1, 2, 5, 7), {"kernel": [2, 3], "strides": [1, 2], "pads": [1, 2, 0, 1]}),
    (
        (1, 1, 7, 7),
        {"kernel": [3, 2], "strides": [2, 2], "pads": [2, 1, 1, 0], "dilations": [1, 2]},
    ),
    ((0, 2, 4, 4), {"kernel": [2, 2]}),
    ((1, 1, 1, 1), {"kernel": [1, 1]}),
]


def _tupled(attrs: dict) -> dict:
    return {k: tuple(v) for k, v in attrs.items() if k != "kernel"}


for _dtype, (_sx, _attrs) in itertools.product(FLOATS, _POOLS):
    _x = rand(_sx, _dtype, -3, -0.5)
    _fn = partial(pool_expected, _x, "max", tuple(_attrs["kernel"]), **_tupled(_attrs))
    case("max_pool2d", [_x], _attrs, _fn, f"{_dtype}{_sx}{_attrs}")
    for _cip in (False, True):
        _x = rand(_sx, _dtype)
        _k = tuple(_attrs["kernel"])
        _fn = partial(pool_expected, _x, "avg", _k, **_tupled(_attrs), cip=_cip)
        _a = _attrs | {"count_include_pad": _cip}
        case("avg_pool2d", [_x], _a, _fn, f"{_dtype}{_sx}{_attrs}-cip{_cip}", "acc")
# count_include_pad defaults to False, as in ONNX
_x = rand((1, 1, 3, 3), F64)
_fn = partial(pool_expected, _x, "avg", (2, 2), pads=(1, 1, 0, 0))
_a = {"kernel": [2, 2], "pads": [1, 1, 0, 0]}
case("avg_pool2d", [_x], _a, _fn, "default-cip", "acc")  # a mean: summation order may differ


# ---- gradient primitives -----------------------------------------------------------------------
# Expected values by index loops: the conv/pool adjoints gather, for every input position, the
# output positions whose window covers it (the references scatter window by window instead).


def _covering(pos: int, size_out: int, k: int, s: int, p: int, d: int):
    """(output index, kernel offset) pairs whose window tap lands on input index ``pos``."""
    for ki in range(k):
        q, r = divmod(pos + p - ki * d, s)
        if r == 0 and 0 <= q < size_out:
            yield q, ki


def conv2d_backward_input_expected(g, w, input_hw, strides, pads, dilations, groups):
    n, o, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    per_group = o // groups

    def at(idx):
        b, c, y, xx = idx
        grp, ci = divmod(c, cg)
        terms = [
            g[b, oc, i, j].item() * w[oc, ci, ki, kj].item()
            for oc in range(grp * per_group, (grp + 1) * per_group)
            for i, ki in _covering(y, oh, kh, strides[0], pads[0], dilations[0])
            for j, kj in _covering(xx, ow, kw, strides[1], pads[1], dilations[1])
        ]
        return math.fsum(terms)

    return build((n, cg * groups) + tuple(input_hw), g.dtype, at)


def conv2d_backward_weight_expected(x, g, kernel, strides, pads, dilations, groups):
    n, c, h, wd = x.shape
    o, oh, ow = g.shape[1:]
    cg = c // groups
    per_group = o // groups

    def at(idx):
        oc, ci, ki, kj = idx
        ch = oc // per_group * cg + ci
        terms = []
        for b, i, j in itertools.product(range(n), range(oh), range(ow)):
            y = i * strides[0] - pads[0] + ki * dilations[0]
            xx = j * strides[1] - pads[1] + kj * dilations[1]
            if 0 <= y < h and 0 <= xx < wd:
                terms.append(x[b, ch, y, xx].item() * g[b, oc, i, j].item())
        return math.fsum(terms)

    return build((o, cg) + tuple(kernel), x.dtype, at)


def _conv_tuples(attrs: dict) -> dict:
    out = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "groups": 1}
    return out | {k: v if k == "groups" else tuple(v) for k, v in attrs.items()}


for _dtype, (_sx, _sw, _attrs) in itertools.product(FLOATS, _CONVS):
    _full = _conv_tuples(_attrs)
    _probe = conv2d_expected(np.zeros(_sx, F64), np.zeros(_sw, F64), **_full)
    _g, _w, _x = rand(_probe.shape, _dtype), rand(_sw, _dtype), rand(_sx, _dtype)
    _tag = f"{_dtype}{_sx}{_sw}{_attrs}"
    _fn = partial(conv2d_backward_input_expected, _g, _w, _sx[2:], **_full)
    _a = _attrs | {"input_hw": list(_sx[2:])}
    case("conv2d_backward_input", [_g, _w], _a, _fn, _tag, "acc")
    _fn = partial(conv2d_backward_weight_expected, _x, _g, _sw[2:], **_full)
    _a = _attrs | {"kernel": list(_sw[2:])}
    case("conv2d_backward_weight", [_x, _g], _a, _fn, _tag, "acc")


def max_pool2d_backward_expected(x, g, kernel, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1)):
    """Each window's gradient goes to its first maximal element in row-major order."""
    out = np.zeros(x.shape, F64)
    for b, ch, i, j in np.ndindex(*g.shape):
        best = None
        for _, _, y, xx in _window_taps(x, (i, j), kernel, strides, pads, dilations):
            if best is None or x[b, ch, y, xx] > x[b, ch, best[0], best[1]]:
                best = (y, xx)
        if best is not None:
            out[b, ch, best[0], best[1]] += g[b, ch, i, j].item()
    return out.astype(x.dtype)


def avg_pool2d_backward_expected(g, input_hw, kernel, strides, pads, dilations, cip):
    n, c, oh, ow = g.shape
    h, w = input_hw

    def at(idx):
        b, ch, y, xx = idx
        terms = []
        for i, _ in _covering(y, oh, kernel[0], strides[0], pads[0], dilations[0]):
            for j, _ in _covering(xx, ow, kernel[1], strides[1], pads[1], dilations[1]):
                probe = np.zeros((1, 1, h, w))
                taps = len(list(_window_taps(probe, (i, j), kernel, strides, pads, dilations)))
                terms.append(g[b, ch, i, j].item() / (kernel[0] * kernel[1] if cip else taps))
        return math.fsum(terms)

    return build((n, c, h, w), g.dtype, at)


def _pool_tuples(attrs: dict) -> dict:
    out = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1)}
    return out | {k: tuple(v) for k, v in attrs.items() if k != "kernel"}


for _dtype, (_sx, _attrs) in itertools.product(FLOATS, _POOLS):
    _k, _full = tuple(_attrs["kernel"]), _pool_tuples(_attrs)
    _oshape = pool_expected(np.zeros(_sx, F64), "avg", _k, **_full).shape
    _tag = f"{_dtype}{_sx}{_attrs}"
    # Negative data (zero padding would win), then few distinct values (ties everywhere).
    for _name, _x in (("neg", rand(_sx, _dtype, -3, -0.5)), ("ties", ties(_sx, _dtype))):
        _g = rand(_oshape, _dtype)
        _fn = partial(max_pool2d_backward_expected, _x, _g, _k, **_full)
        case("max_pool2d_backward", [_x, _g], _attrs, _fn, f"{_name}-{_tag}", "acc")
    for _cip in (False, True):
        _g = rand(_oshape, _dtype)
        _fn = partial(avg_pool2d_backward_expected, _g, _sx[2:], _k, **_full, cip=_cip)
        _a = _attrs | {"count_include_pad": _cip, "input_hw": list(_sx[2:])}
        case("avg_pool2d_backward", [_g], _a, _fn, f"{_tag}-cip{_cip}", "acc")
_g = rand((1, 1, 3, 3), F64)
_fn = partial(avg_pool2d_backward_expected, _g, (3, 3), (2, 2), (1, 1), (1, 1, 0, 0), (1, 1), False)
_a = {"kernel": [2, 2], "pads": [1, 1, 0, 0], "input_hw": [3, 3]}
case("avg_pool2d_backward", [_g], _a, _fn, "default-cip", "acc")

# Ties by hand (x, g, kernel, strides, expected): the first maximum in row-major order of
# each window takes the gradient, and overlapping windows add up on a shared maximum.
_MAX_POOL_TIES = [
    ([[1, 1], [1, 1]], [[5]], (2, 2), (2, 2), [[5, 0], [0, 0]]),
    (
        [[5, 5, 1], [5, 2, 5], [0, 5, 5]],
        [[1, 2], [3, 4]],
        (2, 2),
        (1, 1),
        [[1, 2, 0], [3, 0, 4], [0, 0, 0]],
    ),
    (
        [[0, 0, 0], [0, 9, 0], [0, 0, 0]],
        [[1, 2], [3, 4]],
        (2, 2),
        (1, 1),
        [[0, 0, 0], [0, 10, 0], [0, 0, 0]],
    ),
    ([[2, 3, 3, 2]], [[1, 10, 100]], (1, 2), (1, 1), [[0, 11, 100, 0]]),
    ([[7, 7, 7, 7]], [[1, 10]], (1, 3), (1, 1), [[1, 10, 0, 0]]),
]
for _dtype, (_x, _g, _k, _s, _want) in itertools.product(FLOATS, _MAX_POOL_TIES):
    _x4, _g4 = np.array(_x, _dtype)[None, None], np.array(_g, _dtype)[None, None]
    _attrs = {"kernel": list(_k), "strides": list(_s)}
    _tag = f"ties-by-hand-{_dtype}{_x4.shape}{_k}{_s}"
    case("max_pool2d_backward", [_x4, _g4], _attrs, np.array(_want, _dtype)[None, None], _tag)


def scatter_add_expected(g: np.ndarray, idx: np.ndarray, axis: int, shape) -> np.ndarray:
    axis %= len(shape)
    k = idx.ndim
    out = np.zeros(shape, F64 if g.dtype.kind == "f" else I64)
    for o in np.ndindex(*g.shape):
        i = int(idx[o[axis : axis + k]])
        out[o[:axis] + (i + shape[axis] if i < 0 else i,) + o[axis + k :]] += g[o]
    return out.astype(g.dtype)


def scatter_elements_add_expected(g, idx, axis: int, shape) -> np.ndarray:
    axis %= len(shape)
    out = np.zeros(shape, F64 if g.dtype.kind == "f" else I64)
    for o in np.ndindex(*g.shape):
        i = int(idx[o])
        out[o[:axis] + (i + shape[axis] if i < 0 else i,) + o[axis + 1 :]] += g[o]
    return out.astype(g.dtype)


# Repeated indices add up (both signs of the same place too).
_SCATTERS = _GATHERS + [
    ((4, 2), np.array([1, 1, -3, 3, 1], I64), 0),
    ((2, 3, 2), np.array([[2, -1], [0, 2], [2, 2]], I32), 1),
]
for _dtype, (_shape, _idx, _axis) in itertools.product((F32, F64, I32, I64), _SCATTERS):
    if 0 in _shape:
        continue  # scatter into an empty axis has no valid index
    _a = _axis % len(_shape)
    _g = rand(_shape[:_a] + _idx.shape + _shape[_a + 1 :], _dtype)
    _fn = partial(scatter_add_expected, _g, _idx, _axis, _shape)
    _attrs = {"axis": _axis, "shape": list(_shape)}
    case("scatter_add", [_g, _idx], _attrs, _fn, f"{_dtype}{_shape}{_idx.shape}{_axis}", "acc")

for _dtype, (_shape, _ishape, _axis) in itertools.product((F32, F64, I64), _GATHER_ELEMENTS):
    _n = _shape[_axis]
    _idx = rand(_ishape, I64 if _axis >= 0 else I32, -_n, _n - 1)
    _g = rand(_ishape, _dtype)
    _fn = partial(scatter_elements_add_expected, _g, _idx, _axis, _shape)
    _attrs = {"axis": _axis, "shape": list(_shape)}
    _tag = f"{_dtype}{_shape}{_ishape}{_axis}"
    case("scatter_elements_add", [_g, _idx], _attrs, _fn, _tag, "acc")
_idx = np.array([[0, 0, 2], [0, -3, 2]], I64)  # every column hits row 0 or 2 twice
_g = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]], F64)
_want = np.array([[11.0, 22.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 33.0]], F64)
case("scatter_elements_add", [_g, _idx], {"axis": 0, "shape": [3, 3]}, _want, "duplicates")


def slice_backward_expected(g: np.ndarray, shape, starts, ends, axes, steps) -> np.ndarray:
    picks = [list(range(d)) for d in shape]
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        picks[a % len(shape)] = onnx_slice_indices(shape[a % len(shape)], s, e, st)
    out = np.zeros(shape, g.dtype)
    for o in np.ndindex(*g.shape):
        out[tuple(p[i] for p, i in zip(picks, o, strict=True))] = g[o]
    return out


for _dtype, (_shape, *_spec) in itertools.product((F32, F64, I64), _SLICES):
    _gshape = slice_expected(np.zeros(_shape), *_spec).shape
    _g = rand(_gshape, _dtype)
    _attrs = dict(zip(("starts", "ends", "axes", "steps"), _spec, strict=True))
    _fn = partial(slice_backward_expected, _g, _shape, *_spec)
    case("slice_backward", [_g], _attrs | {"shape": list(_shape)}, _fn, f"{_dtype}{_shape}{_spec}")


# random_uniform: splitmix64 with Python ints (mod 2**64), independent of the NumPy version.
_M64 = 2**64 - 1


def splitmix64_int(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def random_uniform_expected(key: int, shape, dtype) -> np.ndarray:
    """u[i] = top bits of splitmix64(splitmix64(key) + i) for the flat index i: 24 bits
    for float32, 53 for float64, scaled to [0, 1)."""
    seed = splitmix64_int(key & _M64)  # an int64 key is read as its two's complement
    bits = [splitmix64_int((seed + i) & _M64) for i in range(math.prod(shape))]
    if np.dtype(dtype) == F32:
        vals = [(b >> 40) * 2.0**-24 for b in bits]
    else:
        vals = [(b >> 11) * 2.0**-53 for b in bits]
    return np.array(vals, F64).astype(dtype).reshape(shape)


_RANDOM_KEYS = [(0, I64), (1, I64), (-1, I64), (INT64_MAX, I64), (INT64_MIN, I64), (12345, I32)]
_RANDOM_KEYS += [(-7, I32)]
for (_key, _kdt), _dtype in itertools.product(_RANDOM_KEYS, FLOATS):
    for _shape in ((2, 3), (), (0, 4)):
        _fn = partial(random_uniform_expected, _key, _shape, _dtype)
        _attrs = {"shape": list(_shape), "dtype": _dtype}
        case("random_uniform", [np.array(_key, _kdt)], _attrs, _fn, f"{_key}{_kdt}{_dtype}{_shape}")
case(
    "random_uniform",
    [np.array(3, I64)],
    {"shape": [5]},  # float32 by default
    partial(random_uniform_expected, 3, (5,), F32),
    "default-dtype",
)

# batch_size reads the batch size the interpreter binds (the tests below bind n = 5)
case("batch_size", [], {"scale": 3, "offset": 2, "dtype": F32}, np.array(17, F32), "3n+2")
case("batch_size", [], {}, np.array(5, I64), "default")
BOUND_BATCH = 5

# ---- the tests ---------------------------------------------------------------------------------


def check(actual: Any, c: Case) -> None:
    expected = c.expected()
    assert isinstance(actual, np.ndarray), f"{c.op} returned {type(actual).__name__}"
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if c.tol == "signed":  # exact, and -0 is not +0
        np.testing.assert_array_equal(np.signbit(actual), np.signbit(expected))
    if c.tol in ("exact", "signed") or expected.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected)
    else:
        rtol, atol = TOLERANCES[c.tol][expected.dtype]
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_call_reference(c: Case) -> None:
    inputs = [a.copy() for a in c.inputs]
    with bound_batch(BOUND_BATCH):
        outs = call_reference(c.op, inputs, get_op(c.op).normalize_attrs(c.attrs))
    assert len(outs) == 1
    check(outs[0], c)
    for before, after in zip(c.inputs, inputs, strict=True):
        np.testing.assert_array_equal(before, after)  # references must not write inputs


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bind(c: Case) -> None:
    with bound_batch(BOUND_BATCH):
        out = bind(c.op, *[nc.Tensor(a) for a in c.inputs], **c.attrs)
    assert isinstance(out, nc.Tensor)
    check(out.numpy(), c)


@pytest.mark.parametrize("op", sorted(all_ops()))
def test_every_registered_op_has_cases(op: str) -> None:
    assert op in {c.op for c in CASES}, f"op {op!r} has no case in test_reference_ops.py"


# ---- gradient primitives: adjoint identities and random_uniform's statistics ---------------------
# <A x, g> == <x, A^T g> for each linear forward op A and its adjoint primitive, in float64.


def _ref(op: str, inputs, **attrs) -> np.ndarray:
    (out,) = call_reference(op, list(inputs), get_op(op).normalize_attrs(attrs))
    return out


def _assert_inner_equal(lhs: np.ndarray, a: np.ndarray, rhs: np.ndarray, b: np.ndarray):
    assert lhs.shape == a.shape and rhs.shape == b.shape
    left, right = float(np.vdot(lhs, a)), float(np.vdot(rhs, b))
    scale = np.abs(lhs).ravel() @ np.abs(a).ravel() + 1e-300
    assert abs(left - right) <= 1e-12 * scale, (left, right)


@pytest.mark.parametrize(("sx", "sw", "attrs"), _CONVS, ids=[str(c) for c in _CONVS])
def test_conv2d_adjoints(sx, sw, attrs) -> None:
    x, w = rand(sx, F64), rand(sw, F64)
    y = _ref("conv2d", [x, w], **attrs)
    g = rand(y.shape, F64)
    dx = _ref("conv2d_backward_input", [g, w], input_hw=sx[2:], **attrs)
    dw = _ref("conv2d_backward_weight", [x, g], kernel=sw[2:], **attrs)
    _assert_inner_equal(y, g, x, dx)  # <conv(x, w), g> == <x, conv^T_x(g, w)>
    _assert_inner_equal(y, g, w, dw)  # <conv(x, w), g> == <w, conv^T_w(x, g)>


@pytest.mark.parametrize(("sx", "attrs"), _POOLS, ids=[str(p) for p in _POOLS])
@pytest.mark.parametrize("cip", [False, True])
def test_avg_pool2d_adjoint(sx, attrs, cip) -> None:
    x = rand(sx, F64)
    y = _ref("avg_pool2d", [x], count_include_pad=cip, **attrs)
    g = rand(y.shape, F64)
    dx = _ref("avg_pool2d_backward", [g], count_include_pad=cip, input_hw=sx[2:], **attrs)
    _assert_inner_equal(y, g, x, dx)


@pytest.mark.parametrize(("shape", "idx", "axis"), _SCATTERS)
def test_scatter_add_is_adjoint_of_gather(shape, idx, axis) -> None:
    x = rand(shape, F64)
    y = _ref("gather", [x, idx], axis=axis)
    g = rand(y.shape, F64)
    _assert_inner_equal(y, g, x, _ref("scatter_add", [g, idx], axis=axis, shape=shape))


@pytest.mark.parametrize(("shape", "ishape", "axis"), _GATHER_ELEMENTS)
def test_scatter_elements_add_is_adjoint_of_gather_elements(shape, ishape, axis) -> None:
    n = shape[axis]
    idx = rand(ishape, I64, -n, n - 1)
    x = rand(shape, F64)
    y = _ref("gather_elements", [x, idx], axis=axis)
    g = rand(y.shape, F64)
    dx = _ref("scatter_elements_add", [g, idx], axis=axis, shape=shape)
    _assert_inner_equal(y, g, x, dx)


@pytest.mark.parametrize("spec", _SLICES, ids=[str(s) for s in _SLICES])
def test_slice_backward_is_adjoint_of_slice(spec) -> None:
    shape, starts, ends, axes, steps = spec
    attrs = {"starts": starts, "ends": ends, "axes": axes, "steps": steps}
    x = rand(shape, F64)
    y = _ref("slice", [x], **attrs)
    g = rand(y.shape, F64)
    _assert_inner_equal(y, g, x, _ref("slice_backward", [g], shape=shape, **attrs))


def test_max_pool2d_backward_sums_each_window_gradient_once() -> None:
    # Whatever the ties, every window passes its whole gradient to exactly one element.
    x = ties((2, 3, 7, 6), F64)
    attrs = {"kernel": [3, 2], "strides": [1, 2], "pads": [1, 1, 1, 0], "dilations": [2, 1]}
    y = _ref("max_pool2d", [x], **attrs)
    g = rand(y.shape, F64)
    dx = _ref("max_pool2d_backward", [x, g], **attrs)
    np.testing.assert_allclose(dx.sum(axis=(2, 3)), g.sum(axis=(2, 3)), rtol=1e-12)
    assert np.all(np.isin(x[dx != 0], y))  # gradients only land on window maxima


def _uniform(key: int, shape, dtype, key_dtype=I64) -> np.ndarray:
    out = bind("random_uniform", nc.Tensor(np.array(key, key_dtype)), shape=shape, dtype=dtype)
    return out.numpy()


@pytest.mark.parametrize("dtype", FLOATS)
def test_random_uniform_statistics(dtype) -> None:
    u = _uniform(2024, (100_000,), dtype)
    assert u.dtype == dtype and u.shape == (100_000,)
    assert u.min() >= 0 and u.max() < 1
    assert abs(float(u.mean()) - 0.5) < 0.005  # sd of the mean is 0.0009
    assert abs(float(u.var()) - 1 / 12) < 0.002
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 10_000) < 600)  # about 6 sd of a binomial count
    assert len(np.unique(u)) > 99_000  # no short cycle
    # the golden prefix, from the Python-int splitmix64 above
    np.testing.assert_array_equal(u[:8], random_uniform_expected(2024, (8,), dtype))


@pytest.mark.parametrize("dtype", FLOATS)
def test_random_uniform_is_a_function_of_key_and_index(dtype) -> None:
    a = _uniform(7, (3, 4), dtype)
    np.testing.assert_array_equal(a, _uniform(7, (3, 4), dtype))  # deterministic
    np.testing.assert_array_equal(a, _uniform(7, (3, 4), dtype, I32))  # key dtype is irrelevant
    np.testing.assert_array_equal(a.ravel(), _uniform(7, (12,), dtype))  # flat index counter
    np.testing.assert_array_equal(a.ravel()[:5], _uniform(7, (5,), dtype))
    for other in (8, -7, 7 + 2**32):
        assert not np.any(a == _uniform(other, (3, 4), dtype)), other
    f32, f64 = _uniform(7, (12,), F32), _uniform(7, (12,), F64)
    # float32 keeps the top 24 of float64's 53 bits: the same draws, truncated
    np.testing.assert_array_equal(f32, np.floor(f64 * 2**24) / 2**24)


# ---- data-dependent errors ----------------------------------------------------------------------

_BAD_INDICES = [
    ("gather", np.arange(10.0).reshape(5, 2), np.array([0, 5], I64), 0),
    ("gather", np.arange(10.0).reshape(5, 2), np.array([[-6]], I32), 0),
    ("gather", np.arange(10.0).reshape(5, 2), np.array([2], I64), -1),
    ("gather", np.zeros((0, 2)), np.array([0], I64), 0),
    ("gather_elements", np.arange(6).reshape(2, 3), np.array([[0, 3]], I64), 1),
    ("gather_elements", np.arange(6).reshape(2, 3), np.array([[-3], [0]], I32), 0),
]


@pytest.mark.parametrize(("op", "data", "idx", "axis"), _BAD_INDICES)
def test_out_of_range_index_raises(op, data, idx, axis) -> None:
    attrs = get_op(op).normalize_attrs({"axis": axis})
    with pytest.raises(nc.ExecutionError):
        call_reference(op, [data, idx], attrs)
    with pytest.raises(nc.ExecutionError):
        bind(op, nc.Tensor(data), nc.Tensor(idx), axis=axis)
