"""Composites against independent NumPy formulas (float64 to rtol 1e-10, float32 to float32
precision), numerical stability at logits of +-1e4, and traced == eager for each."""

import math

import numpy as np
import pytest

import nncompile as nc

RNG = np.random.default_rng(2)
_erf = np.vectorize(math.erf, otypes=[np.float64])


# ---- independent references (float64 NumPy) -----------------------------------------------


def ref_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ref_log_softmax(x, axis=-1):
    return np.log(ref_softmax(x, axis))


def ref_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def ref_cross_entropy(logits, labels):
    p = ref_softmax(logits, axis=1)
    if labels.ndim == 1:
        return -np.mean(np.log(p[np.arange(len(labels)), labels]))
    return -np.mean(np.sum(labels * np.log(p), axis=1))


def ref_bce(p, t):
    return -np.mean(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100))


def ref_bce_logits(x, t):
    # log sigmoid(x) = -log1p(e^-x), log(1 - sigmoid(x)) = -log1p(e^x); |x| kept moderate.
    return -np.mean(t * -np.log1p(np.exp(-x)) + (1 - t) * -np.log1p(np.exp(x)))


def ref_gelu(x):
    return x * 0.5 * (1 + _erf(x / math.sqrt(2)))


def ref_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def ref_softplus(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(np.minimum(beta * x, 50))) / beta)


def ref_layer_norm(x, shape, w=None, b=None, eps=1e-5):
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


# ---- cases: (nc function, reference, float64 args builder) -------------------------------

LOGITS = RNG.standard_normal((5, 7)) * 3
LABELS = RNG.integers(0, 7, 5)
PROBS = RNG.uniform(0.01, 0.99, (4, 6))
TARGETS = RNG.integers(0, 2, (4, 6)).astype(np.float64)
X = RNG.standard_normal((4, 6)) * 2
X3 = RNG.standard_normal((2, 3, 4))
W = RNG.standard_normal((5, 6))
B = RNG.standard_normal(5)
LN_W = RNG.standard_normal((3, 4))
LN_B = RNG.standard_normal((3, 4))

CASES = {
    "softmax": (nc.softmax, ref_softmax, (LOGITS,), {}),
    "softmax_axis0": (nc.softmax, ref_softmax, (X3,), {"axis": 0}),
    "log_softmax": (nc.log_softmax, ref_log_softmax, (LOGITS,), {}),
    "log_softmax_axis1": (nc.log_softmax, ref_log_softmax, (X3,), {"axis": 1}),
    "logsumexp_all": (nc.logsumexp, ref_logsumexp, (X3,), {}),
    "logsumexp_axis": (nc.logsumexp, ref_logsumexp, (X3,), {"axis": -1}),
    "logsumexp_axes_keep": (nc.logsumexp, ref_logsumexp, (X3,), {"axis": (0, 2), "keepdims": True}),
    "cross_entropy_int": (nc.cross_entropy, ref_cross_entropy, (LOGITS, LABELS), {}),
    "cross_entropy_onehot": (
        nc.cross_entropy,
        ref_cross_entropy,
        (LOGITS, np.eye(7)[LABELS]),
        {},
    ),
    "cross_entropy_soft": (
        nc.cross_entropy,
        ref_cross_entropy,
        (LOGITS, ref_softmax(RNG.standard_normal((5, 7)))),
        {},
    ),
    "bce": (nc.binary_cross_entropy, ref_bce, (PROBS, TARGETS), {}),
    "bce_with_logits": (nc.binary_cross_entropy_with_logits, ref_bce_logits, (X, TARGETS), {}),
    "mse": (nc.mse, lambda p, t: np.mean((p - t) ** 2), (X, PROBS), {}),
    "mae": (nc.mae, lambda p, t: np.mean(np.abs(p - t)), (X, PROBS), {}),
    "linear": (nc.linear, lambda x, w, b: x @ w.T + b, (X, W, B), {}),
    "linear_nobias": (nc.linear, lambda x, w: x @ w.T, (X, W), {}),
    "gelu": (nc.gelu, ref_gelu, (X,), {}),
    "gelu_tanh": (nc.gelu, lambda x, approximate: ref_gelu_tanh(x), (X,), {"approximate": "tanh"}),
    "leaky_relu": (nc.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), (X,), {}),
    "leaky_relu_slope": (
        nc.leaky_relu,
        lambda x, negative_slope: np.where(x > 0, x, negative_slope * x),
        (X,),
        {"negative_slope": 0.2},
    ),
    "elu": (nc.elu, lambda x: np.where(x > 0, x, np.expm1(x)), (X,), {}),
    "elu_alpha": (
        nc.elu,
        lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(x)),
        (X,),
        {"alpha": 1.7},
    ),
    "softplus": (nc.softplus, ref_softplus, (X * 5,), {}),
    "softplus_beta": (nc.softplus, ref_softplus, (X * 5,), {"beta": 2.0, "threshold": 10.0}),
    "layer_norm": (
        nc.layer_norm,
        lambda x, s: ref_layer_norm(x, (s,)),
        (X3 * 3 + 1, 4),
        {},
    ),
    "layer_norm_affine": (
        nc.layer_norm,
        lambda x, s, weight, bias, eps: ref_layer_norm(x, s, weight, bias, eps),
        (X3 * 3 + 1, (3, 4)),
        {"weight": LN_W, "bias": LN_B, "eps": 1e-3},
    ),
}


