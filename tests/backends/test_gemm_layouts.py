"""The runtime GEMM on every operand layout it packs differently: row-major and
transposed A (packed [r][p] vs [p][r]), row-major and transposed B, whole and partial
panels (a row-major B's whole panels read in place for few rows of A, or more when its
block is whole rows), K across several
rank-KC updates and M across several row blocks."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc

from .llvm_support import acc, check

SHAPES = [  # (M, K, N)
    (1, 5, 3),
    (6, 1, 64),
    (13, 300, 70),  # partial panels, two rank-KC updates
    (7, 513, 65),
    (1600, 64, 40),  # rows beyond one block (MC*KC / kc rows per block when K is short)
    (5, 2100, 9),  # small M and N: rank-4KC updates, three of them
    (100, 600, 30),  # M just above the small-M limit: rank-KC updates
    (3, 1000, 70),  # fewer rows than the micro-kernel: dot products when B^T is given
    (64, 700, 130),  # few rows: a row-major B's whole panels read in place, the last packed
    (65, 300, 64),  # one row above that limit: packed again
    # B's block whole rows (its width is n): read in place up to 256 rows, the last
    # partial panel packed; one row more and it is packed again
    (200, 600, 130),
    (256, 300, 64),
    (257, 300, 64),
    # last panels 1, 2, 3 vectors wide (36, 48 float32 columns; 20 float64 columns):
    # only those vectors multiplied
    (40, 200, 100),
    (20, 128, 112),
    (70, 90, 180),
]


LAYOUTS = {  # each its own program: a transpose read by two matmuls would be materialized
    "nn": lambda a, b, a_t, b_t: a @ b,
    "tn": lambda a, b, a_t, b_t: nc.transpose(a_t) @ b,
    "nt": lambda a, b, a_t, b_t: a @ nc.transpose(b_t),
    "tt": lambda a, b, a_t, b_t: nc.transpose(a_t) @ nc.transpose(b_t),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_matches_reference_for_each_operand_layout(shape, dtype, layout):
    m, k, n = shape
    rng = np.random.default_rng(m * 1000 + k + n)
    a = rng.uniform(-2, 2, (m, k)).astype(dtype)
    b = rng.uniform(-2, 2, (k, n)).astype(dtype)
    a_t, b_t = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
    fn = LAYOUTS[layout]
    program = nc.lower(fn, a, b, a_t, b_t).program
    assert len(program.kernels) == 1  # the GEMM reads the transposed operands in place
    got = check(fn, a, b, a_t, b_t, tol=acc(dtype, k, 4.0))
    # and against float64 NumPy, not only the reference
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * k**0.5)


@pytest.mark.parametrize("rows,cols", [(1, 40), (2, 40), (5, 40), (6, 40), (33, 7), (300, 300)])
def test_gemms_with_b_along_k_read_it_in_place_and_match(rows, cols):
    """B's k axis contiguous (a Linear layer's weight): blocked dot products, no runtime
    GEMM call (no packing), unless the product is big enough for packing to pay
    (DOT_MAX_OUTPUTS); edges of the register blocks and a batch too."""
    from nncompile.ir.kernel import DOT_PRODUCT_MAX_OUTPUTS as DOT_MAX_OUTPUTS

    rng = np.random.default_rng(rows)
    a = rng.uniform(-1, 1, (2, rows, 300)).astype(np.float32)
    w = rng.uniform(-1, 1, (2, cols, 300)).astype(np.float32)

    def fn(a, w):
        return a @ nc.transpose(w, (0, 2, 1))

    source = nc.lower(fn, a, w).source
    assert ("nc_rt_gemm" in source) == (rows * cols > DOT_MAX_OUTPUTS)
    got = check(fn, a, w, tol=acc("float32", 300, 4.0))
    np.testing.assert_allclose(got, a @ w.transpose(0, 2, 1), rtol=1e-4, atol=1e-4)


REGISTER_SHAPES = [(1, 5408, 64), (2, 100, 8), (5, 33, 17), (9, 676, 32), (12, 64, 32), (3, 40, 40)]


@pytest.mark.parametrize("transposed_a", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", REGISTER_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_products_held_in_registers_match(shape, dtype, transposed_a):
    """Few rows and columns, a long k, B's rows contiguous: the whole output in registers
    (gemm_registers.py), no runtime GEMM call; a partial last vector (n not a multiple of
    the vector) loads masked; a batch of two."""
    from nncompile.backends.llvm.machine import this_machine

    m, k, n = shape
    rng = np.random.default_rng(m + k + n)
    a = rng.uniform(-1, 1, (2, k, m) if transposed_a else (2, m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (2, k, n)).astype(dtype)

    def fn(a, b):
        return (nc.transpose(a, (0, 2, 1)) if transposed_a else a) @ b

    source = nc.lower(fn, a, b).source
    machine = this_machine()
    lanes = machine.vector_bytes // np.dtype(dtype).itemsize
    vectors = -(-n // lanes)
    fits = m * vectors + vectors + 1 <= machine.vector_registers and n >= lanes // 2
    assert ("llvm.fma" in source and "nc_rt_gemm" not in source) == fits
    got = check(fn, a, b, tol=acc(dtype, k, 4.0))
    at = a.transpose(0, 2, 1) if transposed_a else a
    np.testing.assert_allclose(got, at.astype(np.float64) @ b, rtol=1e-3, atol=1e-3 * k**0.5)


@pytest.mark.parametrize("m,n", [(5, 9), (24, 40), (3, 70)])
@pytest.mark.parametrize("threads", [1, 2])
def test_long_dot_products_run_in_passes(m, n, threads):
    """Dot products (B along k) whose rows of A and B exceed L2 run over k in passes that
    fit in it (gemm.dot_chunk), each pass adding into C: a k of three or more passes and a
    shorter last one, with and without a term added to the product."""
    from nncompile.backends.llvm import gemm
    from nncompile.backends.llvm.machine import this_machine
    from nncompile.ir.kernel import Gemm

    k = 3 * this_machine().l2 // ((m + n) * 4) + 37
    probe = Gemm("a", "b", "c", 1, m, n, k, (0, k, 1), (0, 1, k), (0, n, 1), dtype=nc.float32)
    assert gemm.dot_chunk(probe) < k and k % gemm.dot_chunk(probe)
    rng = np.random.default_rng(m + n)
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b_t = rng.uniform(-1, 1, (n, k)).astype(np.float32)
    c = rng.uniform(-1, 1, (m, n)).astype(np.float32)
    want = a.astype(np.float64) @ b_t.T.astype(np.float64)
    product = nc.compile(lambda a, b_t: a @ nc.transpose(b_t), threads=threads)(a, b_t)
    np.testing.assert_allclose(product, want, rtol=1e-4, atol=1e-4 * k**0.5)
    plus = nc.compile(lambda a, b_t, c: c + a @ nc.transpose(b_t), threads=threads)(a, b_t, c)
    np.testing.assert_allclose(plus, want + c, rtol=1e-4, atol=1e-4 * k**0.5)
