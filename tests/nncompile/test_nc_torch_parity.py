"""nn ops and composites against torch.nn.functional in float64 (skipped without torch)."""

import numpy as np
import pytest

import nncompile as nc

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(3)


def T(a):
    return torch.from_numpy(np.asarray(a))


def close(got, want, rtol=1e-10, atol=1e-12):
    got = np.asarray(got)
    want = want.detach().numpy()
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


CONV_CASES = [
    # (x shape, w shape, kwargs)
    ((2, 3, 7, 7), (4, 3, 3, 3), {}),
    ((2, 3, 7, 8), (4, 3, 3, 2), {"stride": 2}),
    ((1, 3, 7, 7), (4, 3, 3, 3), {"stride": (2, 1), "padding": (1, 2)}),
    ((1, 2, 9, 9), (3, 2, 3, 3), {"padding": 2, "dilation": 2}),
    ((1, 2, 9, 8), (3, 2, 3, 2), {"dilation": (2, 3), "stride": 2, "padding": 1}),
    ((1, 4, 6, 6), (6, 2, 3, 3), {"groups": 2, "padding": 1}),
    ((2, 6, 5, 5), (6, 1, 3, 3), {"groups": 6}),
    ((1, 3, 6, 7), (2, 3, 3, 3), {"padding": "same"}),
    ((1, 3, 6, 7), (2, 3, 4, 2), {"padding": "same"}),
    ((1, 3, 8, 8), (2, 3, 3, 4), {"padding": "same", "dilation": 2}),
    ((1, 3, 6, 7), (2, 3, 3, 3), {"padding": "valid"}),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("xs, ws, kwargs", CONV_CASES)
def test_conv2d_matches_torch(xs, ws, kwargs, bias):
    x, w = RNG.standard_normal(xs), RNG.standard_normal(ws)
    b = RNG.standard_normal(ws[0]) if bias else None
    got = nc.conv2d(x, w, b, **kwargs)
    want = F.conv2d(T(x), T(w), None if b is None else T(b), **kwargs)
    close(got, want)


POOL_CASES = [
    (2, {}),
    (3, {"stride": 1}),
    ((3, 2), {"stride": (2, 1)}),
    (3, {"stride": 2, "padding": 1}),
    ((2, 3), {"padding": (1, 1)}),
    (2, {"stride": 1, "padding": 1}),
]


@pytest.mark.parametrize("k, kwargs", POOL_CASES + [(3, {"dilation": 2}), (2, {"dilation": 2})])
def test_max_pool2d_matches_torch(k, kwargs):
    x = RNG.standard_normal((2, 3, 9, 8))
    close(nc.max_pool2d(x, k, **kwargs), F.max_pool2d(T(x), k, **kwargs))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("k, kwargs", POOL_CASES)
def test_avg_pool2d_matches_torch(k, kwargs, count_include_pad):
    x = RNG.standard_normal((2, 3, 9, 8))
    got = nc.avg_pool2d(x, k, count_include_pad=count_include_pad, **kwargs)
    want = F.avg_pool2d(T(x), k, count_include_pad=count_include_pad, **kwargs)
    close(got, want)


def test_avg_pool2d_default_counts_padding():
    x = RNG.standard_normal((1, 1, 4, 4))
    close(nc.avg_pool2d(x, 3, stride=1, padding=1), F.avg_pool2d(T(x), 3, stride=1, padding=1))


LOGITS = RNG.standard_normal((6, 5)) * 3
LABELS = RNG.integers(0, 5, 6)
X = RNG.standard_normal((4, 7)) * 3
X3 = RNG.standard_normal((2, 3, 4))
P = RNG.uniform(0.01, 0.99, (4, 7))
TGT = RNG.integers(0, 2, (4, 7)).astype(np.float64)
W = RNG.standard_normal((3, 7))
B = RNG.standard_normal(3)
LNW, LNB = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))

