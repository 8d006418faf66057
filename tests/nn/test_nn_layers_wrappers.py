"""Bidirectional and TimeDistributed: against torch's bidirectional GRU / LSTM / RNN and
per-step layers in float64 (outputs and gradients of inputs and every weight), merge
modes, a separate backward layer, state updates and dropout inside TimeDistributed,
compiled float32 against eager, saving and a short fit."""

import numpy as np
import pytest

from nncompile import nn, optim
from nncompile.errors import ConfigError

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

TORCH_RNN = {nn.GRU: torch.nn.GRU, nn.LSTM: torch.nn.LSTM, nn.SimpleRNN: torch.nn.RNN}


def torch_bidirectional(cell, units, features, names):
    """f(x, *weights) with torch's bidirectional ``cell`` on our weights (PyTorch's layout;
    LSTM and SimpleRNN have one bias per direction, so torch's second bias is zero)."""
    module = TORCH_RNN[cell](features, units, batch_first=True, bidirectional=True).double()

    def run(x, *weights):
        w = dict(zip(names, weights, strict=True))
        params = {}
        for prefix, suffix in (("forward/", ""), ("backward/", "_reverse")):
            params[f"weight_ih_l0{suffix}"] = w[prefix + "kernel"]
            params[f"weight_hh_l0{suffix}"] = w[prefix + "recurrent_kernel"]
            params[f"bias_ih_l0{suffix}"] = w[prefix + "bias"]
            hh = w.get(prefix + "recurrent_bias")
            params[f"bias_hh_l0{suffix}"] = (
                torch.zeros_like(w[prefix + "bias"]) if hh is None else hh
            )
        out, _ = torch.func.functional_call(module, params, (x,))
        return out[..., :units], out[..., units:]  # forward, backward: both in time order

    return run


MERGE = {
    "concat": lambda a, b: torch.cat([a, b], -1),
    "sum": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "ave": lambda a, b: (a + b) / 2,
}


@pytest.mark.parametrize(
    "cell, return_sequences, merge_mode",
    [
        (nn.GRU, True, "concat"),
        (nn.GRU, False, "concat"),
        (nn.LSTM, True, "sum"),
        (nn.LSTM, False, "mul"),
        (nn.SimpleRNN, True, "ave"),
    ],
)
def test_bidirectional_matches_torch(cell, return_sequences, merge_mode):
    layer = nn.Bidirectional(cell(4, return_sequences=return_sequences), merge_mode=merge_mode)
    built(layer, (5, 3))
    layer.params = {k: normal(*v.shape) * 0.5 for k, v in layer.params.items()}
    run = torch_bidirectional(cell, 4, 3, list(layer.params))

    def theirs(x, *weights):
        fwd, bwd = run(x, *weights)
        if not return_sequences:  # forward's last step; backward's after the whole sequence
            fwd, bwd = fwd[:, -1], bwd[:, 0]
        return MERGE[merge_mode](fwd, bwd)

    check_layer(layer, theirs, normal(2, 5, 3))


def test_bidirectional_with_its_own_backward_layer():
    layer = nn.Bidirectional(
        nn.GRU(3, return_sequences=True), backward_layer=nn.LSTM(2, return_sequences=True)
    )
    built(layer, (4, 2))
    assert layer.output_shape == (4, 5)
    assert layer.params["backward/kernel"].shape == (8, 2)
    x = normal(2, 4, 2)
    ctx = nn.CallContext(False)
    params = {k: normal(*v.shape) for k, v in layer.params.items()}
    both = np.asarray(layer.call(params, x, ctx))
    fwd = {k[8:]: v for k, v in params.items() if k.startswith("forward/")}
    bwd = {k[9:]: v for k, v in params.items() if k.startswith("backward/")}
    np.testing.assert_allclose(both[..., :3], layer.forward_layer.call(fwd, x, ctx), rtol=1e-12)
    backward = np.asarray(layer.backward_layer.call(bwd, x[:, ::-1], ctx))[:, ::-1]
    np.testing.assert_allclose(both[..., 3:], backward, rtol=1e-12)


def test_bidirectional_names_shapes_and_summary():
    model = nn.Sequential(
        [
            nn.Bidirectional(nn.LSTM(4, return_sequences=True), input_shape=(6, 3)),
            nn.Bidirectional(nn.GRU(2)),
        ]
    )
    first, second = model.layers
    assert first.forward_layer.name == "forward_lstm"
    assert first.backward_layer.name == "backward_lstm"
    assert first.params["forward/bias"][4:8].tolist() == [1.0] * 4  # the forget gate bias
    assert not np.array_equal(first.params["forward/kernel"], first.params["backward/kernel"])
    rows = summary_rows(model)
    # Keras: 2 * 4 * (4 * (3 + 4) + 4) = 256; 2 * 3 * (2 * (8 + 2) + 2 * 2) = 144
    assert rows["bidirectional"] == ("Bidirectional", "(None, 6, 8)", "256")
    assert rows["bidirectional_1"] == ("Bidirectional", "(None, 4)", "144")


