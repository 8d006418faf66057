"""nc.functional building blocks and nc.losses vs PyTorch: forward outputs and gradients
(nc.grad vs torch autograd of sum(out * cotangent)), float64 rtol 1e-8, float32 rtol 1e-4."""

import numpy as np
import pytest

from nncompile import functional as fn
from nncompile import losses

from .torch_support import TOL, assert_close, check

torch = pytest.importorskip("torch")

F = torch.nn.functional

DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])


R = np.random.default_rng(11)


def n(*shape, scale=1.0):
    return R.standard_normal(shape) * scale


def nchw(x):
    return x.permute(0, 3, 1, 2)


def nhwc(x):
    return x.permute(0, 2, 3, 1)


# ----------------------------------------------------------------------------- dense


TORCH_ACT = {
    "linear": lambda t: t,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda t: torch.softmax(t, -1),
    "gelu": F.gelu,
}


@DTYPES
@pytest.mark.parametrize("act", list(TORCH_ACT))
@pytest.mark.parametrize("xshape", [(4, 6), (2, 3, 6)])
def test_dense(xshape, act, dtype):
    x, k, b = n(*xshape), n(6, 5), n(5)
    check(
        lambda x, k, b: fn.dense(x, k, b, act=act),
        lambda x, k, b: TORCH_ACT[act](F.linear(x, k.T, b)),
        [x, k, b],
        [0, 1, 2],
        dtype,
    )


@DTYPES
def test_dense_without_bias(dtype):
    check(fn.dense, lambda x, k: x @ k, [n(4, 6), n(6, 5)], [0, 1], dtype)


# ----------------------------------------------------------------------------- conv


