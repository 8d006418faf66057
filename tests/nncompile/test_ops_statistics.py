"""nc.var, nc.std, nc.cumsum: NumPy's semantics and dtypes, torch parity with gradients
(torch.var takes ``correction`` = ddof), compiled against eager."""

import warnings

import numpy as np
import pytest

import nncompile as nc
from nncompile import statistics

from .compiled_support import check_compiled
from .torch_support import check

torch = pytest.importorskip("torch")

R = np.random.default_rng(11)
X = R.standard_normal((3, 4, 5))

TORCH_CASES = {
    "var_all": (lambda a: nc.var(a), lambda a: torch.var(a, correction=0)),
    "var_axis_ddof1": (lambda a: nc.var(a, 1, ddof=1), lambda a: torch.var(a, 1)),
    "var_neg_axes_keep": (
        lambda a: nc.var(a, (0, -1), ddof=2, keepdims=True),
        lambda a: torch.var(a, (0, -1), correction=2, keepdim=True),
    ),
    "std_all_ddof1": (lambda a: nc.std(a, ddof=1), lambda a: torch.std(a)),
    "std_axis": (lambda a: nc.std(a, -1), lambda a: torch.std(a, -1, correction=0)),
    "cumsum_axis": (lambda a: nc.cumsum(a, 1), lambda a: torch.cumsum(a, 1)),
    "cumsum_neg_axis": (lambda a: nc.cumsum(a, -1), lambda a: torch.cumsum(a, -1)),
    "cumsum_flat": (lambda a: nc.cumsum(a), lambda a: torch.cumsum(a.reshape(-1), 0)),
}


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_matches_torch_with_gradients(name):
    check(*TORCH_CASES[name], [X], [0], np.float64)


@pytest.mark.parametrize("name", ["var_neg_axes_keep", "std_axis", "cumsum_axis", "cumsum_flat"])
def test_compiled_matches_eager(name):
    check_compiled(TORCH_CASES[name][0], [X])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 100])
def test_cumsum_lengths_match_numpy(n):
    a = R.standard_normal((2, n))
    np.testing.assert_allclose(nc.cumsum(a, axis=1), np.cumsum(a, axis=1), rtol=1e-12, atol=1e-12)
    assert nc.cumsum(a, axis=1).shape == (2, n)


def test_cumsum_is_a_log_depth_scan():
    """ceil(log2 n) shift-and-add steps, not an n x n matrix: the graph grows with log n."""
    for n, steps in ((2, 1), (8, 3), (9, 4), (1000, 10)):
        g = nc.trace(lambda a: nc.cumsum(a), np.zeros(n, np.float32))
        ops = [node.op for node in g.nodes]
        assert ops.count("add") == steps, (n, ops)
        assert "matmul" not in ops


@pytest.mark.parametrize(
    "dtype, want", [(np.int32, np.int64), (np.int64, np.int64), (np.bool_, np.int64)]
)
def test_cumsum_integer_dtypes_follow_numpy(dtype, want):
    a = (np.arange(12).reshape(3, 4) * 7 % 5).astype(dtype)
    got = nc.cumsum(a, 0)
    assert got.dtype == np.cumsum(a, 0).dtype == want
    np.testing.assert_array_equal(got, np.cumsum(a, 0))
    f = nc.compile(lambda v: nc.cumsum(v), backend="llvm")
    np.testing.assert_array_equal(f(a), np.cumsum(a))
    assert nc.cumsum(np.float32([1, 2])).dtype == np.float32


def test_var_of_ints_is_float32():
    a = np.arange(10, dtype=np.int32)
    np.testing.assert_allclose(nc.var(a), np.var(a), rtol=1e-6)
    assert nc.var(a).dtype == np.float32


@pytest.mark.parametrize("ddof", [3, 4, 10])
def test_ddof_at_least_n_gives_inf_or_nan_as_numpy(ddof):
    a = np.array([[1.0, 2.0, 4.0], [5.0, 5.0, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want, want_std = np.var(a, axis=1, ddof=ddof), np.std(a, axis=1, ddof=ddof)
    np.testing.assert_array_equal(nc.var(a, axis=1, ddof=ddof), want)  # [inf, nan]
    np.testing.assert_array_equal(nc.std(a, axis=1, ddof=ddof), want_std)
    f = nc.compile(lambda v: nc.var(v, axis=1, ddof=ddof), backend="llvm")
    np.testing.assert_array_equal(f(a.astype(np.float32)), want.astype(np.float32))


def test_empty_reduction_is_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.var(np.zeros((0, 3)), axis=0)
    np.testing.assert_array_equal(nc.var(np.zeros((0, 3)), axis=0), want)


def test_bad_arguments():
    with pytest.raises(nc.ShapeError, match="var"):
        nc.var(X, axis=(1, -2))
    with pytest.raises(nc.ShapeError):
        nc.var(X, axis=3)
    with pytest.raises(nc.OpAttributeError, match="ddof"):
        nc.var(X, ddof=0.5)
    with pytest.raises(nc.ShapeError, match="cumsum"):
        nc.cumsum(np.float32(1.0), axis=0)
    with pytest.raises(nc.ShapeError):
        nc.cumsum(X, axis=3)


def test_cumsum_none_flattens_a_scalar():
    np.testing.assert_array_equal(nc.cumsum(np.float64(2.5)), np.cumsum(np.float64(2.5)))
    assert statistics.cumsum is nc.cumsum
