"""The CUDA backend with a symbolic batch size (nc.compile(..., backend="cuda",
dynamic_batch=...)): one compiled program for every batch size, its kernels taking n and
their grids counted per call; results equal the LLVM backend's and the eager reference.
Run on a GPU, or emulated on the CPU (tests/gpu/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from nncompile import nn, optim, pytree
from nncompile.demo import seed_cnn
from nncompile.nn.fit_data import copied, eager
from nncompile.tracing import is_array_leaf

SIZES = (64, 1, 7, 257, 3)


def _close(got, want, rtol=1e-4, atol=1e-5):
    got, want = (pytree.flatten(t, is_array_leaf)[0] for t in (got, want))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def test_mlp_value_and_grad_on_cuda_for_every_batch_size():
    def loss(w1, b1, w2, x, y):
        return nc.mean((nc.relu(x @ w1 + b1) @ w2 - y) ** 2)

    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) * 0.3 for s in [(300, 70), (70,), (70, 3)]]
    step = nc.value_and_grad(loss, argnums=(0, 1, 2))
    f = nc.compile(step, backend="cuda", dynamic_batch=(3, 4))
    for n in SIZES:
        x = rng.standard_normal((n, 300)).astype(np.float32)
        y = rng.standard_normal((n, 3)).astype(np.float32)
        _close(f(*weights, x, y), step(*weights, x, y))
    assert f.compile_count == 1
    source = nc.lower(step, *weights, x, y, backend="cuda", dynamic_batch=(3, 4)).source
    assert "const int64_t n)" in source


@pytest.mark.parametrize("name", ["cnn", "lstm"])
def test_training_steps_on_cuda_for_every_batch_size(name):
    if name == "cnn":
        model = seed_cnn((10, 10, 1))
    else:
        model = nn.Sequential([nn.LSTM(8, input_shape=(4, 5)), nn.Dense(10, "softmax")])
    model.compile(optim.SGD(0.1), "sparse_categorical_crossentropy", backend="cuda")
    trainer = model.trainer
    step = nc.compile(trainer._train_fn, backend="cuda", dynamic_batch=(4, 5))
    rng = np.random.default_rng(1)
    for n in (5, 1, 33):
        x = rng.random((n, *model.input_shape)).astype(np.float32)
        args = trainer.step_arguments(x, rng.integers(0, 10, n))
        _close(step(*args), eager(trainer._train_fn)(*copied(args)))
    assert step.compile_count == 1


def test_attention_fits_ragged_batches_on_cuda_as_eagerly():
    """Attention's matmuls over (batch, heads) whose strides do not merge run as one launch
    over both (nc_gemm_outer); Keras on CUDA compiles one training graph for 4 and 1 rows."""

    def model():
        layers = [
            nn.Reshape((6, 4), input_shape=(24,)),
            nn.MultiHeadAttention(2, 2, use_causal_mask=True),
            nn.GlobalAveragePooling1D(),
            nn.Dense(3, "softmax"),
        ]
        return nn.Sequential(layers, seed=1)

    rng = np.random.default_rng(2)
    x, y = rng.random((5, 24)).astype(np.float32), rng.integers(0, 3, 5)
    compiled, reference = model(), model()
    compiled.compile(optim.SGD(0.1), "sparse_categorical_crossentropy", backend="cuda")
    reference.compile(optim.SGD(0.1), "sparse_categorical_crossentropy", run_eagerly=True)
    for m in (compiled, reference):
        m.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(compiled.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert compiled.compile_count == 1
    lowered = next(iter(compiled.trainer.function("train")._cache.values()))[0]
    assert "nc_gemm_outer<" in lowered.source
