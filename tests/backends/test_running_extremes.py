"""Max / min reductions and large pooling windows, emitted as vectorized maxnum plus NaN
and signed-zero flags (backends/llvm/running_extremes.py), keep IEEE 754-2019's values: a NaN
anywhere in a row (in the vector body or the scalar remainder, first or last) gives NaN,
-0 < +0, infinities and all-equal rows; float32 and float64, rows of many lengths."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc

LENGTHS = [1, 7, 16, 33, 100, 1000]


def _rows(length: int, dtype) -> np.ndarray:
    rng = np.random.default_rng(length)
    rows = rng.standard_normal((10, length)).astype(dtype)
    rows[1, 0] = np.nan  # NaN first
    rows[2, -1] = np.nan  # NaN last (a remainder lane when the length is not a multiple)
    rows[3, length // 2] = -np.nan  # a NaN with its sign bit set (x86's default NaN)
    rows[4] = -0.0  # all negative zeros
    rows[5] = 0.0
    rows[5, ::2] = -0.0  # both zeros
    rows[6] = -np.inf
    rows[7] = np.inf
    rows[8] = -np.abs(rows[8]) - 1  # all negative: the max is the least negative
    rows[8, length // 3] = 0.0
    rows[9, :] = 3.0
    return rows


def _ieee(op: str, x: np.ndarray, axis) -> np.ndarray:
    """NumPy's max / min with IEEE 754-2019's zero order (-0 < +0), which the project
    follows (docs/architecture.md); NumPy keeps whichever zero came first."""
    out = np.asarray(getattr(np, op)(x, axis=axis))
    if op == "max":  # a zero maximum is +0 if any +0 is there
        signed = ~np.any((x == 0) & ~np.signbit(x), axis=axis)
    else:  # a zero minimum is -0 if any -0 is there
        signed = np.any((x == 0) & np.signbit(x), axis=axis)
    return np.where(out == 0, np.where(signed, -0.0, 0.0), out).astype(x.dtype)


def _same(got: np.ndarray, want: np.ndarray) -> None:
    """Equal values, NaN where the reference has NaN, and the same sign on zeros."""
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["max", "min"])
def test_row_extremes_match_numpy(op, dtype, length):
    rows = _rows(length, dtype)
    ours = getattr(nc, op)
    got = nc.compile(lambda x: ours(x, axis=1))(rows)
    _same(got, _ieee(op, rows, 1))


@pytest.mark.parametrize("op", ["max", "min"])
def test_extremes_over_whole_arrays_and_columns(op):
    rows = _rows(100, np.float32)
    ours = getattr(nc, op)
    everything = nc.compile(lambda x: ours(x))(rows)
    assert np.isnan(everything)
    columns = nc.compile(lambda x: ours(x, axis=0))(rows[4:])  # no NaN: zeros, infinities
    _same(columns, _ieee(op, rows[4:], 0))


def test_a_softmax_over_rows_with_a_nan():
    x = np.random.default_rng(0).standard_normal((4, 300)).astype(np.float32)
    x[1, 7] = np.nan
    x[2, 100] = 80.0  # the row max far above the rest
    got = nc.compile(lambda x: nc.softmax(x, axis=1))(x)
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    with np.errstate(invalid="ignore"):
        want = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_a_large_pooling_window_propagates_nan_and_orders_zeros():
    x = np.random.default_rng(1).standard_normal((2, 3, 12, 12)).astype(np.float32)
    x[0, 1, 4, 5] = np.nan
    x[1, 2, :6, :6] = -0.0
    x[1, 2, 0, 0] = 0.0
    got = nc.compile(lambda x: nc.max_pool2d(x, (6, 6), (6, 6)))(x)
    want = _ieee("max", x.reshape(2, 3, 2, 6, 2, 6), (3, 5))
    _same(got, want)
