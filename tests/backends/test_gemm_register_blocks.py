"""Products the registers hold only a block at a time run as register-tile GEMMs over
blocks (gemm_registers.register_blocks) instead of the packed GEMM: narrow ones (up to four
vectors wide: a classifier head, its weight gradient, 512 x 64 x 3) by blocks of rows, few
rows and wide (3 x 3000 x 300) by blocks of columns. Against float64 NumPy over row and
column tails, widths around the vector, short k, transposed operands, both float types,
one and two threads, and inside the parallel loops of a convolution's weight gradient
(accumulating)."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc

from .llvm_support import check_matmul_against_float64

# (m, k, n): row tails of every size; one to four vectors wide and below half a vector;
# k shorter than a register GEMM's own minimum; few rows with column tails
SHAPES = [(64, 128, 10), (33, 40, 16), (100, 600, 17), (257, 64, 31), (61, 300, 32)]
SHAPES += [(500, 20, 8), (512, 64, 3), (70, 50, 40), (90, 33, 64), (200, 9, 32), (40, 3, 20)]
SHAPES += [(3, 500, 300), (2, 100, 37), (5, 64, 1000)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transposed", ["", "a", "b"])
@pytest.mark.parametrize("threads", [1, 2])
def test_narrow_products_match_float64(m, k, n, dtype, transposed, threads):
    check_matmul_against_float64(m, k, n, dtype, transposed, threads, seed=m + k + n)


@pytest.mark.parametrize("m,k,n", [(64, 128, 10), (3, 3000, 300), (512, 32, 3)])
def test_such_products_call_no_runtime_gemm(m, k, n):
    x = np.zeros((m, k), np.float32)
    w = np.zeros((k, n), np.float32)
    source = nc.lower(lambda x, w: x @ w, x, w, threads=2).source
    assert "nc_rt_gemm" not in source and "llvm.fma" in source


def test_convolution_weight_gradient_with_narrow_blocks_accumulates():
    """A channels-last RGB convolution (3 channels x 3 x 3 = 27 unfolded rows, 32 output
    channels): per image its weight gradient is a 27 x 32 product, too tall for the
    registers at two vectors wide: blocks of rows inside the batch's parallel loop, each
    accumulating into its chunk's partial sums."""
    from nncompile.backends.llvm import gemm

    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 12, 12, 3)).astype(np.float32)
    w = rng.standard_normal((32, 3, 3, 3)).astype(np.float32)
    g = rng.standard_normal((6, 10, 10, 32)).astype(np.float32)

    def loss(x, w, g):
        return nc.sum(nc.relu(nc.conv2d(x, w, layout="NHWC")) * g)

    step = nc.grad(loss, argnums=(0, 1))
    blocked = []
    original = gemm.register_block_loops

    def spy(s, rows, cols, prefix, parallel):
        blocked.append((s.m, s.n, s.accumulate, parallel))
        return original(s, rows, cols, prefix, parallel)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NNCOMPILE_CACHE_DIR", "off")
        patch.setattr(gemm, "register_block_loops", spy)
        got = nc.compile(step, threads=2)(x, w, g)
    assert (27, 32, True, False) in blocked  # (in a parallel loop: the blocks run serially)
    want = nc.compile(step, backend="numpy")(*(a.astype(np.float64) for a in (x, w, g)))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_blocks_over_a_large_a_with_long_rows_are_short():
    """A larger than L2 with rows of many KiB: blocks of few rows, so that the prefetchers
    follow every row's stream (gemm_registers.streamed_rows); short rows keep tall blocks."""
    from dataclasses import replace

    from nncompile.backends.llvm.gemm_registers import MIN_STREAMED_ROWS, streamed_rows
    from nncompile.backends.llvm.machine import this_machine
    from nncompile.ir.kernel import Gemm

    machine = this_machine()
    narrow = Gemm(
        "a",
        "b",
        "c",
        1,
        64,
        10,
        128,
        (0, 128, 1),
        (0, 10, 1),
        (0, 10, 1),
        0,
        0,
        0,
        dtype=nc.float32,
    )
    assert streamed_rows(narrow, machine) >= machine.vector_registers - 2  # A in L2
    k = machine.l2 // 64  # rows of l2 / 16 bytes, more of them than fit in L2
    long_rows = replace(narrow, m=64, k=k, a_strides=(0, k, 1))
    assert streamed_rows(long_rows, machine) == MIN_STREAMED_ROWS