COMPOSITES = {
    "softmax": (lambda: nc.softmax(X3, axis=1), lambda: F.softmax(T(X3), dim=1)),
    "log_softmax": (lambda: nc.log_softmax(LOGITS), lambda: F.log_softmax(T(LOGITS), dim=-1)),
    "logsumexp": (lambda: nc.logsumexp(X3, axis=2), lambda: torch.logsumexp(T(X3), dim=2)),
    "logsumexp_keep": (
        lambda: nc.logsumexp(X3, axis=(0, 1), keepdims=True),
        lambda: torch.logsumexp(T(X3), dim=(0, 1), keepdim=True),
    ),
    "cross_entropy": (
        lambda: nc.cross_entropy(LOGITS, LABELS),
        lambda: F.cross_entropy(T(LOGITS), T(LABELS)),
    ),
    "cross_entropy_onehot": (
        lambda: nc.cross_entropy(LOGITS, np.eye(5)[LABELS]),
        lambda: F.cross_entropy(T(LOGITS), T(np.eye(5)[LABELS])),
    ),
    "bce": (
        lambda: nc.binary_cross_entropy(P, TGT),
        lambda: F.binary_cross_entropy(T(P), T(TGT)),
    ),
    "bce_clamped": (
        lambda: nc.binary_cross_entropy(np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 1.0])),
        lambda: F.binary_cross_entropy(T([0.0, 1.0, 0.5]).double(), T([1.0, 0.0, 1.0]).double()),
    ),
    "bce_logits": (
        lambda: nc.binary_cross_entropy_with_logits(X, TGT),
        lambda: F.binary_cross_entropy_with_logits(T(X), T(TGT)),
    ),
    "mse": (lambda: nc.mse(X, P), lambda: F.mse_loss(T(X), T(P))),
    "mae": (lambda: nc.mae(X, P), lambda: F.l1_loss(T(X), T(P))),
    "linear": (lambda: nc.linear(X, W, B), lambda: F.linear(T(X), T(W), T(B))),
    "gelu": (lambda: nc.gelu(X), lambda: F.gelu(T(X))),
    "gelu_tanh": (
        lambda: nc.gelu(X, approximate="tanh"),
        lambda: F.gelu(T(X), approximate="tanh"),
    ),
    "leaky_relu": (lambda: nc.leaky_relu(X, 0.1), lambda: F.leaky_relu(T(X), 0.1)),
    "elu": (lambda: nc.elu(X, 0.7), lambda: F.elu(T(X), 0.7)),
    "softplus": (lambda: nc.softplus(X * 10), lambda: F.softplus(T(X * 10))),
    "softplus_beta": (
        lambda: nc.softplus(X * 10, beta=2.0, threshold=5.0),
        lambda: F.softplus(T(X * 10), beta=2.0, threshold=5.0),
    ),
    "layer_norm": (
        lambda: nc.layer_norm(X3, 4),
        lambda: F.layer_norm(T(X3), (4,)),
    ),
    "layer_norm_affine": (
        lambda: nc.layer_norm(X3, (3, 4), LNW, LNB, eps=1e-3),
        lambda: F.layer_norm(T(X3), (3, 4), T(LNW), T(LNB), eps=1e-3),
    ),
}


@pytest.mark.parametrize("name", list(COMPOSITES))
def test_composite_matches_torch(name):
    ours, theirs = COMPOSITES[name]
    close(ours(), theirs(), rtol=1e-9, atol=1e-12)


def test_small_cnn_matches_torch():
    x = RNG.standard_normal((2, 1, 8, 8))
    w1, b1 = RNG.standard_normal((4, 1, 3, 3)), RNG.standard_normal(4)
    wd, bd = RNG.standard_normal((10, 4 * 4 * 4)), RNG.standard_normal(10)
    labels = RNG.integers(0, 10, 2)

    def ours(x):
        h = nc.max_pool2d(nc.relu(nc.conv2d(x, w1, b1, padding=1)), 2)
        return nc.cross_entropy(nc.linear(h.reshape(2, -1), wd, bd), labels)

    h = F.max_pool2d(F.relu(F.conv2d(T(x), T(w1), T(b1), padding=1)), 2)
    want = F.cross_entropy(F.linear(h.reshape(2, -1), T(wd), T(bd)), T(labels))
    close(ours(x), want, rtol=1e-10)
    close(nc.run(nc.trace(ours, x), x), want, rtol=1e-10)
