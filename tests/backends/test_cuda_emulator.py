"""The CPU emulation of generated CUDA C (backends/cuda/emulator.py), which lets tests/gpu
run without a GPU: thread and block indices, shared memory, barriers and warp shuffles on
hand-written kernels; deadlocks reported, not hung; memory outside allocations refused.
And the loop collapsing that gives an elementwise nest one GPU thread per element."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from nncompile.backends.cuda import emit_cuda
from nncompile.backends.cuda.collapse import collapse
from nncompile.backends.cuda.driver import pointer_args
from nncompile.backends.cuda.emit import Launch
from nncompile.backends.cuda.emulator import EmulatedDriver, build_library
from nncompile.backends.cuda.gemm import MIN_SPLIT
from nncompile.backends.cuda.prelude import PRELUDE
from nncompile.ir import dtypes as dt
from nncompile.ir.kernel import INDEX, Binary, Const, Load, Loop, Store, Var

import nncompile as nc

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulation needs g++")

KERNELS = (
    PRELUDE
    + r"""
__device__ __forceinline__ float add(float a, float b) { return a + b; }

// each block reverses its slice through shared memory
extern "C" __global__ void reverse(float* __restrict__ out, float* __restrict__ in) {
  __shared__ float tile[64];
  const int64_t base = (int64_t)blockIdx.x * blockDim.x;
  tile[threadIdx.x] = in[base + threadIdx.x];
  __syncthreads();
  out[base + threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}

// one block sums everything with the block-wide reduction (warp shuffles + shared memory)
extern "C" __global__ void total(float* __restrict__ out, float* __restrict__ in) {
  float v = 0.0f;
  for (int64_t i = threadIdx.x; i < 1000; i += blockDim.x) v += in[i];
  v = nc_block_reduce<float, add>(v);
  if (threadIdx.x == 0) out[0] = v;
}

// half the warp shuffles, the other half waits at the block barrier: never completes
extern "C" __global__ void stuck(float* __restrict__ out, float* __restrict__ in) {
  if (threadIdx.x < 16) {
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, in[threadIdx.x], 1);
  } else {
    __syncthreads();
  }
}
"""
)


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    import os

    os.environ.setdefault("NNCOMPILE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    launches = [
        Launch(name, "test", (1, 1, 1), (1, 1, 1), ("out", "in"), ("float", "float"))
        for name in ("reverse", "total", "stuck")
    ]
    cu = EmulatedDriver()
    module = cu.load_module(build_library(KERNELS, launches))
    return cu, {name: cu.function(module, name) for name in ("reverse", "total", "stuck")}


def run(device, name, grid, block, x, out_size):
    cu, functions = device
    src, dst = cu.alloc(x.nbytes), cu.alloc(out_size * 4)
    cu.to_device(src, x)
    cu.zero(dst, out_size * 4)
    values, params = pointer_args([dst, src])
    cu.launch(functions[name], grid, block, params, name)
    out = np.empty(out_size, np.float32)
    cu.to_host(out, dst)
    return out


def test_blocks_threads_shared_memory_and_barriers(device):
    x = np.arange(3 * 64, dtype=np.float32)
    out = run(device, "reverse", (3, 1, 1), (64, 1, 1), x, x.size)
    np.testing.assert_array_equal(out, x.reshape(3, 64)[:, ::-1].ravel())


@pytest.mark.parametrize("threads", [32, 96, 256])
def test_block_reduction_with_warp_shuffles(device, threads):
    x = np.random.default_rng(0).random(1000, dtype=np.float32)
    out = run(device, "total", (1, 1, 1), (threads, 1, 1), x, 1)
    np.testing.assert_allclose(out[0], x.sum(dtype=np.float64), rtol=1e-5)


def test_a_deadlock_is_reported_not_hung(device):
    x = np.ones(32, np.float32)
    with pytest.raises(nc.ExecutionError, match="stuck deadlocked"):
        run(device, "stuck", (1, 1, 1), (32, 1, 1), x, 32)


def test_a_barrier_in_a_launch_declared_without_barriers_is_reported():
    launch = Launch("reverse", "grid-stride", (1, 1, 1), (1, 1, 1), ("out", "in"), ("float",) * 2)
    cu = EmulatedDriver()
    fn = cu.function(cu.load_module(build_library(KERNELS, [launch])), "reverse")
    src, dst = cu.alloc(256), cu.alloc(256)
    values, params = pointer_args([dst, src])
    with pytest.raises(nc.ExecutionError, match="reached a barrier"):
        cu.launch(fn, (1, 1, 1), (64, 1, 1), params, "reverse")


def test_copies_outside_allocations_are_refused():
    cu = EmulatedDriver()
    p = cu.alloc(16)
    with pytest.raises(nc.ExecutionError, match="not allocated"):
        cu.to_device(p + 8, np.zeros(4, np.float32))
    with pytest.raises(nc.ExecutionError, match="not allocated"):
        cu.copy(p, 12345, 4)


def test_compiled_programs_run_emulated(monkeypatch, tmp_path):
    monkeypatch.setenv("NNCOMPILE_CUDA_EMULATOR", "1")
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    x = np.random.default_rng(1).standard_normal((5, 300)).astype(np.float32)
    f = nc.compile(lambda x: nc.softmax(x, axis=-1) * nc.tanh(x).sum(), backend="cuda")
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(f(x), e / e.sum(-1, keepdims=True) * np.tanh(x).sum(), rtol=1e-5)


# ---- collapsing ---------------------------------------------------------------------------


def i(name: str) -> Var:
    return Var(name, INDEX)


def c(v: int) -> Const:
    return Const(v, INDEX)


def add(a, b):
    return Binary("add", a, b, INDEX)


def mul(a, b):
    return Binary("mul", a, b, INDEX)


def nest(store_index, value):
    inner = Loop("j", 8, [Store("out", store_index, value)])
    return Loop("i", 4, [inner], independent=True)


ROW_MAJOR = add(mul(i("i"), c(8)), i("j"))
X = Load("x", ROW_MAJOR, dt.float32)


def test_an_elementwise_nest_collapses_into_one_flat_loop():
    got = collapse(nest(ROW_MAJOR, X))
    assert got.loops == [("i", 4), ("j", 8)] and got.total == 32


@pytest.mark.parametrize(
    "store_index, value",
    [
        (i("i"), X),  # every j writes the same element
        (add(mul(i("i"), c(4)), i("j")), X),  # rows overlap: (0, 4) and (1, 0) collide
        (ROW_MAJOR, Load("out", add(ROW_MAJOR, c(-1)), dt.float32)),  # reads its neighbour
    ],
    ids=["same-element", "overlapping", "reads-neighbour"],
)
def test_nests_whose_iterations_interact_are_not_collapsed(store_index, value):
    assert collapse(nest(store_index, value)).loops == [("i", 4)]


def test_buffers_sharing_memory_count_as_one():
    """``out`` donated over ``x``: reading x's neighbour reads another iteration's output."""
    shifted = Load("x", add(ROW_MAJOR, c(1)), dt.float32)
    assert collapse(nest(ROW_MAJOR, shifted)).total == 32  # separate memory: independent
    assert collapse(nest(ROW_MAJOR, shifted), {"out": "x"}).loops == [("i", 4)]


def test_two_stores_to_one_buffer_collapse_only_if_they_never_meet():
    overlapping = nest(ROW_MAJOR, X)
    overlapping.body[0].body.append(Store("out", add(ROW_MAJOR, c(1)), X))
    assert collapse(overlapping).loops == [("i", 4)]
    # even and odd elements, like the windows of a max-pool gradient
    even = add(mul(i("i"), c(16)), mul(i("j"), c(2)))
    interleaved = nest(even, X)
    interleaved.body[0].body.append(Store("out", add(even, c(1)), X))
    assert collapse(interleaved).total == 32


def test_the_seed_cnn_convolution_gets_a_thread_per_four_outputs():
    x = np.zeros((64, 28, 28, 1), np.float32)
    w = np.zeros((32, 1, 3, 3), np.float32)
    conv = lambda x, w: nc.relu(nc.conv2d(x, w, layout="NHWC"))  # noqa: E731
    program = nc.lower(conv, x, w, backend="cuda").program
    cuda = emit_cuda(program)
    assert max(x.grid[0] * x.block[0] for x in cuda.launches) >= 64 * 26 * 26 * 32 // 4
    assert "make_float4" in cuda.source  # four channels' outputs stored at once


# ---- GEMM ---------------------------------------------------------------------------------


def test_split_k_arithmetic():
    from nncompile.backends.cuda.gemm import gemm_splits

    assert gemm_splits(300, 4096) == (1, 4096)  # enough tiles already
    assert gemm_splits(1, 200) == (1, 200)  # too short a K to split
    for tiles, k in [(1, 4096), (2, 1100), (3, 600), (16, 784), (4, 5408)]:
        splits, chunk = gemm_splits(tiles, k)
        assert splits > 1 and chunk % 16 == 0
        assert (splits - 1) * chunk < k <= splits * chunk  # every split has work


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((70, 1100), (1100, 40)), ((3, 20, 600), (3, 600, 10)), ((5, 7), (7, 130))],
    ids=["split", "batched-split", "one-split"],
)
def test_gemms_run_emulated(a_shape, b_shape, monkeypatch, tmp_path):
    monkeypatch.setenv("NNCOMPILE_CUDA_EMULATOR", "1")
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(2)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    fn = lambda a, b: a @ b + 1.0  # noqa: E731
    launches = emit_cuda(nc.lower(fn, a, b, backend="cuda").program).launches
    split = any(x.function.endswith("_sum") for x in launches)
    assert split == (a.shape[-1] >= 2 * MIN_SPLIT)
    f = nc.compile(fn, backend="cuda")
    want = a.astype(np.float64) @ b.astype(np.float64) + 1.0
    np.testing.assert_allclose(f(a, b), want, rtol=1e-4, atol=1e-4)


# ---- vector loads and stores -------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, vectorized",
    [((8, 64), True), ((3, 6), False), ((5, 4), True), ((0, 4), False)],
    ids=["rows", "odd-extent", "one-vector-per-row", "empty"],
)
def test_elementwise_launches_take_four_elements_with_float4(
    shape, vectorized, monkeypatch, tmp_path
):
    monkeypatch.setenv("NNCOMPILE_CUDA_EMULATOR", "1")
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape[1:]).astype(np.float32)

    def fn(x, b):  # a broadcast row, a mask (bytes: stored one by one) and a float result
        return nc.tanh(x * 0.5 + b) * x, x > b

    source = nc.lower(fn, x, b, backend="cuda").source
    assert ("float4" in source) == vectorized
    y, mask = nc.compile(fn, backend="cuda")(x, b)
    np.testing.assert_allclose(y, np.tanh(x * 0.5 + b) * x, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(mask, x > b)


def test_an_in_place_update_is_vectorized(monkeypatch, tmp_path):
    monkeypatch.setenv("NNCOMPILE_CUDA_EMULATOR", "1")
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    w, g = np.arange(32, dtype=np.float32), np.ones(32, np.float32)
    f = nc.compile(lambda w, g: w - 0.5 * g, backend="cuda", donate_argnums=(0,))
    lowered, _, _ = f.compiled_for(w, g)
    assert "float4" in lowered.source
    out = f(w, g)
    assert out is w
    np.testing.assert_array_equal(w, np.arange(32) - 0.5)


# ---- implicit-GEMM convolution -------------------------------------------------------------

CONVS = [
    # x shape, w shape, stride, padding, dilation, groups, layout
    ((2, 9, 9, 6), (8, 6, 3, 3), 1, 1, 1, 1, "NHWC"),
    ((2, 6, 11, 10), (8, 6, 3, 3), 2, 0, 1, 1, "NCHW"),
    ((1, 10, 10, 8), (6, 4, 3, 3), 1, "same", 2, 2, "NHWC"),
    ((1, 8, 7, 7), (4, 8, 5, 5), 1, 2, 1, 1, "NCHW"),
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups, layout", CONVS)
def test_convolutions_read_their_im2col_matrix_inside_the_gemm(
    x_shape, w_shape, stride, padding, dilation, groups, layout, monkeypatch, tmp_path
):
    """Convolutions too large for the direct form (over 32 products per output) multiply
    an im2col matrix that is never stored: the GEMM computes each element as it reads it."""
    monkeypatch.setenv("NNCOMPILE_CUDA_EMULATOR", "1")
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)

    def fn(x, w):
        y = nc.conv2d(x, w, None, stride, padding, dilation, groups, layout=layout)
        return nc.relu(y)

    source = nc.lower(fn, x, w, backend="cuda").source
    assert "never stored" in source
    assert not re.search(r"scratch_\w+_col\[[^\]]*\] =", source)  # no launch writes it
    got = nc.compile(fn, backend="cuda")(x, w)
    np.testing.assert_allclose(got, nc.compile(fn, backend="numpy")(x, w), rtol=1e-4, atol=1e-4)


def test_a_convolution_layer_trains_with_implicit_gemm(monkeypatch, tmp_path):
    monkeypatch.setenv("NNCOMPILE_CUDA_EMULATOR", "1")
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 8, 8, 8)).astype(np.float32)
    w = (rng.standard_normal((6, 8, 3, 3)) * 0.1).astype(np.float32)

    def loss(w, x):
        return (nc.tanh(nc.conv2d(x, w, padding=1, layout="NHWC")) ** 2).mean()

    grad = nc.grad(loss)
    np.testing.assert_allclose(
        nc.compile(grad, backend="cuda")(w, x),
        nc.compile(grad, backend="numpy")(w, x),
        rtol=1e-4,
        atol=1e-6,
    )


def test_an_access_addressed_by_a_let_is_not_a_vector_access():
    from nncompile.backends.cuda.collapse import Collapsed
    from nncompile.backends.cuda.vectorize import vectorize
    from nncompile.ir.kernel import Let

    at = add(mul(i("k"), c(4)), i("j"))  # k is a let, not a loop variable
    body = [
        Let("k", Load("offsets", i("i"), INDEX)),
        Store("out", ROW_MAJOR, Load("x", at, dt.float32)),
    ]
    vector = vectorize(Collapsed([("i", 4), ("j", 8)], body), {})
    assert vector is not None and [ld.buffer for ld in vector.loads] == []  # only the store
