"""Donation when the kernel that writes the outputs stores one of them before it reads the
donated input at the same element: an Adam-like update returning (w', m', v') with only
some arguments donated pairs outputs and inputs by position, so v' could take w's memory
while w' is computed after v' is stored. Such a pair must be refused (the output copied):
it silently gave w' from the overwritten w (errors of 6, or NaN). Every subset of donated
arguments must give the undonated results."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import nncompile as nc


def adam_like(x, g, w, m, v):
    grad = x.T @ g
    m2 = 0.9 * m + 0.1 * grad
    v2 = 0.999 * v + 0.001 * grad * grad
    return w - 0.001 * m2 / (nc.sqrt(v2) + 1e-8), m2, v2


def _arguments():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 30)).astype(np.float32)
    g = rng.standard_normal((64, 20)).astype(np.float32)
    w = rng.standard_normal((30, 20)).astype(np.float32)
    m = rng.standard_normal((30, 20)).astype(np.float32)
    v = rng.random((30, 20)).astype(np.float32)
    return x, g, w, m, v


SUBSETS = [s for r in (1, 2, 3) for s in itertools.combinations((2, 3, 4), r)]


@pytest.mark.parametrize("donated", SUBSETS, ids=str)
def test_every_donated_subset_gives_the_undonated_results(donated):
    args = _arguments()
    want = nc.compile(adam_like)(*(a.copy() for a in args))
    got = nc.compile(adam_like, donate_argnums=donated)(*(a.copy() for a in args))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
