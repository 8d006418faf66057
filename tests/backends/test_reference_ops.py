"""Every primitive's NumPy reference, checked against independent expectations.

Expected values are built here from first principles (index loops, Python ints, float64
math, the ONNX spec's rules), never from backends/numpy/reference.py, so a mistake made
there cannot also be made here. Each case runs through ``call_reference`` and through the
eager op-level API ``dispatch.bind``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from nncompile.backends.numpy import call_reference
from nncompile.ir import all_ops, get_op
from nncompile.ir.symbolic import bound_batch

import nncompile as nc
from nncompile.dispatch import bind

# (the case modules register their cases when they load)
from . import (  # noqa: F401
    reference_cases_contractions,
    reference_cases_elementwise,
    reference_cases_shapes,
)
from .reference_cases import CASES, F32, F64, FLOATS, I32, I64, TOLERANCES, Case, rand, ties
from .reference_cases_contractions import (
    _CONVS,
    _POOLS,
    _SCATTERS,
    BOUND_BATCH,
    random_uniform_expected,
)
from .reference_cases_shapes import _GATHER_ELEMENTS, _SLICES

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
    assert op in {c.op for c in CASES}, f"op {op!r} has no case in reference_cases*.py"


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