def _as(dtype, v):
    if isinstance(v, np.ndarray) and v.dtype == np.float64:
        return v.astype(dtype)
    return v


@pytest.mark.parametrize("name", list(CASES))
def test_composite_float64_matches_reference(name):
    fn, ref, args, kwargs = CASES[name]
    got = fn(*args, **kwargs)
    assert isinstance(got, nc.Tensor)
    want = np.asarray(ref(*args, **kwargs))
    assert got.dtype == np.float64
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", list(CASES))
def test_composite_float32_stays_float32_and_is_accurate(name):
    fn, ref, args, kwargs = CASES[name]
    args32 = [_as(np.float32, a) for a in args]
    kwargs32 = {k: _as(np.float32, v) for k, v in kwargs.items()}
    got = fn(*args32, **kwargs32)
    assert got.dtype == np.float32
    # Reference in float64 from the same (float32-rounded) inputs.
    want = ref(*[_as(np.float64, a) for a in args32], **kwargs)
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CASES))
def test_composite_traced_equals_eager(name, dtype):
    fn, _, args, kwargs = CASES[name]
    args = [_as(dtype, a) for a in args]
    kwargs = {k: _as(dtype, v) for k, v in kwargs.items()}
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    statics = [a for a in args if not isinstance(a, np.ndarray)]

    def f(*arrs):
        return fn(*arrs, *statics, **kwargs)

    eager = np.asarray(f(*arrays))
    g = nc.trace(f, *arrays)
    out = nc.run(g, *arrays)
    assert out.dtype == eager.dtype
    assert np.array_equal(out, eager)


# ---- specific values and edge cases -------------------------------------------------------


def test_cross_entropy_is_mean_over_batch():
    logits = np.array([[0.0, 0.0], [0.0, math.log(3.0)]])
    labels = np.array([0, 1])
    want = (math.log(2.0) + -math.log(0.75)) / 2
    assert float(nc.cross_entropy(logits, labels)) == pytest.approx(want, rel=1e-12)
    onehot = np.eye(2)[labels]
    assert float(nc.cross_entropy(logits, onehot)) == pytest.approx(want, rel=1e-12)


def test_cross_entropy_accepts_int32_labels():
    got = nc.cross_entropy(LOGITS, LABELS.astype(np.int32))
    np.testing.assert_allclose(float(got), ref_cross_entropy(LOGITS, LABELS), rtol=1e-10)


def test_binary_cross_entropy_clamps_log_at_minus_100():
    p = np.array([0.0, 1.0, 0.0, 1.0])
    t = np.array([1.0, 0.0, 0.0, 1.0])
    got = nc.binary_cross_entropy(p, t)
    assert np.isfinite(float(got))
    assert float(got) == pytest.approx(50.0, rel=1e-12)  # (100 + 100 + 0 + 0) / 4


@pytest.mark.parametrize(
    ("name", "fn", "ref"),
    [
        ("mse", nc.mse, lambda d: np.mean(d**2)),
        ("mae", nc.mae, lambda d: np.mean(np.abs(d))),
    ],
)
def test_regression_losses_squeeze_a_trailing_1_instead_of_broadcasting(name, fn, ref):
    """(3, 1) predictions against (3,) targets meet element by element (Keras), not as a
    (3, 3) broadcast; either operand may carry the trailing 1."""
    pred, target = np.array([[1.0], [2.0], [4.0]]), np.array([0.0, 2.0, 1.0])
    want = ref(pred[:, 0] - target)
    assert float(fn(pred, target)) == pytest.approx(want, rel=1e-12)
    assert float(fn(pred[:, 0], target[:, None])) == pytest.approx(want, rel=1e-12)
    assert float(nc.run(nc.trace(fn, pred, target), pred, target)) == pytest.approx(want, rel=1e-12)
    with pytest.raises(nc.ShapeError, match=r"\(3, 1\).*\(1, 3\)|\(1, 3\).*\(3, 1\)"):
        fn(pred, target[None, :])