def torch_pads(padding, hw, kernel, stride, dilation):
    """(left, right, top, bottom) for F.pad; 'same' is TF/Keras SAME_UPPER."""

    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    k, s, d = pair(kernel), pair(stride), pair(dilation)
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        begin, end = [], []
        for size, kk, ss, dd in zip(hw, k, s, d, strict=True):
            total = max((-(-size // ss) - 1) * ss + dd * (kk - 1) + 1 - size, 0)
            begin.append(total // 2)
            end.append(total - total // 2)
        return (begin[1], end[1], begin[0], end[0])
    ph, pw = pair(padding)
    return (pw, pw, ph, ph)


CONV_LAYER_CASES = [
    # (NHWC x shape, OIHW kernel, kwargs)
    ((2, 7, 7, 3), (4, 3, 3, 3), {}),
    ((2, 7, 8, 3), (4, 3, 3, 3), {"padding": "same"}),
    ((2, 7, 8, 3), (4, 3, 2, 4), {"padding": "same"}),
    ((2, 7, 8, 3), (4, 3, 3, 3), {"padding": "same", "strides": 2}),
    ((1, 8, 9, 2), (3, 2, 4, 3), {"padding": "same", "strides": (2, 3)}),
    ((1, 8, 8, 3), (2, 3, 3, 3), {"padding": 1, "strides": (2, 1)}),
    ((1, 8, 9, 3), (2, 3, 3, 2), {"padding": (2, 1), "dilation": 2}),
    ((1, 9, 9, 2), (3, 2, 3, 3), {"padding": "same", "dilation": (2, 1)}),
    ((1, 6, 6, 4), (6, 2, 3, 3), {"groups": 2, "padding": 1}),
    ((2, 5, 5, 6), (6, 1, 3, 3), {"groups": 6, "padding": "same", "act": "relu"}),
]


@DTYPES
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("xs, ws, kw", CONV_LAYER_CASES)
def test_conv2d_layer(xs, ws, kw, data_format, dtype):
    cl = data_format == "channels_last"
    x = n(*xs) if cl else n(xs[0], xs[3], xs[1], xs[2])
    w, b = n(*ws), n(ws[0])
    hw = xs[1:3]
    pads = torch_pads(
        kw.get("padding", "valid"), hw, ws[2:], kw.get("strides", 1), kw.get("dilation", 1)
    )

    def theirs(x, w, b):
        t = nchw(x) if cl else x
        t = F.pad(t, pads)
        y = F.conv2d(t, w, b, kw.get("strides", 1), 0, kw.get("dilation", 1), kw.get("groups", 1))
        y = torch.relu(y) if kw.get("act") == "relu" else y
        return nhwc(y) if cl else y

    check(
        lambda x, w, b: fn.conv2d_layer(x, w, b, data_format=data_format, **kw),
        theirs,
        [x, w, b],
        [0, 1, 2],
        dtype,
    )


@DTYPES
def test_conv2d_layer_without_bias(dtype):
    check(
        lambda x, w: fn.conv2d_layer(x, w, padding="same"),
        lambda x, w: nhwc(F.conv2d(nchw(x), w, padding="same")),
        [n(2, 6, 6, 3), n(4, 3, 3, 3)],
        [0, 1],
        dtype,
    )


# ----------------------------------------------------------------------------- pooling


POOL_LAYER_CASES = [
    (2, None, "valid"),
    (3, 1, "valid"),
    ((3, 2), (2, 1), "valid"),
    (2, None, "same"),
    (3, 2, "same"),
    (3, 1, "same"),
    ((2, 3), (1, 2), "same"),
    (3, 2, 1),
    ((3, 3), 1, (1, 1)),
]


def _pool_inputs(data_format, dtype):
    # distinct values so the max is unique in every window
    x = (R.permutation(2 * 3 * 7 * 8) / 100.0 - 1.5).reshape(2, 7, 8, 3)
    return x if data_format == "channels_last" else np.transpose(x, (0, 3, 1, 2))


def _torch_pool(kind, x, pool, strides, padding, cl):
    t = nchw(x) if cl else x
    strides = pool if strides is None else strides
    hw = t.shape[2:]
    if isinstance(padding, str):
        pads = torch_pads(padding, hw, pool, strides, 1)
        if kind == "max":
            y = F.max_pool2d(F.pad(t, pads, value=-np.inf), pool, strides)
        else:  # exclude padded cells: windowed sum / windowed count
            ones = torch.ones_like(t)
            y = F.avg_pool2d(F.pad(t, pads), pool, strides) / F.avg_pool2d(
                F.pad(ones, pads), pool, strides
            )
    elif kind == "max":
        y = F.max_pool2d(t, pool, strides, padding)
    else:
        y = F.avg_pool2d(t, pool, strides, padding, count_include_pad=False)
    return nhwc(y) if cl else y


@DTYPES
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("pool, strides, padding", POOL_LAYER_CASES)
def test_pool_layers(pool, strides, padding, data_format, kind, dtype):
    cl = data_format == "channels_last"
    layer = fn.max_pool if kind == "max" else fn.avg_pool
    check(
        lambda x: layer(x, pool, strides, padding, data_format=data_format),
        lambda x: _torch_pool(kind, x, pool, strides, padding, cl),
        [_pool_inputs(data_format, dtype)],
        [0],
        dtype,
    )


# ----------------------------------------------------------------------------- flatten, embedding


@DTYPES
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 7), (4, 2, 3)])
def test_flatten(shape, dtype):
    check(fn.flatten, lambda x: torch.flatten(x, 1), [n(*shape)], [0], dtype)


@DTYPES
@pytest.mark.parametrize("ids_shape", [(6,), (3, 4), (2, 2, 3)])
def test_embedding(ids_shape, dtype):
    ids = R.integers(0, 4, ids_shape)  # vocab 7, only ids < 4: repeats and unused rows
    check(
        lambda i, t: fn.embedding(i, t),
        lambda i, t: F.embedding(i, t),
        [ids, n(7, 5)],
        [1],
        dtype,
    )


# ----------------------------------------------------------------------------- batch norm


BN_CASES = [
    # (x shape, axis)
    ((8, 5), 1),
    ((8, 5), -1),
    ((4, 3, 5, 6), 1),
    ((4, 5, 6, 3), -1),
]


def _torch_bn(x, gamma, beta, rm, rv, training, momentum, eps, axis):
    channels_last = x.ndim == 4 and axis == -1
    t = nchw(x) if channels_last else x
    y = F.batch_norm(t, rm, rv, gamma, beta, training, momentum, eps)
    return nhwc(y) if channels_last else y


def _bn_inputs(shape, axis):
    c = shape[axis]
    x = n(*shape, scale=2.0) + 0.5
    return x, R.uniform(0.5, 1.5, c), n(c), n(c, scale=0.1), R.uniform(0.5, 2.0, c)


@DTYPES
@pytest.mark.parametrize("momentum, eps", [(0.1, 1e-5), (0.3, 1e-3)])
@pytest.mark.parametrize("shape, axis", BN_CASES)
def test_batch_norm_training(shape, axis, momentum, eps, dtype):
    x, gamma, beta, rm, rv = (a.astype(dtype) for a in _bn_inputs(shape, axis))
    y, new_mean, new_var = fn.batch_norm(x, gamma, beta, rm, rv, True, momentum, eps, axis)
    trm, trv = torch.tensor(rm), torch.tensor(rv)  # torch updates these in place
    want = _torch_bn(
        torch.tensor(x),
        torch.tensor(gamma),
        torch.tensor(beta),
        trm,
        trv,
        True,
        momentum,
        eps,
        axis,
    )
    rtol = TOL[dtype]
    assert_close(y, want, rtol, "y")
    assert_close(new_mean, trm, rtol, "running mean")
    assert_close(new_var, trv, rtol, "running var (unbiased)")
    # gradients of the normalized output
    check(
        lambda x, g, b: fn.batch_norm(x, g, b, rm, rv, True, momentum, eps, axis)[0],
        lambda x, g, b: _torch_bn(x, g, b, None, None, True, momentum, eps, axis),
        [x, gamma, beta],
        [0, 1, 2],
        dtype,
    )


@DTYPES
@pytest.mark.parametrize("shape, axis", BN_CASES)
def test_batch_norm_eval(shape, axis, dtype):
    x, gamma, beta, rm, rv = _bn_inputs(shape, axis)
    y, new_mean, new_var = fn.batch_norm(
        x.astype(dtype),
        gamma.astype(dtype),
        beta.astype(dtype),
        rm.astype(dtype),
        rv.astype(dtype),
        False,
        axis=axis,
    )
    np.testing.assert_array_equal(np.asarray(new_mean), rm.astype(dtype))
    np.testing.assert_array_equal(np.asarray(new_var), rv.astype(dtype))
    check(
        lambda x, g, b, m, v: fn.batch_norm(x, g, b, m, v, False, axis=axis)[0],
        lambda x, g, b, m, v: _torch_bn(x, g, b, m, v, False, 0.1, 1e-5, axis),
        [x, gamma, beta, rm, rv],
        [0, 1, 2],
        dtype,
    )


def test_batch_norm_running_stats_over_steps():
    """Three training steps thread the running stats like torch.nn.BatchNorm2d."""
    bn = torch.nn.BatchNorm2d(3, momentum=0.2).double().train()
    rm, rv = np.zeros(3), np.ones(3)
    gamma, beta = np.ones(3), np.zeros(3)
    for _ in range(3):
        x = n(4, 3, 5, 5, scale=3.0) + 1.0
        y, rm, rv = fn.batch_norm(x, gamma, beta, rm, rv, True, momentum=0.2)
        assert_close(y, bn(torch.tensor(x)), 1e-8)
    assert_close(rm, bn.running_mean, 1e-8)
    assert_close(rv, bn.running_var, 1e-8)


# ----------------------------------------------------------------------------- recurrent


N_, T_, F_, H_ = 3, 5, 4, 6
TORCH_RNN = {
    "rnn_tanh": lambda: torch.nn.RNN(F_, H_, batch_first=True, nonlinearity="tanh"),
    "rnn_relu": lambda: torch.nn.RNN(F_, H_, batch_first=True, nonlinearity="relu"),
    "lstm": lambda: torch.nn.LSTM(F_, H_, batch_first=True),
    "gru": lambda: torch.nn.GRU(F_, H_, batch_first=True),
}
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _nc_rnn(kind, with_state, return_sequences):
    def f(x, w_ih, w_hh, b_ih, b_hh, *state):
        state = state if with_state else ()
        if kind == "lstm":
            h0, c0 = state or (None, None)
            return fn.lstm(x, w_ih, w_hh, b_ih, b_hh, h0, c0, return_sequences)
        h0 = state[0] if state else None
        if kind == "gru":
            return fn.gru(x, w_ih, w_hh, b_ih, b_hh, h0, return_sequences)
        return fn.simple_rnn(x, w_ih, w_hh, b_ih, b_hh, h0, kind[4:], return_sequences)

    return f


def _torch_rnn(kind, with_state, return_sequences, dtype):
    module = TORCH_RNN[kind]().to(torch.float64 if dtype == np.float64 else torch.float32)

    def f(x, w_ih, w_hh, b_ih, b_hh, *state):
        params = {
            "weight_ih_l0": w_ih,
            "weight_hh_l0": w_hh,
            "bias_ih_l0": b_ih,
            "bias_hh_l0": b_hh,
        }
        args = (x,)
        if with_state:
            hx = tuple(s[None] for s in state)
            args = (x, hx if kind == "lstm" else hx[0])
        out, hn = torch.func.functional_call(module, params, args)
        out = out if return_sequences else out[:, -1]
        if kind == "lstm":
            return out, (hn[0][0], hn[1][0])
        return out, hn[0]

    return f


@DTYPES
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("with_state", [False, True], ids=["no_h0", "h0"])
@pytest.mark.parametrize("kind", list(TORCH_RNN))
def test_recurrent(kind, with_state, return_sequences, dtype):
    g = GATES[kind]
    scale = 0.3 if kind == "rnn_relu" else 0.6
    args = [
        n(N_, T_, F_),
        n(g * H_, F_, scale=scale),
        n(g * H_, H_, scale=scale),
        n(g * H_, scale=0.3),
        n(g * H_, scale=0.3),
    ]
    if with_state:
        args += [n(N_, H_, scale=0.5) for _ in range(2 if kind == "lstm" else 1)]
    check(
        _nc_rnn(kind, with_state, return_sequences),
        _torch_rnn(kind, with_state, return_sequences, dtype),
        args,
        list(range(len(args))),
        dtype,
    )


# ----------------------------------------------------------------------------- losses


LOGITS = R.standard_normal((6, 5)) * 2
LABELS = R.integers(0, 5, 6)
ONEHOT = np.eye(5)[LABELS]
SOFT = np.exp(R.standard_normal((6, 5)))
SOFT /= SOFT.sum(-1, keepdims=True)
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
BIN = R.integers(0, 2, (4, 3)).astype(np.float64)
BLOGITS = R.standard_normal((4, 3)) * 3
BPROBS = R.uniform(0.02, 0.98, (4, 3))
YT, YP = R.standard_normal((4, 3)), R.standard_normal((4, 3))


def _clog(p):
    return torch.log(p).clamp(min=-100)


LOSS_CASES = {
    # name: (nc fn(y_true, y_pred), torch fn(y_true, y_pred), args, argnums)
    "mse": (losses.mean_squared_error, lambda t, p: F.mse_loss(p, t), [YT, YP], [0, 1]),
    "mae": (losses.mean_absolute_error, lambda t, p: F.l1_loss(p, t), [YT, YP], [0, 1]),
    "sparse_ce_logits": (
        lambda t, p: losses.sparse_categorical_crossentropy(t, p, from_logits=True),
        lambda t, p: F.cross_entropy(p, t),
        [LABELS, LOGITS],
        [1],
    ),
    "sparse_ce_probs": (
        losses.sparse_categorical_crossentropy,
        lambda t, p: F.nll_loss(torch.log(p), t),
        [LABELS, PROBS],
        [1],
    ),
    "categorical_ce_logits_onehot": (
        lambda t, p: losses.categorical_crossentropy(t, p, from_logits=True),
        lambda t, p: F.cross_entropy(p, t),
        [ONEHOT, LOGITS],
        [1],
    ),
    "categorical_ce_logits_soft": (
        lambda t, p: losses.categorical_crossentropy(t, p, from_logits=True),
        lambda t, p: F.cross_entropy(p, t),
        [SOFT, LOGITS],
        [0, 1],
    ),
    "categorical_ce_probs": (
        losses.categorical_crossentropy,
        lambda t, p: -(t * torch.log(p)).sum(-1).mean(),
        [SOFT, PROBS],
        [0, 1],
    ),
    "binary_ce_logits": (
        lambda t, p: losses.binary_crossentropy(t, p, from_logits=True),
        lambda t, p: F.binary_cross_entropy_with_logits(p, t),
        [BIN, BLOGITS],
        [0, 1],
    ),
    "binary_ce_probs": (
        losses.binary_crossentropy,
        lambda t, p: F.binary_cross_entropy(p, t),
        [BIN, BPROBS],
        [1],
    ),
    "binary_ce_probs_soft_targets": (
        losses.binary_crossentropy,
        lambda t, p: F.binary_cross_entropy(p, t),
        [BPROBS[::-1].copy(), BPROBS],
        [1],
    ),
}


@DTYPES
@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_loss(name, dtype):
    ours, theirs, args, argnums = LOSS_CASES[name]
    check(ours, theirs, args, argnums, dtype)


@pytest.mark.parametrize("name", ["sparse_ce_probs", "categorical_ce_probs", "binary_ce_probs"])
def test_probability_losses_clamp_log_like_torch(name):
    """A zero probability on the true class gives log clamped at -100 (PyTorch's BCE)."""
    p = np.array([[0.0, 0.3, 0.7], [0.2, 0.8, 0.0]])
    if name == "sparse_ce_probs":
        t = np.array([0, 2])
        got = losses.sparse_categorical_crossentropy(t, p)
        want = F.nll_loss(_clog(torch.tensor(p)), torch.tensor(t))
    elif name == "categorical_ce_probs":
        t = np.eye(3)[[0, 2]]
        got = losses.categorical_crossentropy(t, p)
        want = -(torch.tensor(t) * _clog(torch.tensor(p))).sum(-1).mean()
    else:
        p, t = np.array([0.0, 1.0, 0.4]), np.array([1.0, 0.0, 1.0])
        got = losses.binary_crossentropy(t, p)
        want = F.binary_cross_entropy(torch.tensor(p), torch.tensor(t))
    assert np.isfinite(np.asarray(got))
    assert_close(got, want, 1e-10)


def test_losses_by_name():
    for name in ["mse", "mae", "sparse_categorical_crossentropy", "binary_crossentropy"]:
        assert losses.get(name) is losses.LOSSES[name]
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("nope")
