"""Eager nc.Tensor: results are Tensors, NumPy interop both ways, operators, methods,
indexing and dtype rules, each compared to the same NumPy expression."""

import numpy as np
import pytest

import nncompile as nc

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4)).astype(np.float32)
Y = RNG.standard_normal((3, 4)).astype(np.float32)
X3 = RNG.standard_normal((2, 3, 4)).astype(np.float32)


def assert_same(t, expected):
    """t is an nc.Tensor whose array equals `expected` exactly, dtype and shape included."""
    assert isinstance(t, nc.Tensor), type(t)
    expected = np.asarray(expected)
    a = np.asarray(t)
    assert a.dtype == expected.dtype, (a.dtype, expected.dtype)
    assert a.shape == expected.shape, (a.shape, expected.shape)
    np.testing.assert_array_equal(a, expected)


# ---- results are Tensors; conversion back to NumPy ----------------------------------------


def test_nc_op_on_numpy_returns_tensor():
    def f(x, w):
        return nc.relu(x @ w).sum()

    w = RNG.standard_normal((4, 2)).astype(np.float32)
    y = f(X, w)
    assert isinstance(y, nc.Tensor)
    assert not y.is_traced
    assert_same(y, np.maximum(X @ w, 0).sum())
    assert isinstance(y.numpy(), np.ndarray)
    np.testing.assert_array_equal(y.numpy(), np.asarray(y))


def test_numpy_and_asarray_round_trip():
    t = nc.asarray(X)
    assert isinstance(t, nc.Tensor)
    np.testing.assert_array_equal(np.asarray(t), X)
    np.testing.assert_array_equal(t.numpy(), X)
    assert np.asarray(t).dtype == np.float32
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert nc.tensor(X).shape == X.shape
    assert nc.Tensor(X).shape == X.shape


def test_scalar_conversions_eager():
    t = nc.sum(nc.asarray([1.0, 2.5]))
    assert float(t) == 3.5
    assert t.item() == 3.5
    assert bool(t)
    assert int(nc.asarray(np.array(7, np.int32))) == 7
    assert nc.asarray(X).tolist() == X.tolist()
    assert len(nc.asarray(X)) == 3
    rows = list(nc.asarray(X))
    assert len(rows) == 3
    assert_same(rows[1], X[1])


@pytest.mark.parametrize(
    "expr",
    [
        lambda a, t: a @ t.T,
        lambda a, t: a + t,
        lambda a, t: a - t,
        lambda a, t: a * t,
        lambda a, t: a / t,
        lambda a, t: a > t,
        lambda a, t: a == t,
        lambda a, t: t + a,
        lambda a, t: t @ a.T,
        lambda a, t: 2.0 * t,
        lambda a, t: 2.0 - t,
        lambda a, t: 1.0 / t,
        lambda a, t: 3 + t,
    ],
)
def test_mixing_numpy_and_tensor_gives_tensor(expr):
    t = nc.asarray(Y)
    got = expr(X, t)
    assert isinstance(got, nc.Tensor)
    assert_same(got, expr(X, Y))


# ---- operators ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a * b,
        lambda a, b: a / b,
        lambda a, b: a @ b.T,
        lambda a, b: abs(a) ** b,
        lambda a, b: a**2,
        lambda a, b: -a,
        lambda a, b: abs(a),
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
        lambda a, b: a == b,
        lambda a, b: a != b,
        lambda a, b: (a > 0) & (b > 0),
        lambda a, b: (a > 0) | (b > 0),
        lambda a, b: (a > 0) ^ (b > 0),
        lambda a, b: ~(a > 0),
        lambda a, b: a + b[0],
        lambda a, b: a * b[:, :1],
    ],
)
def test_operators_match_numpy(expr):
    got = expr(nc.asarray(X), nc.asarray(Y))
    assert_same(got, expr(X, Y))


def test_comparisons_give_bool():
    t = nc.asarray(X)
    for r in (t < 0, t <= 0, t > 0, t >= 0, t == 0, t != 0):
        assert r.dtype == np.bool_


def test_matmul_shapes_match_numpy():
    a = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    b = RNG.standard_normal((4, 5)).astype(np.float32)
    v = RNG.standard_normal(4).astype(np.float32)
    assert_same(nc.matmul(a, b), a @ b)
    assert_same(nc.asarray(a) @ v, a @ v)
    assert_same(v @ nc.asarray(b), v @ b)


# ---- properties and methods ---------------------------------------------------------------


def test_properties():
    t = nc.asarray(X3)
    assert t.shape == (2, 3, 4)
    assert isinstance(t.shape, tuple)
    assert isinstance(t.dtype, np.dtype)
    assert t.dtype == np.float32
    assert t.ndim == 3
    assert t.size == 24
    assert_same(t.T, X3.T)


