"""Vectorized loops whose bodies evaluate the inline float32 exp, tanh or sigmoid ask
LLVM's vectorizer to interleave two vectors per iteration (codegen._long_chains): the
hint is on exactly those loops, and results (remainders included) stay right."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc

HINT = "llvm.loop.interleave.count"


def chain(x):
    return nc.tanh(0.5 * x + 1.0) * nc.sigmoid(x) + x * x


def plain(x):
    return x * 2.0 + 1.0


def _source(fn, x) -> str:
    return nc.lower(fn, x, backend="llvm").source


def test_the_hint_marks_loops_of_exp_tanh_sigmoid_only():
    long = np.zeros(4099, np.float32)
    assert HINT in _source(chain, long)
    assert HINT in _source(nc.exp, long)
    assert HINT not in _source(plain, long)  # LLVM's own choice for short bodies
    assert HINT not in _source(chain, np.zeros(100, np.float32))  # too few iterations
    assert HINT not in _source(nc.exp, long.astype(np.float64))  # libm calls, not inline


@pytest.mark.parametrize("size", [4099, 4096 + 31, 1 << 16])
def test_interleaved_loops_compute_every_element(size):
    x = np.random.default_rng(size).standard_normal(size).astype(np.float32) * 4
    x64 = x.astype(np.float64)
    want = np.tanh(0.5 * x64 + 1.0) / (1.0 + np.exp(-x64)) + x64 * x64
    np.testing.assert_allclose(nc.compile(chain)(x), want, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(nc.compile(nc.exp)(x), np.exp(x64), rtol=2e-6)
