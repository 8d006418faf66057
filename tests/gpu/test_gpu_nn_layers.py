"""The Keras-layout layers of nncompile.nn on the CUDA backend (a GPU, or the CPU
emulation of the generated CUDA C, see conftest.py): one SGD step of a small model using
several of them, its loss and updated weights against the LLVM backend in float32."""

from __future__ import annotations

import numpy as np

from nncompile import nn, optim


def model():
    return nn.Sequential(
        [
            nn.ZeroPadding2D(1, input_shape=(6, 6, 2)),
            nn.DepthwiseConv2D(3, depth_multiplier=2, activation="relu"),
            nn.Conv2DTranspose(3, 3, strides=2, padding="same"),
            nn.LayerNormalization(),
            nn.TimeDistributed(nn.Dense(4, activation="tanh")),
            nn.Reshape((12 * 12, 4)),
            nn.MultiHeadAttention(2, 2, use_causal_mask=True),
            nn.GlobalAveragePooling1D(),
            nn.Dense(3, activation="softmax"),
        ],
        seed=1,
    )


def test_new_layers_train_on_cuda_as_on_llvm():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    runs = []
    for backend in ("llvm", "cuda"):
        m = model()
        m.compile(optim.SGD(0.1), "sparse_categorical_crossentropy", backend=backend)
        history = m.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=0)
        runs.append((history.history["loss"], m.get_weights()))
    (want, want_weights), (got, got_weights) = runs
    np.testing.assert_allclose(got, want, rtol=1e-4)  # the forward pass
    for g, w in zip(got_weights, want_weights, strict=True):  # and the gradients
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)
