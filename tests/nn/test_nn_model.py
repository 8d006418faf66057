"""nn layers and Sequential: shapes, Keras' names and initialization, the summary table,
and the forward pass eager vs compiled vs an independent NumPy computation."""

import numpy as np
import pytest

import nncompile as nc
from nncompile import nn
from nncompile.errors import ConfigError, ShapeError

from .nn_support import small_cnn


def seed_cnn():
    return nn.Sequential(
        [
            nn.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
            nn.MaxPooling2D((2, 2)),
            nn.Flatten(),
            nn.Dense(64, activation="relu"),
            nn.Dense(10, activation="softmax"),
        ]
    )


def test_seed_cnn_summary_matches_keras():
    text = seed_cnn().summary(print_fn=None)
    lines = text.splitlines()
    assert lines[0] == 'Model: "sequential"'
    expected = [
        ("conv2d (Conv2D)", "(None, 26, 26, 32)", "320"),
        ("max_pooling2d (MaxPooling2D)", "(None, 13, 13, 32)", "0"),
        ("flatten (Flatten)", "(None, 5408)", "0"),
        ("dense (Dense)", "(None, 64)", "346,176"),
        ("dense_1 (Dense)", "(None, 10)", "650"),
    ]
    rows = [line for line in lines if line.startswith(" ") and "(" in line and "Layer" not in line]
    assert len(rows) == len(expected)
    for row, cells in zip(rows, expected, strict=True):
        assert row.split() == " ".join(cells).split()
    assert "Total params: 347,146" in lines
    assert "Trainable params: 347,146" in lines
    assert "Non-trainable params: 0" in lines


def test_summary_counts_frozen_and_state_arrays():
    model = nn.Sequential(
        [
            nn.Dense(5, input_shape=(3,), trainable=False),
            nn.BatchNormalization(),
            nn.Dense(2),
        ]
    )
    text = model.summary(print_fn=None)
    # dense 3*5+5=20 (frozen), batch norm 2*5 trained + 2*5 moving stats, dense 12
    assert "Total params: 52" in text
    assert "Trainable params: 22" in text
    assert "Non-trainable params: 30" in text


def test_unbuilt_model_builds_on_first_call():
    model = nn.Sequential([nn.Dense(4, activation="tanh"), nn.Dense(2)])
    assert not model.built
    assert "not built" in model.summary(print_fn=None)
    out = model(np.ones((3, 7), np.float32))
    assert out.shape == (3, 2) and model.input_shape == (7,)


def test_keras_initialization():
    model = seed_cnn()
    conv, dense = model.layers[0], model.layers[3]
    assert conv.params["kernel"].shape == (32, 1, 3, 3)  # OIHW
    limit = np.sqrt(6 / (9 * 1 + 9 * 32))
    assert np.abs(conv.params["kernel"]).max() <= limit
    assert np.abs(conv.params["kernel"]).max() > 0.9 * limit
    assert dense.params["kernel"].shape == (5408, 64)
    assert np.abs(dense.params["kernel"]).max() <= np.sqrt(6 / (5408 + 64))
    assert not conv.params["bias"].any()
    lstm = nn.Sequential([nn.LSTM(4, input_shape=(5, 3))]).layers[0]
    np.testing.assert_array_equal(lstm.params["bias"], np.repeat([0.0, 1, 0, 0], 4))
    w = lstm.params["recurrent_kernel"]
    np.testing.assert_allclose(w.T @ w, np.eye(4), atol=1e-5)


