"""Keras-style models compile each step once for every batch size (the default on the CPU):
fit's ragged last batch, evaluate and predict on any number of rows, no padding."""

from __future__ import annotations

import numpy as np
import pytest

from nncompile import nn, optim

from .nn_support import blobs, small_cnn


def _twins():
    """The same model compiled (dynamic batch) and run eagerly, with equal weights."""
    models = []
    for eagerly in (False, True):
        model = small_cnn(seed=3)
        model.compile(
            optim.Adam(1e-2),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
            run_eagerly=eagerly,
        )
        models.append(model)
    return models


def test_fit_evaluate_predict_at_any_size_compile_three_graphs():
    compiled, eager = _twins()
    x, y = blobs(150, seed=1)  # batches of 64, 64 and a ragged 22
    h1 = compiled.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    h2 = eager.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    for k in h2.history:
        np.testing.assert_allclose(h1.history[k], h2.history[k], rtol=1e-4)
    for n in (1, 5, 77, 333):
        xs, ys = blobs(n, seed=n)
        np.testing.assert_allclose(compiled.predict(xs), eager.predict(xs), rtol=1e-4, atol=1e-5)
        got, want = compiled.evaluate(xs, ys), eager.evaluate(xs, ys)
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-4, abs=1e-6)
    assert compiled.compile_count == 3  # train, evaluate, predict
    assert eager.compile_count == 0


def test_an_uncompiled_model_predicts_any_size_with_one_graph():
    model = small_cnn()
    x, _ = blobs(40)
    expected = np.asarray(model(x))
    for n in (1, 2, 3, 5, 7, 9, 13, 40):
        np.testing.assert_allclose(model.predict(x[:n]), expected[:n], rtol=1e-5, atol=1e-6)
    assert model.compile_count == 1


def test_batch_norm_statistics_follow_the_rows_of_a_ragged_batch():
    def model(eagerly):
        m = nn.Sequential(
            [nn.Dense(8, input_shape=(4,)), nn.BatchNormalization(), nn.Dense(2, "softmax")],
            seed=0,
        )
        m.compile(optim.SGD(0.1), "sparse_categorical_crossentropy", run_eagerly=eagerly)
        return m

    rng = np.random.default_rng(0)
    x, y = rng.random((21, 4)).astype(np.float32), rng.integers(0, 2, 21)
    compiled, eager = model(False), model(True)
    compiled.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 8, 8, 5
    eager.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(compiled.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert compiled.compile_count == 1
