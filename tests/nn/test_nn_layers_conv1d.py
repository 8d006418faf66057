"""Conv1D, MaxPooling1D and AveragePooling1D with Keras' arguments and kernel layout:
against torch.nn.functional in float64 (outputs and gradients of input and weights),
'causal' padding, compiled float32 against eager, saving and a short fit."""

import numpy as np
import pytest

from nncompile import nn, optim
from nncompile.errors import ConfigError, ShapeError

from .layer_checks import (
    built,
    check_compiled,
    check_layer,
    normal,
    round_trip,
    summary_rows,
    torch,
)

F = torch.nn.functional
CL = "channels_last"


def ncw(t):  # (N, L, C) <-> (N, C, L)
    return t.permute(0, 2, 1)


def same_pads(size, kernel, stride, dilation=1):
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


CONV_CASES = [
    # kernel, strides, padding, dilation, groups, use_bias, data_format
    (3, 1, "valid", 1, 1, True, CL),
    (3, 2, "same", 1, 1, True, CL),
    (4, 3, "same", 1, 2, False, CL),
    (3, 1, "causal", 2, 1, True, CL),
    (2, 1, "causal", 1, 2, True, "channels_first"),
    (3, 2, "valid", 2, 1, True, "channels_first"),
]


@pytest.mark.parametrize("kernel, strides, padding, dilation, groups, use_bias, fmt", CONV_CASES)
def test_conv1d_matches_torch(kernel, strides, padding, dilation, groups, use_bias, fmt):
    layer = nn.Conv1D(
        6,
        kernel,
        strides,
        padding,
        fmt,
        dilation,
        groups,
        activation="relu",
        use_bias=use_bias,
    )
    shape = (9, 4) if fmt == CL else (4, 9)
    built(layer, shape)
    layer.params = {k: normal(*v.shape) for k, v in layer.params.items()}
    assert layer.params["kernel"].shape == (kernel, 4 // groups, 6)

    def theirs(x, kernel_, bias=None):
        t = ncw(x) if fmt == CL else x
        if padding == "causal":
            t = F.pad(t, (dilation * (kernel - 1), 0))
        elif padding == "same":
            t = F.pad(t, same_pads(t.shape[2], kernel, strides, dilation))
        y = F.conv1d(t, kernel_.permute(2, 1, 0), bias, strides, 0, dilation, groups)
        y = torch.relu(y)
        return ncw(y) if fmt == CL else y

    check_layer(layer, theirs, normal(2, *shape))


def test_causal_conv1d_output_depends_only_on_the_past():
    layer = built(nn.Conv1D(2, 3, padding="causal", dilation_rate=2), (8, 1))
    x = normal(1, 8, 1)
    ctx = nn.CallContext(False)
    y = np.asarray(layer.call(layer.params, x, ctx))
    x[:, 5:] += 1.0
    changed = np.asarray(layer.call(layer.params, x, ctx))
    np.testing.assert_array_equal(changed[:, :5], y[:, :5])
    assert not np.allclose(changed[:, 5:], y[:, 5:])


POOL_CASES = [(2, None, "valid"), (3, 1, "same"), (3, 2, "same"), (2, 3, "valid")]


def torch_pool1d(kind, t, pool, strides, padding):
    """t (N, C, L); 'same' is Keras': padded cells are ignored by both max and average."""
    strides = strides or pool
    if padding == "same":
        pads = same_pads(t.shape[2], pool, strides)
        if kind == "max":
            return F.max_pool1d(F.pad(t, pads, value=-np.inf), pool, strides)
        ones = torch.ones_like(t)
        total = F.avg_pool1d(F.pad(t, pads), pool, strides)
        return total / F.avg_pool1d(F.pad(ones, pads), pool, strides)
    pool_fn = F.max_pool1d if kind == "max" else F.avg_pool1d
    return pool_fn(t, pool, strides)


@pytest.mark.parametrize("fmt", [CL, "channels_first"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool, strides, padding", POOL_CASES)
def test_pooling1d_matches_torch(pool, strides, padding, kind, fmt):
    cls = nn.MaxPooling1D if kind == "max" else nn.AveragePooling1D
    shape = (8, 3) if fmt == CL else (3, 8)
    layer = built(cls(pool, strides, padding, fmt), shape)

    def theirs(x):
        t = ncw(x) if fmt == CL else x
        y = torch_pool1d(kind, t, pool, strides, padding)
        return ncw(y) if fmt == CL else y

    x = (np.random.default_rng(2).permutation(48) / 10.0).reshape(2, *shape)  # distinct
    check_layer(layer, theirs, x)


def sequence_model(seed=0):
    return nn.Sequential(
        [
            nn.Conv1D(6, 3, padding="causal", activation="relu", input_shape=(12, 2)),
            nn.MaxPooling1D(2),
            nn.Conv1D(6, 2, strides=2, padding="same", groups=2, activation="relu"),
            nn.AveragePooling1D(2, strides=1, padding="same"),
            nn.GlobalMaxPooling1D(),
            nn.Dense(2, activation="softmax"),
        ],
        name="conv1d",
        seed=seed,
    )


def sequences(n=96, seed=0):
    """Class 1 holds a bump early in channel 0; class 0 late."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, 12, 2))
    for i, label in enumerate(y):
        start = 1 if label else 8
        x[i, start : start + 3, 0] += 1.5
    return x.astype(np.float32), y.astype(np.int64)


def test_summary_compiled_saving_and_fit(tmp_path):
    model = sequence_model()
    rows = summary_rows(model)
    assert rows["conv1d"] == ("Conv1D", "(None, 12, 6)", "42")  # 3 * 2 * 6 + 6
    assert rows["conv1d_1"] == ("Conv1D", "(None, 3, 6)", "42")  # 2 * 3 * 6 + 6
    assert rows["max_pooling1d"] == ("MaxPooling1D", "(None, 6, 6)", "0")
    check_compiled(model, normal(3, 12, 2))
    x, y = sequences()
    model.compile(optim.Adam(2e-2), "sparse_categorical_crossentropy")
    before = model.evaluate(x, y, batch_size=32)["loss"]
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=0)
    assert model.evaluate(x, y, batch_size=32)["loss"] < 0.8 * before
    round_trip(model, x[:4], tmp_path)


@pytest.mark.parametrize(
    "make, shape, error, match",
    [
        (lambda: nn.Conv1D(4, 3, padding="full"), None, ConfigError, "causal"),
        (lambda: nn.Conv1D(4, (3, 3)), None, ConfigError, "kernel_size"),
        (lambda: nn.Conv1D(5, 3, groups=2), None, ConfigError, "multiple of groups"),
        (lambda: nn.Conv1D(4, 3, groups=2), (8, 3), ShapeError, "groups"),
        (lambda: nn.MaxPooling1D(2), (8, 3, 1), ShapeError, "sequences"),
    ],
)
def test_bad_arguments_raise_project_errors(make, shape, error, match):
    with pytest.raises(error, match=match):
        nn.Sequential([make()]).build(shape) if shape else make()
