"""Mixed precision training (matmul_precision="bf16"): training steps of an MLP and of the
seed CNN follow their float32 loss curves for 50 steps, on both forms of the bf16 GEMM;
Keras-style fit with it; the weights and optimizer state stay float32."""

from __future__ import annotations

import numpy as np
import pytest
from nncompile.backends.llvm import amx

import nncompile as nc
from nncompile import optim
from nncompile.functional import layers as F
from nncompile.init import glorot_uniform, zeros

from .nn_support import blobs, small_cnn


@pytest.fixture(params=["amx", "float32", "amx-emulated"])
def bf16_form(request, monkeypatch):
    # "float32": whatever this CPU has without AMX (AVX512-BF16, or the rounding float32
    # GEMM); "amx-emulated": the AMX form's code with its tile instructions emulated
    if request.param == "amx" and not amx.amx_usable():
        pytest.skip("this CPU or kernel offers no AMX bf16")
    if request.param == "amx-emulated" and amx.amx_usable():
        pytest.skip("this CPU runs AMX itself")
    monkeypatch.setenv("NNCOMPILE_AMX", "1" if request.param == "amx" else "0")
    monkeypatch.setenv("NNCOMPILE_AMX_EMULATE", "1" if request.param == "amx-emulated" else "0")
    return request.param


def _mlp():
    rng = np.random.default_rng(0)
    sizes = [64, 96, 48, 5]
    params = {}
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        params[f"w{i}"] = glorot_uniform((a, b), rng, layout="in_out")
        params[f"b{i}"] = zeros((b,))

    def loss(p, x, y):
        h = x
        for i in range(3):
            h = F.dense(h, p[f"w{i}"], p[f"b{i}"], "relu" if i < 2 else None)
        return nc.cross_entropy(h, y)

    x = rng.standard_normal((48, 64)).astype(np.float32)
    y = (np.abs(x[:, :5]).argmax(axis=1)).astype(np.int64)  # learnable
    return params, loss, x, y


def _cnn():
    rng = np.random.default_rng(1)
    params = {
        "conv_w": glorot_uniform((8, 1, 3, 3), rng),
        "conv_b": zeros((8,)),
        "w1": glorot_uniform((5 * 5 * 8, 16), rng, layout="in_out"),
        "b1": zeros((16,)),
        "w2": glorot_uniform((16, 3), rng, layout="in_out"),
        "b2": zeros((3,)),
    }

    def loss(p, x, y):
        h = F.conv2d_layer(x, p["conv_w"], p["conv_b"], act="relu")
        h = F.flatten(F.max_pool(h, 2))
        h = F.dense(h, p["w1"], p["b1"], "relu")
        return nc.cross_entropy(F.dense(h, p["w2"], p["b2"]), y)

    x, y = blobs(n=32, size=12)
    return params, loss, x, y


def _curve(build, precision: str, steps: int = 50) -> tuple[list[float], dict]:
    params, loss, x, y = build()
    opt = optim.Adam(1e-2)
    state = opt.init(params)
    step = nc.compile(nc.train_step(loss, opt), matmul_precision=precision)
    losses = []
    for _ in range(steps):
        params, state, value, _ = step(params, state, x, y, np.float32(1e-2))
        losses.append(float(value))
    return losses, params


@pytest.mark.parametrize("build", [_mlp, _cnn], ids=["mlp", "cnn"])
def test_loss_curve_follows_float32(build, bf16_form):
    exact, p32 = _curve(build, "float32")
    mixed, p16 = _curve(build, "bf16")
    assert mixed[0] == pytest.approx(exact[0], rel=2e-2)  # the first loss: rounding only
    assert mixed[-1] < 0.5 * mixed[0]  # it learns
    # the curves stay together: bf16 has 8 bits of mantissa, Adam's steps are lr-sized
    assert np.max(np.abs(np.array(mixed) - exact)) < 0.1 * exact[0]
    assert all(v.dtype == np.float32 for v in p16.values())  # master weights in float32


def test_keras_fit_in_mixed_precision(bf16_form):
    x, y = blobs(n=96, size=8)
    histories = {}
    for precision in ("float32", "bf16"):
        model = small_cnn(input_shape=(8, 8, 1), seed=3)
        model.compile(
            optimizer=optim.Adam(1e-2),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            matmul_precision=precision,
        )
        histories[precision] = model.fit(x, y, epochs=4, batch_size=32, verbose=0).history
        assert all(w.dtype == np.float32 for w in model.get_weights())
    exact, mixed = histories["float32"]["loss"], histories["bf16"]["loss"]
    assert mixed[-1] < mixed[0]
    assert np.max(np.abs(np.array(mixed) - exact)) < 0.1 * exact[0]


def test_the_environment_default_leaves_eager_runs_alone(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_MATMUL_PRECISION", "bf16")
    model = small_cnn()
    model.compile(loss="sparse_categorical_crossentropy", run_eagerly=True)
    assert model.trainer.matmul_precision == "float32"
    model.compile(loss="sparse_categorical_crossentropy")
    assert model.trainer.matmul_precision == "bf16"


def test_keras_refusals():
    model = small_cnn()
    with pytest.raises(NotImplementedError, match="run_eagerly"):
        model.compile(loss="mse", run_eagerly=True, matmul_precision="bf16")
    with pytest.raises(NotImplementedError, match="computes float32 products"):
        model.compile(loss="mse", backend="numpy", matmul_precision="bf16")
    with pytest.raises(nc.ConfigError, match="matmul_precision"):
        model.compile(loss="mse", matmul_precision="half")