# ----------------------------------------------------------------------------- TimeDistributed


def test_time_distributed_dense_matches_torch():
    layer = built(nn.TimeDistributed(nn.Dense(4, activation="tanh")), (5, 3))
    layer.params = {k: normal(*v.shape) for k, v in layer.params.items()}
    check_layer(layer, lambda x, k, b: torch.tanh(x @ k + b), normal(2, 5, 3))


def test_time_distributed_conv2d_matches_torch():
    layer = built(nn.TimeDistributed(nn.Conv2D(3, 2, padding="same")), (4, 5, 5, 2))
    assert layer.output_shape == (4, 5, 5, 3)
    layer.params = {k: normal(*v.shape) for k, v in layer.params.items()}

    def theirs(x, kernel, bias):
        t = x.reshape(-1, *x.shape[2:]).permute(0, 3, 1, 2)  # fold time into the batch
        y = F.conv2d(F.pad(t, (0, 1, 0, 1)), kernel, bias).permute(0, 2, 3, 1)
        return y.reshape(*x.shape[:2], *y.shape[1:])

    check_layer(layer, theirs, normal(2, 4, 5, 5, 2))


def test_time_distributed_batch_norm_updates_its_state_and_dropout_is_keyed():
    model = nn.Sequential(
        [
            nn.TimeDistributed(nn.BatchNormalization(momentum=0.5), input_shape=(3, 4)),
            nn.TimeDistributed(nn.Dropout(0.5)),
        ]
    )
    x = normal(2, 3, 4).astype(np.float32)
    y, state = model.apply(model.params(), model.state(), x, training=True, key=np.int64(3))
    folded = x.reshape(6, 4)
    moving = state["time_distributed"]["moving_mean"]
    np.testing.assert_allclose(moving, 0.5 * folded.mean(0), rtol=1e-5, atol=1e-6)
    y = np.asarray(y)
    kept = y != 0
    assert 0 < kept.mean() < 1
    normalized = (folded - folded.mean(0)) / np.sqrt(folded.var(0) + 1e-3)
    np.testing.assert_allclose(y[kept], 2 * normalized.reshape(2, 3, 4)[kept], rtol=1e-4)
    again, _ = model.apply(model.params(), model.state(), x, training=True, key=np.int64(3))
    np.testing.assert_array_equal(np.asarray(again), y)


# ----------------------------------------------------------------------------- model level


def wrapped_model(seed=0):
    return nn.Sequential(
        [
            nn.TimeDistributed(nn.Dense(6, activation="relu"), input_shape=(6, 3)),
            nn.Bidirectional(nn.GRU(4, return_sequences=True)),
            nn.Bidirectional(nn.LSTM(3), backward_layer=nn.SimpleRNN(3), merge_mode="sum"),
            nn.Dense(2, activation="softmax"),
        ],
        name="wrapped",
        seed=seed,
    )


def sequences(n=96, seed=0):
    """Class 1: the first feature rises over time; class 0: it falls."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    ramp = np.linspace(-1, 1, 6)
    x = rng.normal(0, 0.3, (n, 6, 3))
    x[:, :, 0] += np.where(y[:, None] == 1, ramp, -ramp)
    return x.astype(np.float32), y.astype(np.int64)


def test_compiled_forward_and_gradient_equal_eager():
    check_compiled(wrapped_model(), normal(3, 6, 3))


def test_save_load_and_fit(tmp_path):
    model = wrapped_model()
    x, y = sequences()
    model.compile(optim.Adam(2e-2), "sparse_categorical_crossentropy")
    before = model.evaluate(x, y, batch_size=32)["loss"]
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=0)
    assert model.evaluate(x, y, batch_size=32)["loss"] < 0.8 * before
    loaded = round_trip(model, x[:5], tmp_path)
    assert isinstance(loaded.layers[2].backward_layer, nn.SimpleRNN)
    assert loaded.layers[2].backward_layer.name == "backward_simple_rnn"


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: nn.Bidirectional(nn.Dense(3)), ConfigError, "recurrent"),
        (lambda: nn.Bidirectional(nn.GRU(3), merge_mode="max"), ConfigError, "merge_mode"),
        (lambda: nn.Bidirectional(nn.GRU(3), merge_mode=None), NotImplementedError, "None"),
        (
            lambda: nn.Bidirectional(nn.GRU(3), backward_layer=nn.GRU(3, return_sequences=True)),
            ConfigError,
            "return_sequences",
        ),
        (lambda: nn.TimeDistributed("dense"), ConfigError, "nn layer"),
    ],
)
def test_bad_arguments_raise_project_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()
