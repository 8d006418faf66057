"""Reference cases (see reference_cases.py): the elementwise ops."""

from __future__ import annotations

import itertools
import math
import operator
from functools import partial

import numpy as np

from .reference_cases import (
    ALL,
    BOOL,
    F32,
    F64,
    FLOATS,
    I32,
    I64,
    INTS,
    NUMERIC,
    _exp,
    _int_pow,
    _trunc_div,
    case,
    elementwise,
    nonzero,
    rand,
    ties,
)

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
