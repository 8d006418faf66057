"""matmul_precision="bf16" on the CUDA backend: WMMA bf16 tiles (backends/cuda/
prelude_bf16.py) against a float64 product of the bf16-rounded operands, through each GEMM
launch form (one tile per block, split K, a loop of GEMMs), and a training step that follows
its float32 losses. Run on a GPU, or emulated on the CPU (tests/gpu/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from nncompile import optim


def bf16(x: np.ndarray) -> np.ndarray:
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32)


def _check(got, a, b):
    want = bf16(a).astype(np.float64) @ bf16(b).astype(np.float64)
    k = a.shape[-1]
    bound = 2 * (k + 2) * 2.0**-24 * (np.abs(bf16(a)).astype(np.float64) @ np.abs(bf16(b)))
    assert np.all(np.abs(np.asarray(got) - want) <= bound + 1e-30)


@pytest.mark.parametrize(
    "m,n,k,transpose",
    [(5, 7, 3, ""), (70, 90, 100, ""), (64, 64, 64, "a"), (33, 65, 47, "b"), (16, 16, 3000, "")],
)
def test_matmul_matches_rounded_float64(m, n, k, transpose):
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    if transpose == "a":
        f = nc.compile(lambda at, b: at.T @ b, backend="cuda", matmul_precision="bf16")
        got = f(np.ascontiguousarray(a.T), b)
    elif transpose == "b":
        f = nc.compile(lambda a, bt: a @ bt.T, backend="cuda", matmul_precision="bf16")
        got = f(a, np.ascontiguousarray(b.T))
    else:  # (16 x 16 x 3000: few tiles, long K: the split-K launches)
        got = nc.compile(lambda a, b: a @ b, backend="cuda", matmul_precision="bf16")(a, b)
    _check(got, a, b)


def test_batched_matmul_over_heads():
    """Operands transposed over (batch, heads): a loop of GEMMs in one launch."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 5, 3, 16)).astype(np.float32)  # (n, seq, heads, d)
    k = rng.standard_normal((2, 7, 3, 16)).astype(np.float32)

    def scores(q, k):
        return nc.transpose(q, (0, 2, 1, 3)) @ nc.transpose(k, (0, 2, 3, 1))

    got = np.asarray(nc.compile(scores, backend="cuda", matmul_precision="bf16")(q, k))
    for i in range(2):
        for h in range(3):
            _check(got[i, h], q[i, :, h, :], k[i, :, h, :].T)


def test_training_step_follows_float32():
    rng = np.random.default_rng(2)
    params = {
        "w0": (rng.standard_normal((32, 24)) * 0.3).astype(np.float32),
        "w1": (rng.standard_normal((24, 4)) * 0.3).astype(np.float32),
    }
    x = rng.standard_normal((40, 32)).astype(np.float32)
    y = np.abs(x[:, :4]).argmax(axis=1).astype(np.int64)

    def loss(p, x, y):
        return nc.cross_entropy(nc.relu(x @ p["w0"]) @ p["w1"], y)

    opt = optim.Adam(1e-2)
    curves = {}
    for precision in ("float32", "bf16"):
        step = nc.compile(nc.train_step(loss, opt), backend="cuda", matmul_precision=precision)
        p, s, values = dict(params), opt.init(params), []
        for _ in range(8):
            p, s, value, _ = step(p, s, x, y, np.float32(1e-2))
            values.append(float(np.asarray(value)))
        curves[precision] = values
    exact, mixed = curves["float32"], curves["bf16"]
    assert mixed[-1] < mixed[0]
    assert np.max(np.abs(np.array(mixed) - exact)) < 0.1 * exact[0]


@pytest.mark.parametrize("channels", [1, 4])
def test_convolution_gradients_round_their_operands(channels):
    """A convolution and both its gradients (the weight gradient as one reduction per
    weight on a GPU) multiply rounded operands: float64 on rounded inputs is the reference."""
    rng = np.random.default_rng(channels)
    img = rng.standard_normal((3, channels, 9, 9)).astype(np.float32)
    k = rng.standard_normal((4, channels, 3, 3)).astype(np.float32)
    g = rng.standard_normal((3, 4, 9, 9)).astype(np.float32)

    def loss(i, k, g):
        return nc.sum(nc.conv2d(i, k, padding=1) * g)

    step = nc.grad(loss, argnums=(0, 1))
    got = nc.compile(step, backend="cuda", matmul_precision="bf16")(img, k, g)
    want = nc.compile(step, backend="numpy")(*(bf16(a).astype(np.float64) for a in (img, k, g)))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-4)
