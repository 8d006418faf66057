"""Constant folding leaves a transposed constant weight (stored (n, k), as ONNX
Gemm(transB=1) and Linear layers hold it) unfolded when only small matrix products with
long enough sums read it as their B: the GEMM reads it in place along k. Bigger products,
short sums, or other readers get the folded (k, n) array."""

from __future__ import annotations

import numpy as np
from nncompile.ir.kernel import DOT_PRODUCT_MAX_OUTPUTS, DOT_PRODUCT_MIN_K

import nncompile as nc
from nncompile import passes


def _folded(rows: int, n: int, k: int, also_elsewhere: bool = False):
    rng = np.random.default_rng(rows)
    w = rng.uniform(-1, 1, (n, k)).astype(np.float32)
    x = rng.uniform(-1, 1, (rows, k)).astype(np.float32)

    def fn(x):
        wt = nc.transpose(nc.asarray(w))
        y = x @ wt
        return (y, wt * 2.0) if also_elsewhere else y

    graph = passes.fold_constants(nc.trace(fn, x))
    return graph, fn, x


def test_small_products_keep_the_weight_transposed_and_match():
    graph, fn, x = _folded(3, 64, 500)
    assert graph.op_counts().get("transpose") == 1
    got = nc.compile(fn, backend="llvm")(x)
    np.testing.assert_allclose(got, nc.run(nc.trace(fn, x), x), rtol=1e-5, atol=1e-5)


def test_big_products_short_sums_and_other_readers_fold_it():
    rows = DOT_PRODUCT_MAX_OUTPUTS // 64 + 1
    graph, _, _ = _folded(rows, 64, 100)
    assert "transpose" not in graph.op_counts()
    graph, _, _ = _folded(3, 64, DOT_PRODUCT_MIN_K - 1)
    assert "transpose" not in graph.op_counts()
    graph, _, _ = _folded(3, 64, 100, also_elsewhere=True)
    assert "transpose" not in graph.op_counts()
