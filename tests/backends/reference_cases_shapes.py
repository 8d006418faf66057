"""Reference cases (see reference_cases.py): reductions and movement ops."""

from __future__ import annotations

import itertools
import math
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
    INT64_MAX,
    INT64_MIN,
    NUMERIC,
    bindex,
    build,
    case,
    rand,
    ties,
)

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