def test_same_seed_same_weights():
    a, b = small_cnn(seed=3), small_cnn(seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert any(
        not np.array_equal(wa, wc)
        for wa, wc in zip(a.get_weights(), small_cnn(seed=4).get_weights(), strict=True)
    )


def numpy_forward(model, x):
    """The seed-style CNN written with NumPy loops and matmuls."""
    conv, _, _, d1, d2 = model.layers
    w, b = conv.params["kernel"], conv.params["bias"]
    n, h, wd, _ = x.shape
    kh, kw = w.shape[2:]
    out = np.zeros((n, h - kh + 1, wd - kw + 1, w.shape[0]))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            patch = x[:, i : i + kh, j : j + kw, :]  # (n, kh, kw, c)
            out[:, i, j, :] = np.einsum("nhwc,ochw->no", patch, w) + b
    out = np.maximum(out, 0)
    ph, pw = out.shape[1] // 2, out.shape[2] // 2
    pooled = out[:, : ph * 2, : pw * 2].reshape(n, ph, 2, pw, 2, -1).max(axis=(2, 4))
    flat = pooled.reshape(n, -1)
    hidden = np.maximum(flat @ d1.params["kernel"] + d1.params["bias"], 0)
    logits = hidden @ d2.params["kernel"] + d2.params["bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("backend", ["llvm", "numpy"])
def test_forward_eager_compiled_and_numpy_agree(backend):
    model = small_cnn(input_shape=(7, 9, 2), classes=4)
    x = np.random.default_rng(0).normal(size=(5, 7, 9, 2)).astype(np.float32)
    expected = numpy_forward(model, x.astype(np.float64))
    eager = np.asarray(model(x))
    model.compile(loss="sparse_categorical_crossentropy", backend=backend)
    compiled = model.predict(x, batch_size=2)  # batches of 2, 2, 1
    np.testing.assert_allclose(eager, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "layer, input_shape, out_shape",
    [
        (nn.Dense(3), (4,), (3,)),
        (nn.Dense(3), (5, 4), (5, 3)),
        (nn.Conv2D(2, 3, padding="same"), (5, 5, 1), (5, 5, 2)),
        (nn.Conv2D(2, (3, 2), strides=2), (7, 6, 3), (3, 3, 2)),
        (nn.MaxPooling2D(), (5, 4, 2), (2, 2, 2)),
        (nn.AveragePooling2D(2, strides=1, padding="same"), (3, 3, 1), (3, 3, 1)),
        (nn.Flatten(), (2, 3, 4), (24,)),
        (nn.Reshape((6, -1)), (3, 4), (6, 2)),
        (nn.Dropout(0.5), (4,), (4,)),
        (nn.BatchNormalization(), (3, 3, 2), (3, 3, 2)),
        (nn.Activation("gelu"), (4,), (4,)),
        (nn.SimpleRNN(5), (6, 3), (5,)),
        (nn.LSTM(5, return_sequences=True), (6, 3), (6, 5)),
        (nn.GRU(5), (6, 3), (5,)),
    ],
)
def test_layer_output_shapes(layer, input_shape, out_shape):
    model = nn.Sequential([layer])
    model.build(input_shape)
    assert model.output_shape == out_shape
    x = np.random.default_rng(0).normal(size=(2, *input_shape)).astype(np.float32)
    assert np.asarray(model(x)).shape == (2, *out_shape)


def test_embedding_takes_integer_ids():
    model = nn.Sequential([nn.Embedding(10, 3, input_shape=(4,)), nn.Flatten(), nn.Dense(2)])
    ids = np.array([[1, 2, 3, 9], [0, 0, 5, 5]])
    out = np.asarray(model(ids))
    table = model.layers[0].params["embeddings"]
    d = model.layers[2].params
    np.testing.assert_allclose(
        out, table[ids].reshape(2, -1) @ d["kernel"] + d["bias"], rtol=1e-5, atol=1e-6
    )


def test_activations_by_name():
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 6)
    for name, ref in [
        ("relu", lambda v: np.maximum(v, 0)),
        ("sigmoid", lambda v: 1 / (1 + np.exp(-v))),
        ("tanh", np.tanh),
        ("linear", lambda v: v),
        ("elu", lambda v: np.where(v > 0, v, np.exp(v) - 1)),
        ("leaky_relu", lambda v: np.where(v > 0, v, 0.01 * v)),
        ("softmax", lambda v: np.exp(v) / np.exp(v).sum(1, keepdims=True)),
    ]:
        model = nn.Sequential([nn.Activation(name, input_shape=(6,))])
        np.testing.assert_allclose(np.asarray(model(x)), ref(x), rtol=1e-5, atol=1e-6)


def test_dropout_only_while_training():
    model = nn.Sequential([nn.Dropout(0.5, input_shape=(1000,))])
    x = np.ones((2, 1000), np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), x)
    params, state = model.params(), model.state()
    y, _ = model.apply(params, state, x, training=True, key=np.int64(1))
    y = np.asarray(y)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6
    y2 = np.asarray(model.apply(params, state, x, training=True, key=np.int64(2))[0])
    assert not np.array_equal(y, y2)


