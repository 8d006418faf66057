"""A reduction over a checked gather (cross-entropy's pick, nll-style losses) on the CUDA
backend: the small full reduction runs as one serial loop whose bounds checks store the
status word; they used to make the kernel unlaunchable (NotImplementedError)."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc


def picked_sum(x, i):
    return nc.sum(nc.take_along_axis(x, i, 1))


@pytest.mark.parametrize("rows", [4, 3000])
def test_sum_of_a_checked_gather_matches_eager(rows):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 5)).astype(np.float32)
    i = rng.integers(-5, 5, (rows, 1))
    got = nc.compile(picked_sum, backend="cuda")(x, i)
    np.testing.assert_allclose(got, picked_sum(x, i).numpy(), rtol=1e-4)


def test_out_of_range_index_in_the_reduction_raises():
    x = np.ones((4, 5), np.float32)
    with pytest.raises(nc.ExecutionError, match="index out of range"):
        nc.compile(picked_sum, backend="cuda")(x, np.array([[1], [2], [0], [7]]))
