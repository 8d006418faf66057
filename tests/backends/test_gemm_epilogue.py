"""A bf16 product's elementwise epilogue run by the runtime's bf16 GEMM region by region
(backends/llvm/gemm_epilogue.py): which loops fuse, and that fused programs compute what
the same programs compute unfused and what NumPy computes on the bf16-rounded operands,
over edge sizes, several k blocks, thread counts (the team splits that leave the loop to
the kernel included) and a donated, updated-in-place weight."""

from __future__ import annotations

import numpy as np
import pytest
from nncompile.backends.llvm import amx, gemm_epilogue
from nncompile.ir import dtypes as dt
from nncompile.ir.kernel import INDEX, Binary, Gemm, Load, Loop, Store, Var, const_index, iadd, imul

import nncompile as nc

FUSED = "nc_rt_gemm_bf16_fused"

pytestmark = pytest.mark.filterwarnings("ignore:matmul_precision='bf16'")


def bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 to the nearest bfloat16 (ties to even), returned as float64."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32).astype(np.float64)


def close(got, want, k: int) -> None:
    """Within float32 summation error of a k-long sum (operands are O(1))."""
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=4 * k * 2.0**-24 * 10)


def dense_relu(x, w, b):
    h = x @ w + b
    return nc.relu(h), h > 0


def sgd_update(x, g, w):
    return w - 0.01 * (x.T @ g)


def adam_like(x, g, w, m, v):
    grad = x.T @ g
    m2 = 0.9 * m + 0.1 * grad
    v2 = 0.999 * v + 0.001 * grad * grad
    return w - 0.001 * m2 / (nc.sqrt(v2) + 1e-8), m2, v2


def _inputs(rng, m, k, n):
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    return x, w, b


def _fused(fn, *args, threads=2) -> bool:
    source = nc.lower(fn, *args, threads=threads, matmul_precision="bf16").source
    return FUSED in source


@pytest.fixture(autouse=True, params=["native", "amx-emulated"])
def form(request, monkeypatch):
    # the form the runtime computes with here, and the AMX form with emulated tiles (the
    # real one where the CPU has AMX): they share the driver that calls the epilogue, but
    # not the kernel that leaves C in place or in scratch
    if request.param == "amx-emulated" and amx.amx_usable():
        pytest.skip("this CPU runs AMX itself (the native form)")
    monkeypatch.setenv("NNCOMPILE_AMX", "1" if amx.amx_usable() else "0")
    monkeypatch.setenv("NNCOMPILE_AMX_EMULATE", "1" if request.param == "amx-emulated" else "0")


