"""nc.init: shapes, dtypes, seeding, distribution parameters and fans."""

import math

import numpy as np
import pytest

from nncompile import init

RANDOM = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "orthogonal"]
ALL = RANDOM + ["zeros", "ones"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(5, 7), (7, 5), (4, 3, 3, 3)])
def test_shape_and_dtype(name, shape):
    f = init.get(name)
    a = f(shape, 0)
    assert a.shape == shape and a.dtype == np.float32
    b = f(shape, 0, dtype=np.float64)
    assert b.shape == shape and b.dtype == np.float64


@pytest.mark.parametrize("name", RANDOM)
def test_seeded_reproducibility(name):
    f = init.get(name)
    np.testing.assert_array_equal(f((6, 4), 123), f((6, 4), 123))
    assert not np.array_equal(f((6, 4), 123), f((6, 4), 124))
    a = f((6, 4), np.random.default_rng(5))
    np.testing.assert_array_equal(a, f((6, 4), np.random.default_rng(5)))
    rng = np.random.default_rng(5)  # a shared generator advances between calls
    assert not np.array_equal(f((6, 4), rng), f((6, 4), rng))


@pytest.mark.parametrize(
    "shape, layout, want",
    [
        ((64, 32), "out_in", (32, 64)),  # torch Linear weight (out, in)
        ((32, 64), "in_out", (32, 64)),  # Keras Dense kernel (in, out)
        ((16, 8, 3, 3), "out_in", (8 * 9, 16 * 9)),  # torch conv OIHW
        ((16, 8, 5), "out_in", (8 * 5, 16 * 5)),
        ((10,), "out_in", (10, 10)),
        ((), "out_in", (1, 1)),
    ],
)
def test_fans(shape, layout, want):
    assert init.fans(shape, layout) == want


def _fans_for(shape, layout):
    # PyTorch's _calculate_fan_in_and_fan_out, written out independently
    receptive = math.prod(shape[2:])
    a, b = shape[0] * receptive, shape[1] * receptive
    return (b, a) if layout == "out_in" else (a, b)


LARGE = [((400, 300), "out_in"), ((300, 400), "in_out"), ((64, 32, 5, 5), "out_in")]


@pytest.mark.parametrize("shape, layout", LARGE)
@pytest.mark.parametrize("name", ["glorot_uniform", "he_uniform"])
def test_uniform_bounds_and_std(name, shape, layout):
    fan_in, fan_out = _fans_for(shape, layout)
    limit = math.sqrt(6 / (fan_in + fan_out)) if name == "glorot_uniform" else math.sqrt(6 / fan_in)
    a = init.get(name)(shape, 0, layout=layout, dtype=np.float64)
    assert np.abs(a).max() <= limit
    assert np.abs(a).max() > 0.999 * limit
    assert abs(a.mean()) < 0.01 * limit
    assert a.std() == pytest.approx(limit / math.sqrt(3), rel=0.01)


@pytest.mark.parametrize("shape, layout", LARGE)
@pytest.mark.parametrize("name", ["glorot_normal", "he_normal"])
def test_normal_std(name, shape, layout):
    fan_in, fan_out = _fans_for(shape, layout)
    std = math.sqrt(2 / (fan_in + fan_out)) if name == "glorot_normal" else math.sqrt(2 / fan_in)
    a = init.get(name)(shape, 1, layout=layout, dtype=np.float64)
    assert abs(a.mean()) < 0.01 * std
    assert a.std() == pytest.approx(std, rel=0.01)


def test_layout_changes_he_scale():
    """he_* depend on fan_in only, so (64, 32) means fan_in 32 (out_in) or 64 (in_out)."""
    a = init.he_normal((64, 32), 0, layout="out_in", dtype=np.float64)
    b = init.he_normal((64, 32), 0, layout="in_out", dtype=np.float64)
    np.testing.assert_allclose(a / b, math.sqrt(64 / 32))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape", [(32, 32), (50, 12), (12, 50), (8, 3, 3, 3), (27, 2, 2)])
def test_orthogonal(shape, dtype, tol):
    a = init.orthogonal(shape, 3, dtype=dtype)
    m = a.reshape(shape[0], -1).astype(np.float64)
    rows, cols = m.shape
    gram = m @ m.T if rows <= cols else m.T @ m
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=tol)
    if rows == cols:
        np.testing.assert_allclose(m.T @ m, np.eye(rows), atol=tol)
        assert abs(abs(np.linalg.det(m)) - 1) < 1e3 * tol


def test_orthogonal_is_not_a_fixed_matrix():
    a, b = init.orthogonal((8, 8), 0), init.orthogonal((8, 8), 1)
    assert not np.allclose(a, b)
    assert not np.allclose(np.abs(a), np.eye(8))


def test_zeros_and_ones():
    np.testing.assert_array_equal(init.zeros((3, 4)), np.zeros((3, 4), np.float32))
    np.testing.assert_array_equal(init.ones((2,), dtype=np.float64), np.ones(2))
    assert init.zeros((3, 4), 7).dtype == np.float32


def test_get_by_name_and_aliases():
    assert init.get("xavier_uniform") is init.glorot_uniform
    assert init.get("kaiming_normal") is init.he_normal
    with pytest.raises(ValueError, match="unknown initializer"):
        init.get("lecun_magic")


@pytest.mark.parametrize("name", sorted(init.INITIALIZERS))
def test_every_initializer_works_as_a_dense_kernel(name):
    """Dense passes layout= to its kernel initializer; zeros/ones/orthogonal refused it."""
    from nncompile import nn

    model = nn.Sequential([nn.Dense(3, kernel_initializer=name, input_shape=(2,))])
    assert model.get_weights()[0].shape == (2, 3)