@pytest.mark.parametrize(
    "expr",
    [
        lambda a: a.reshape(-1),
        lambda a: a.reshape(6, 4),
        lambda a: a.reshape((4, 6)),
        lambda a: a.reshape(2, -1),
        lambda a: a.reshape([-1, 3, 2]),
        lambda a: a.transpose(),
        lambda a: a.transpose(1, 0, 2),
        lambda a: a.transpose((2, 0, 1)),
        lambda a: a.transpose(-1, 0, 1),
        lambda a: a.sum(),
        lambda a: a.sum(axis=1),
        lambda a: a.sum(axis=(0, 2)),
        lambda a: a.sum(axis=-1, keepdims=True),
        lambda a: a.mean(),
        lambda a: a.mean(axis=0),
        lambda a: a.mean(axis=(1, 2), keepdims=True),
        lambda a: a.max(),
        lambda a: a.max(axis=1),
        lambda a: a.max(axis=-1, keepdims=True),
        lambda a: a.min(),
        lambda a: a.min(axis=(0, 1)),
        lambda a: a.min(axis=2, keepdims=True),
        lambda a: a.argmax(),
        lambda a: a.argmax(axis=1),
        lambda a: a.argmax(axis=-1),
        lambda a: a.astype(np.float64),
        lambda a: a.astype(np.int32),
        lambda a: a.astype(np.int64),
        lambda a: a.astype(bool),
    ],
)
def test_methods_match_numpy(expr):
    got = expr(nc.asarray(X3))
    want = expr(X3)
    if np.asarray(want).dtype == np.intp:
        want = np.asarray(want).astype(np.int64)
    assert_same(got, want)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("sum", {"axis": 1}),
        ("mean", {"axis": (0, 2), "keepdims": True}),
        ("max", {}),
        ("min", {"axis": -1}),
        ("argmax", {"axis": 2}),
        ("argmin", {"axis": 0}),
        ("transpose", {"axes": (2, 1, 0)}),
        ("reshape", {"shape": (4, -1)}),
        ("expand_dims", {"axis": 1}),
        ("exp", {}),
        ("tanh", {}),
        ("sqrt", {}),
        ("sign", {}),
        ("square", {}),
    ],
)
def test_nc_functions_match_numpy(name, kwargs):
    a = np.abs(X3) if name == "sqrt" else X3
    got = getattr(nc, name)(a, **kwargs)
    want = getattr(np, name)(a, **kwargs)
    if np.asarray(want).dtype == np.intp:
        want = np.asarray(want).astype(np.int64)
    if name in ("exp", "tanh", "sqrt"):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
        assert got.dtype == np.float32
    else:
        assert_same(got, want)


def test_integer_ops():
    a = np.array([[7, -7, 3], [0, 5, -2]], np.int32)
    t = nc.asarray(a)
    assert_same(t + 1, a + 1)
    assert_same(t * t, a * a)
    assert_same(t.sum(), np.array(a.sum(), np.int32))
    assert_same(t.max(axis=0), a.max(axis=0))
    assert_same(nc.trunc_divide(t, np.int32(2)), np.trunc(a / 2).astype(np.int32))
    assert_same(t / 2, (a / 2).astype(np.float32))
    assert_same(nc.maximum(t, 0), np.maximum(a, 0))
    assert_same(nc.clip(t, -3, 4), np.clip(a, -3, 4))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_bitwise_operators_on_integers_match_numpy(dtype):
    """~ & | ^ are bitwise on integers (NumPy's invert / bitwise_and / ...), eager and
    traced; ~int32([0, 1, 5]) is [-1, -2, -6], not booleans."""
    info = np.iinfo(dtype)
    a = np.array([0, 1, 5, -7, info.max, info.min], dtype)
    b = np.array([3, 6, 12, -1, -1, 1], dtype)
    exprs = {
        "not": lambda a, b: ~a,
        "and": lambda a, b: a & b,
        "or": lambda a, b: a | b,
        "xor": lambda a, b: a ^ b,
        "scalars": lambda a, b: (a & 0xF0) | (6 ^ b),
        "functions": lambda a, b: nc.bitwise_xor(nc.bitwise_not(a), nc.bitwise_and(a, b)),
        "bool_and_int": lambda a, b: (a > 0) & b,  # bool with int gives int, as in NumPy
    }
    numpy_functions = {"functions": lambda a, b: np.bitwise_xor(~a, a & b)}
    for name, expr in exprs.items():
        want = numpy_functions.get(name, expr)(a, b)
        assert_same(expr(nc.asarray(a), nc.asarray(b)), want)
        assert_same(nc.asarray(nc.run(nc.trace(expr, a, b), a, b)), want)
    assert_same(np.invert(nc.asarray(a)), ~a)  # NumPy's own functions on Tensors