# (m, k, n): whole and partial 32-row panels and column blocks, one and several k blocks,
# a k below the bf16 GEMM's short-k limit (the float32 GEMM serves it: not fused there,
# the kernel's loop runs)
SHAPES = [(64, 64, 64), (70, 100, 45), (130, 1100, 300), (96, 2100, 33), (40, 20, 90)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_dense_relu_matches_numpy_and_unfused(m, k, n, threads, monkeypatch):
    rng = np.random.default_rng(m + k + n)
    x, w, b = _inputs(rng, m, k, n)
    assert _fused(dense_relu, x, w, b, threads=threads)
    fused = nc.compile(dense_relu, threads=threads, matmul_precision="bf16")(x, w, b)
    h = bf16(x) @ bf16(w) + b
    close(fused[0], np.maximum(h, 0), k)
    np.testing.assert_array_equal(fused[1], h > 0)  # (no h within rounding of 0 here)
    monkeypatch.setattr(gemm_epilogue, "fuses_epilogue", lambda *a: False)
    plain = nc.compile(dense_relu, threads=threads, matmul_precision="bf16")(x, w, b)
    np.testing.assert_array_equal(fused[0], plain[0])
    np.testing.assert_array_equal(fused[1], plain[1])


@pytest.mark.parametrize("threads", [1, 2])
def test_updates_of_a_donated_weight(threads):
    # the optimizer's update reads the weight and writes it in place (donation): written
    # and read at the same element only, never one of the GEMM's operands
    rng = np.random.default_rng(3)
    x = rng.standard_normal((256, 300)).astype(np.float32)
    g = rng.standard_normal((256, 200)).astype(np.float32)
    w = rng.standard_normal((300, 200)).astype(np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    assert _fused(adam_like, x, g, w, m, v, threads=threads)
    step = nc.compile(adam_like, threads=threads, matmul_precision="bf16", donate_argnums=(2, 3, 4))
    grad = bf16(x).T @ bf16(g)
    m2, v2 = 0.1 * grad, 0.001 * grad * grad
    want = w - 0.001 * m2 / (np.sqrt(v2) + 1e-8)
    got = step(x, g, w.copy(), m.copy(), v.copy())
    close(got[1], m2, 256)
    np.testing.assert_allclose(got[2], v2, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-5)

    sgd = nc.compile(sgd_update, threads=threads, matmul_precision="bf16", donate_argnums=(2,))
    close(sgd(x, g, w.copy()), w - 0.01 * grad, 256)


def test_k_split_team_leaves_the_loop_to_the_kernel():
    # few rows and columns with a long k: the team splits k (partial sums added at the
    # end), which runs no epilogue; the kernel's loop runs after the GEMM instead
    rng = np.random.default_rng(5)
    x, w, b = _inputs(rng, 48, 6000, 40)
    assert _fused(dense_relu, x, w, b)
    got = nc.compile(dense_relu, threads=2, matmul_precision="bf16")(x, w, b)
    close(got[0], np.maximum(bf16(x) @ bf16(w) + b, 0), 6000)


def test_loops_that_do_not_fuse():
    rng = np.random.default_rng(7)
    x, w, _ = _inputs(rng, 256, 96, 256)
    # C read at another element than (i, j): its transpose
    assert not _fused(lambda x, w: (x @ w).T + 1.0, x, w)
    # a reduction over C's rows
    assert not _fused(lambda x, w: nc.sum(x @ w, axis=0), x, w)
    # float32 products: no runtime bf16 GEMM
    assert FUSED not in nc.lower(dense_relu, x, w, w[0], threads=2).source


class _Emitter:
    """What fuses_epilogue reads of a kernel emitter: its buffers' pointers (a donated
    output shares its input's) and whether it emits inside a parallel region."""

    def __init__(self, pointers: dict[str, object]):
        self.buffers = {name: (p, dt.float32) for name, p in pointers.items()}
        self.in_parallel = False


def _epilogue(index_of_c, index_of_out) -> tuple[Gemm, Loop]:
    m = n = k = 256
    gemm = Gemm("a", "b", "c", 1, m, n, k, (0, k, 1), (0, n, 1), (0, n, 1), precision="bf16")
    i, j = Var("i", INDEX), Var("j", INDEX)
    value = Binary(
        "add", Load("c", index_of_c(i, j), dt.float32), Load("bias", j, dt.float32), dt.float32
    )
    inner = Loop("j", n, [Store("out", index_of_out(i, j), value)], vectorize=True)
    return gemm, Loop("i", m, [inner], parallel=True)


def row_major(i, j):
    return iadd(j, imul(i, const_index(256)))


def test_fusion_rules_on_kernel_ir():
    gemm, loop = _epilogue(row_major, row_major)
    separate = {name: object() for name in ("a", "b", "c", "bias", "out")}
    assert gemm_epilogue.fuses_epilogue(_Emitter(separate), gemm, loop)
    # the output donated into A's or B's memory: written while the GEMM still reads them
    for operand in ("a", "b"):
        shared = dict(separate, out=separate[operand])
        assert not gemm_epilogue.fuses_epilogue(_Emitter(shared), gemm, loop)
    # C read at its transposed element
    gemm, loop = _epilogue(lambda i, j: row_major(j, i), row_major)
    assert not gemm_epilogue.fuses_epilogue(_Emitter(separate), gemm, loop)
    # an output written at one element per row (j's coefficient 0): not one per (i, j)
    gemm, loop = _epilogue(row_major, lambda i, j: i)
    assert not gemm_epilogue.fuses_epilogue(_Emitter(separate), gemm, loop)
    # inside a parallel region's body (a GEMM per thread there): not fused
    inside = _Emitter(separate)
    inside.in_parallel = True
    gemm, loop = _epilogue(row_major, row_major)
    assert not gemm_epilogue.fuses_epilogue(inside, gemm, loop)
