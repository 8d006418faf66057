"""Batch A2 ops on the CUDA backend (a GPU, or the CPU emulation of the generated CUDA C,
see conftest.py): sort (pairwise ranks, NaN, ties), masked attention with a fully masked
query, and nll_loss with ignored targets; outputs and compiled gradients against the eager
run in float32."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc

from ..nncompile.compiled_support import check_compiled

# the float32 compiled-vs-eager check shared with tests/nncompile's op tests


R = np.random.default_rng(3)


def test_sort_and_topk_on_cuda():
    x = R.integers(-2, 2, (3, 7)).astype(np.float64)
    x[1, 3] = x[2, 0] = np.nan
    check_compiled(lambda x: nc.sort(x, axis=0, descending=True), [x], backend="cuda")
    check_compiled(lambda x: nc.topk(x, 3), [x], backend="cuda")


def test_masked_attention_and_nll_loss_on_cuda():
    q, k, v = (R.standard_normal(s) for s in [(2, 4, 5), (2, 6, 5), (2, 6, 3)])
    mask = R.random((4, 6)) < 0.5
    mask[1] = False  # a query that sees no key: zeros
    check_compiled(
        lambda q, k, v: nc.scaled_dot_product_attention(q, k, v, mask),
        [q, k, v],
        (0, 1, 2),
        backend="cuda",
    )
    lp, t = R.standard_normal((4, 3, 2)), np.array([[0, 2], [-100, 1], [2, 2], [1, -100]])
    check_compiled(
        lambda lp: nc.nll_loss(lp, t, np.array([0.5, 1.0, 2.0], np.float32)), [lp], backend="cuda"
    )


def test_nll_loss_out_of_range_target_on_cuda():
    f = nc.compile(nc.nll_loss, backend="cuda")
    lp = np.zeros((3, 4), np.float32)
    assert f(lp, np.array([0, 3, -100])) == 0.0
    for bad in (4, -1):
        with pytest.raises(nc.ExecutionError, match="index out of range"):
            f(lp, np.array([0, bad, 1]))