def test_bitwise_operators_stay_logical_on_bools_and_refuse_floats():
    p, q = np.array([True, False, True]), np.array([True, True, False])
    for expr in (lambda p, q: ~p, lambda p, q: p & q, lambda p, q: p | q, lambda p, q: p ^ q):
        assert_same(expr(nc.asarray(p), nc.asarray(q)), expr(p, q))
    x = nc.asarray(np.array([1.0, 2.0], np.float32))
    for expr in (lambda: ~x, lambda: x & x, lambda: x | 1, lambda: 1 ^ x):
        with pytest.raises(nc.DTypeError, match="integer or bool"):
            expr()


# ---- indexing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "index",
    [
        1,
        -1,
        (0, 2),
        (-2, -1),
        (1, -3, 0),
        slice(None),
        slice(1, None),
        slice(None, -1),
        slice(None, None, 2),
        slice(None, None, -1),
        slice(None, None, -2),
        slice(5, -10, -1),
        slice(-100, 100, 3),
        (slice(None), slice(1, 3)),
        (slice(None), slice(3, 0, -2)),
        (Ellipsis, 1),
        (Ellipsis, slice(None, None, -1)),
        (0, Ellipsis),
        (None,),
        (None, Ellipsis, None),
        (slice(None), None, 1),
        (1, slice(None, None, -1), None),
        [1, 0],
        [-1, 0, 1],
        (slice(None), [2, 0, 1]),
        (Ellipsis, [2, 2]),
        (slice(1, None), [0, -1]),
        slice(1, 1),
    ],
)
def test_getitem_matches_numpy(index):
    got = nc.asarray(X3)[index]
    assert_same(got, X3[index])


@pytest.mark.parametrize(
    "index",
    [
        np.array([1, 0]),
        (slice(None), np.array([0, 2])),
        np.array([[0, 1], [1, 0]]),
    ],
    ids=["ndarray-axis0", "ndarray-axis1", "ndarray-2d"],
)
def test_getitem_with_numpy_integer_array(index):
    # A NumPy integer array index must behave like the equal list index.
    got = nc.asarray(X3)[index]
    assert_same(got, X3[index])


def test_getitem_with_tensor_integer_array():
    idx = nc.asarray(np.array([1, 0]))
    got = nc.asarray(X3)[idx]
    assert_same(got, X3[np.array([1, 0])])


def test_getitem_boolean_mask_is_not_supported():
    t = nc.asarray(X)
    with pytest.raises(NotImplementedError):
        t[X > 0]


# ---- dtype rules --------------------------------------------------------------------------


def test_python_scalars_are_weak():
    f32 = nc.asarray(np.ones(3, np.float32))
    i32 = nc.asarray(np.ones(3, np.int32))
    f64 = nc.asarray(np.ones(3, np.float64))
    assert (f32 + 1.0).dtype == np.float32
    assert (1.0 + f32).dtype == np.float32
    assert (f32 * 2).dtype == np.float32
    assert (f32**2).dtype == np.float32
    assert (f64 + 1.0).dtype == np.float64
    assert (i32 + 1).dtype == np.int32
    assert (2 * i32).dtype == np.int32
    assert (i32 + 0.5).dtype == np.float32
    assert_same(i32 + 0.5, np.full(3, 1.5, np.float32))
    assert (i32 > 0.5).dtype == np.bool_


def test_tensor_promotion():
    f32 = np.ones(3, np.float32)
    f64 = np.ones(3, np.float64)
    i32 = np.ones(3, np.int32)
    i64 = np.ones(3, np.int64)
    assert nc.add(f32, f64).dtype == np.float64
    assert (nc.asarray(f32) + f64).dtype == np.float64
    assert (f64 + nc.asarray(f32)).dtype == np.float64
    assert nc.add(i32, i64).dtype == np.int64
    assert nc.add(i32, f32).dtype == np.float32


def test_python_data_defaults():
    assert nc.asarray([1.0, 2.0]).dtype == np.float32
    assert nc.asarray([[1.5], [2.5]]).dtype == np.float32
    assert nc.asarray(1.5).dtype == np.float32
    assert nc.asarray([1, 2]).dtype == np.int64
    assert nc.asarray([True, False]).dtype == np.bool_
    assert nc.asarray(np.ones(2, np.float64)).dtype == np.float64
    assert nc.asarray([1.0, 2.0], dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.int8, np.complex64])
def test_unsupported_dtypes_raise(dtype):
    a = np.zeros(3, dtype)
    with pytest.raises(nc.DTypeError):
        nc.asarray(a)
    with pytest.raises(nc.DTypeError):
        nc.add(a, 1)
    with pytest.raises(nc.DTypeError):
        nc.asarray(np.zeros(3, np.float32)).astype(dtype)
    with pytest.raises(nc.DTypeError):
        nc.asarray(np.zeros(3, np.float32)) + a


def test_nc_dtype_objects():
    assert nc.asarray(X).astype(nc.float64).dtype == np.float64
    assert nc.asarray(X).astype("int32").dtype == np.int32
    assert nc.float32.np == np.float32
    assert nc.bool_.np == np.bool_
