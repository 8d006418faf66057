"""Products with one to four columns and a long k (a Dense head of 1-4 units, a GEMV) run
as dot products along k (gemm.few_columns), not as register blocks or the packed GEMM:
against float64 NumPy over row tails, every width up to four and just past it, the
operands' layouts, both float types, one and two threads, a batch, and accumulation into
a weight update."""

from __future__ import annotations

import numpy as np
import pytest
from nncompile.backends.llvm import gemm

import nncompile as nc

from .llvm_support import check_matmul_against_float64

# (m, k, n): row tails around the 4-row blocks; k at the dot form's minimum and long
SHAPES = [(1, 64, 1), (3, 100, 2), (5, 64, 3), (33, 300, 4), (130, 1000, 1), (257, 129, 2)]
SHAPES += [(64, 2048, 3), (9, 64, 5), (40, 63, 2)]  # five columns, k = 63: other forms


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transposed", ["", "a", "b"])
@pytest.mark.parametrize("threads", [1, 2])
def test_few_column_products_match_float64(m, k, n, dtype, transposed, threads):
    check_matmul_against_float64(m, k, n, dtype, transposed, threads, seed=m * 7 + k + n)


@pytest.mark.parametrize("m,k,n", [(2048, 256, 1), (512, 512, 2), (300, 64, 4)])
def test_they_take_the_dot_form(monkeypatch, m, k, n):
    """One column used to go to the packed GEMM (B padded to 64 columns), two to four to
    register blocks reading A element by element."""
    taken = []
    original = gemm.dot_gemm_loops
    monkeypatch.setattr(
        gemm, "dot_gemm_loops", lambda *a, **kw: taken.append(1) or original(*a, **kw)
    )
    x, w = np.zeros((m, k), np.float32), np.zeros((k, n), np.float32)
    source = nc.lower(lambda x, w: x @ w, x, w, threads=2).source
    assert taken and "nc_rt_gemm" not in source


def test_not_for_five_columns_or_a_transposed_a(monkeypatch):
    taken = []
    original = gemm.dot_gemm_loops
    monkeypatch.setattr(
        gemm, "dot_gemm_loops", lambda *a, **kw: taken.append(1) or original(*a, **kw)
    )
    x, w = np.zeros((512, 512), np.float32), np.zeros((512, 5), np.float32)
    nc.lower(lambda x, w: x @ w, x, w, threads=1)
    xt, w2 = np.zeros((512, 512), np.float32), np.zeros((512, 2), np.float32)
    nc.lower(lambda xt, w: nc.transpose(xt) @ w, xt, w2, threads=1)
    assert not taken


def test_a_batched_product_and_a_dense_head_training_step():
    """A batch of GEMVs, and a Dense(1) regression head trained by SGD (its forward, the
    weight gradient 1 x k and the input gradient m x 1 x k), against NumPy."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 70, 200)).astype(np.float32)
    v = rng.standard_normal((3, 200, 2)).astype(np.float32)
    np.testing.assert_allclose(nc.compile(lambda a, v: a @ v)(a, v), a @ v, rtol=1e-4, atol=1e-4)

    x = rng.standard_normal((256, 300)).astype(np.float32)
    y = rng.standard_normal((256, 1)).astype(np.float32)
    w = (rng.standard_normal((300, 1)) * 0.05).astype(np.float32)

    def step(w, x, y):
        loss = lambda w: nc.mean((x @ w - y) ** 2)  # noqa: E731
        return w - 0.1 * nc.grad(loss)(w)

    got = nc.compile(step)(w, x, y)
    want = w - 0.1 * (2.0 / 256) * x.T @ (x @ w - y)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
