"""The runtime GEMMs split among a team as independent serial GEMMs
(backends/llvm/gemm_team_split.py): by rows or by columns (each thread its rows of A and
C, or its columns of B and C, in its own workspace slice), or by a long k (each thread's
range of k into C or into its partial sums, then the sums added into C). Against a
float64 product, over teams of 2-4 threads, transposed operands, beta 0 and 1, and a
strided C; and compiled dense layers."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from nncompile.backends.llvm import runtime
from nncompile.backends.llvm.executable import aligned_empty
from nncompile.backends.llvm.gemm_packed import WORKSPACE_BYTES
from nncompile.backends.llvm.gemm_team_split import (
    FLOAT32_ROWS,
    SPLIT_K_DEPTH,
    SPLIT_K_MIN_PRODUCTS,
    small_b_bytes,
)
from nncompile.backends.llvm.machine import this_machine

import nncompile as nc

_CALL = ctypes.CFUNCTYPE(
    None, *([ctypes.c_void_p] * 3 + [ctypes.c_int64] * 10 + [ctypes.c_void_p, ctypes.c_int64])
)
# (m, k, n): all split k (long k, at least SPLIT_K_MIN_PRODUCTS products)
SHAPES = [(64, 5408, 64), (37, 3001, 45), (5, 40000, 30)]
# (m, k, n): all split rows on 2-4 threads (rows not multiples of the register tile; the
# last one with a B too large for the small-B rule)
ROW_SHAPES = [(130, 200, 70), (517, 257, 129), (1024, 96, 40), (1100, 1100, 520)]
# (m, k, n): too few rows to split them on 2-4 threads, columns split (the third one's B
# too large for the rows rule at 65 rows per thread); the last has rows enough, but more
# columns than rows: columns first
COL_SHAPES = [(48, 300, 260), (20, 530, 1000), (130, 700, 1500), (300, 200, 700)]
NR = 64  # the register tile's width in float32 columns (6 x 4 zmm)


def _split(m: int, k: int, n: int, threads: int, itemsize: int) -> str:
    """How the packed GEMM's team decides, restated: k first, then rows (unless there are
    more columns than rows and they split), then columns."""
    if k >= SPLIT_K_DEPTH * max(m, n) and m * n * itemsize <= 1 << 18:
        return "k" if m * n * k >= SPLIT_K_MIN_PRODUCTS else "team"
    rule = FLOAT32_ROWS
    small_b = k * n * itemsize <= small_b_bytes(this_machine())
    lanes = NR if itemsize == 4 else NR // 2
    cols = n >= threads * lanes
    if m >= threads * (rule.min_rows if small_b else rule.min_rows_large_b):
        if not (cols and n > m):
            return "rows"
    return "cols" if cols else "team"


def _gemm(dtype) -> _CALL:
    suffix = "f32" if dtype == np.float32 else "f64"
    return _CALL(runtime.runtime().engine.get_function_address(f"nc_gemm_{suffix}"))


@pytest.mark.parametrize("itemsize", [4, 8])
@pytest.mark.parametrize("threads", [2, 3, 4])
def test_the_shapes_take_their_split(itemsize, threads):
    for shapes, split in ((SHAPES, "k"), (ROW_SHAPES, "rows"), (COL_SHAPES, "cols")):
        for m, k, n in shapes:
            assert _split(m, k, n, threads, itemsize) == split, (m, k, n)


@pytest.mark.parametrize("m,k,n", SHAPES + ROW_SHAPES + COL_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("transposed", [False, True])
def test_team_split_matches_float64(m, k, n, dtype, threads, transposed):
    rng = np.random.default_rng(m + k + threads)
    a = rng.uniform(-1, 1, (k, m) if transposed else (m, k)).astype(dtype)
    a = a.T if transposed else a
    b = rng.uniform(-1, 1, (n, k) if transposed else (k, n)).astype(dtype)
    b = b.T if transposed else b
    want = a.astype(np.float64) @ b.astype(np.float64)
    item = a.itemsize
    workspace = aligned_empty(WORKSPACE_BYTES * threads)
    old = rng.uniform(-1, 1, (m, 2 * n)).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for beta in (0, 1):
        wide = old.copy()
        c = wide[:, ::2]  # a strided C: every other column of a wider array
        strides = [s // item for s in (*a.strides, *b.strides, *c.strides)]
        args = (a.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, k, *strides)
        _gemm(dtype)(*args, beta, workspace.ctypes.data, threads)
        expected = want + (old[:, ::2] if beta else 0)
        np.testing.assert_allclose(c, expected, rtol=tol, atol=tol * k**0.5)
        np.testing.assert_array_equal(wide[:, 1::2], old[:, 1::2])  # untouched


@pytest.mark.parametrize("m,k,n", [(64, 5408, 64), (256, 784, 256)])
def test_compiled_dense_layer_on_two_threads(m, k, n):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    f = nc.compile(lambda x, w: nc.relu(x @ w), threads=2)
    want = np.maximum(x.astype(np.float64) @ w, 0)
    for _ in range(5):  # (the thread chooser tries its counts over the first calls)
        np.testing.assert_allclose(f(x, w), want, rtol=1e-4, atol=1e-3)


def test_concurrent_calls_split_k_each_in_its_own_workspace():
    """Two Python threads call one compiled function at once: each call has its own call
    context, so its team's packing buffers and partial sums never meet the other's."""
    import threading

    rng = np.random.default_rng(3)
    f = nc.compile(lambda x, w: x @ w, threads=2)
    pairs = [
        (rng.standard_normal((64, 5408)).astype(np.float32), rng.standard_normal((5408, 64)))
        for _ in range(2)
    ]
    pairs = [(x, w.astype(np.float32)) for x, w in pairs]
    wants = [x.astype(np.float64) @ w for x, w in pairs]
    errors: list[str] = []

    def run(i):
        for _ in range(20):
            got = f(*pairs[i])
            if not np.allclose(got, wants[i], rtol=1e-4, atol=1e-3):
                errors.append(f"thread {i}: wrong product")

    workers = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors


@pytest.mark.parametrize("m,n", [(200, 300), (20, 2000)])  # split rows, split columns
def test_team_splits_with_k_zero_assign_zero_or_keep_c(m, n):
    workspace = aligned_empty(WORKSPACE_BYTES * 2)
    a, b = np.zeros((m, 0), np.float32), np.zeros((0, n), np.float32)
    for beta, want in ((0, 0.0), (1, 7.0)):
        c = np.full((m, n), 7.0, np.float32)
        args = (a.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, 0, 0, 1, n, 1, n, 1)
        _gemm(np.float32)(*args, beta, workspace.ctypes.data, 2)
        assert np.all(c == want)