def test_binary_cross_entropy_squeezes_a_trailing_1():
    p, t = np.array([[0.9], [0.2], [0.6]]), np.array([1.0, 0.0, 0.0])
    want = ref_bce(p[:, 0], t)
    assert float(nc.binary_cross_entropy(p, t)) == pytest.approx(want, rel=1e-12)
    logits = np.log(p / (1 - p))
    got = nc.binary_cross_entropy_with_logits(logits, t)
    assert float(got) == pytest.approx(want, rel=1e-10)
    with pytest.raises(nc.ShapeError, match=r"\(3, 2\)"):
        nc.binary_cross_entropy(p, np.zeros((3, 2)))


def test_logsumexp_rows_of_minus_inf():
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, math.log(3.0)]])
    got = np.asarray(nc.logsumexp(x, axis=1))
    assert got[0] == -np.inf
    assert got[1] == pytest.approx(math.log(4.0), rel=1e-12)
    assert np.isneginf(float(nc.logsumexp(np.full(4, -np.inf))))
    got32 = np.asarray(nc.logsumexp(x.astype(np.float32), axis=1))
    assert got32.dtype == np.float32
    assert got32[0] == -np.inf and not np.isnan(got32).any()


def test_logsumexp_axis_none_is_scalar():
    got = nc.logsumexp(X3)
    assert got.shape == ()
    assert float(got) == pytest.approx(math.log(np.exp(X3).sum()), rel=1e-12)
    assert nc.logsumexp(X3, keepdims=True).shape == (1, 1, 1)


def test_softmax_rows_sum_to_one():
    s = np.asarray(nc.softmax(LOGITS.astype(np.float32), axis=1))
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-6)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError):
        nc.gelu(X, approximate="fast")


def test_softplus_threshold_is_linear():
    x = np.array([25.0, 15.0, -30.0])
    got = np.asarray(nc.softplus(x))
    assert got[0] == 25.0  # above the threshold: exactly x
    assert got[1] == pytest.approx(math.log1p(math.exp(15.0)), rel=1e-12)
    assert got[2] == pytest.approx(math.log1p(math.exp(-30.0)), rel=1e-10)


# ---- numerical stability at +-1e4 ---------------------------------------------------------

BIG = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]])
BIG_LABELS = np.array([1, 2, 2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stability_with_large_logits(dtype):
    x = BIG.astype(dtype)

    def finite(t):
        a = np.asarray(t)
        assert a.dtype == dtype
        assert np.isfinite(a).all(), a
        return a

    s = finite(nc.softmax(x))
    np.testing.assert_allclose(s, [[1, 0, 0], [0, 0, 1], [0.5, 0.5, 0]], atol=1e-7)
    ls = finite(nc.log_softmax(x))
    np.testing.assert_allclose(ls[0], [0, -2e4, -1e4], rtol=1e-6)
    lse = finite(nc.logsumexp(x, axis=1))
    np.testing.assert_allclose(lse, [1e4, 1e4, 1e4 + math.log(2)], rtol=1e-6)
    finite(nc.logsumexp(x))
    ce = finite(nc.cross_entropy(x, BIG_LABELS))
    np.testing.assert_allclose(ce, (2e4 + 0 + 2e4 + math.log(2)) / 3, rtol=1e-6)
    ce1 = finite(nc.cross_entropy(x, np.eye(3, dtype=dtype)[BIG_LABELS]))
    np.testing.assert_allclose(ce1, ce, rtol=1e-6)
    bce = finite(nc.binary_cross_entropy_with_logits(x[0], np.array([0.0, 1.0, 1.0], dtype=dtype)))
    np.testing.assert_allclose(bce, (1e4 + 1e4 + math.log(2)) / 3, rtol=1e-6)
    sp = finite(nc.softplus(x[0]))
    np.testing.assert_allclose(sp, [1e4, 0, math.log(2)], rtol=1e-6)
    sp2 = finite(nc.softplus(x[0], beta=0.5, threshold=1e9))
    np.testing.assert_allclose(sp2, [1e4, 0, 2 * math.log(2)], rtol=1e-6)