def test_batch_norm_modes():
    model = nn.Sequential([nn.BatchNormalization(momentum=0.9, input_shape=(3,))])
    x = np.random.default_rng(0).normal(2.0, 3.0, (50, 3)).astype(np.float32)
    y, state = model.apply(model.params(), model.state(), x, training=True)
    y = np.asarray(y)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-2)
    moving = np.asarray(state["batch_normalization"]["moving_mean"])
    np.testing.assert_allclose(moving, 0.1 * x.mean(0), rtol=1e-5)
    # inference uses the stored statistics (mean 0, variance 1 at first): near identity
    np.testing.assert_allclose(np.asarray(model(x)), x / np.sqrt(1 + 1e-3), rtol=1e-5)


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: nn.Dense(0), ConfigError, "positive integer"),
        (lambda: nn.Dense(3, activation="swishy"), ConfigError, "unknown activation"),
        (lambda: nn.Conv2D(3, (3, 3, 3)), ConfigError, "kernel_size"),
        (lambda: nn.Conv2D(3, 3, padding="full"), ConfigError, "padding"),
        (lambda: nn.Dropout(1.0), ConfigError, "rate"),
        (lambda: nn.Dense(3, kernel_initializer="magic"), ConfigError, "initializer"),
        (lambda: nn.Sequential([nn.Conv2D(2, 3, input_shape=(5, 5))]), ShapeError, "images"),
        (lambda: nn.Sequential([nn.LSTM(2, input_shape=(5,))]), ShapeError, "sequences"),
        (lambda: nn.Sequential(["dense"]), ConfigError, "nn layers"),
        (lambda: nn.Sequential([nn.Dense(2, name="a"), nn.Dense(2, name="a")]), ConfigError, "a"),
    ],
)
def test_bad_configurations_raise_project_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_wrong_input_shape_names_the_model_shape():
    model = small_cnn()
    model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ShapeError, match=r"\(6, 6, 1\)"):
        model.predict(np.zeros((2, 5, 5, 1), np.float32))


def test_set_weights_checks_shapes():
    model = small_cnn()
    weights = model.get_weights()
    weights[0] = np.zeros((1, 1))
    with pytest.raises(ShapeError, match="conv2d/kernel"):
        model.set_weights(weights)
    with pytest.raises(ShapeError, match="arrays"):
        model.set_weights(weights[:2])


def test_model_traces_into_one_graph():
    model = small_cnn()
    x = np.zeros((2, 6, 6, 1), np.float32)
    g = nc.trace(lambda p, x: model.apply(p, {}, x)[0], model.params(), x)
    assert g.outputs[0].shape == (2, 3)
    assert {"conv2d", "max_pool2d", "matmul"} <= set(g.op_counts())


def test_summary_columns_grow_for_long_names():
    model = nn.Sequential([nn.BatchNormalization(input_shape=(4,)), nn.Dense(2)])
    lines = model.summary(print_fn=None).splitlines()
    row = next(line for line in lines if "BatchNormalization" in line)
    header = next(line for line in lines if "Output Shape" in line)
    assert row.index("(None, 4)") == header.index("Output Shape")
    assert "batch_normalization (BatchNormalization)  " in row
