"""The CUDA backend's code generation (no GPU needed): every op case and the training
steps emit CUDA C that nvcc compiles for sm_90 (skipped where nvcc is missing), one launch
per top-level statement with correct launch arithmetic, and running without a GPU says
what is missing."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
from nncompile.backends.cuda import emit_cuda, grid_stride_blocks, toolchain
from nncompile.backends.cuda.emit import BLOCK, MAX_BLOCKS

import nncompile as nc
from nncompile import optim

from .llvm_support import graph_sizes
from .test_llvm_ops import CASES

COMPILERS = toolchain.available_compilers()
with_each_compiler = pytest.mark.parametrize(
    "compiler",
    [pytest.param(c) for c in COMPILERS]
    or [pytest.param(None, marks=pytest.mark.skip(reason="neither NVRTC nor nvcc is here"))],
)


def compiles(source: str, tmp_path: pathlib.Path, compiler: str) -> None:
    """The backend's own compile step (CompileError with the compiler's messages if it
    fails)."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
        assert toolchain.compile_cubin(source, compiler=compiler).startswith(b"\x7fELF")


@with_each_compiler
@pytest.mark.parametrize("key", sorted(CASES))
def test_every_op_case_compiles(key, compiler, tmp_path):
    fn, args, _ = CASES[key]()
    compiles(nc.lower(fn, *args, backend="cuda").source, tmp_path, compiler)


@with_each_compiler
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_training_steps_compile(model, compiler, tmp_path):
    params, loss, x = getattr(graph_sizes(), model)()
    y = np.zeros(x.shape[0], np.int64)
    opt = optim.Adam(1e-3)
    step = nc.train_step(loss, opt)
    lowered = nc.lower(step, params, opt.init(params), x, y, np.float32(1e-3), backend="cuda")
    compiles(lowered.source, tmp_path, compiler)


@with_each_compiler
def test_bf16_training_step_compiles_to_tensor_core_code(compiler, tmp_path):
    """matmul_precision="bf16": the GEMMs are WMMA bf16 tiles (NVRTC finds the toolkit's
    mma.h and cuda_bf16.h); nothing else changes."""
    params, loss, x = graph_sizes().mlp()
    y = np.zeros(x.shape[0], np.int64)
    opt = optim.Adam(1e-3)
    args = (params, opt.init(params), x, y, np.float32(1e-3))
    step = nc.train_step(loss, opt)
    source = nc.lower(step, *args, backend="cuda", matmul_precision="bf16").source
    assert "nc_gemm_block_bf16" in source and "<float, true>" in source
    float32 = nc.lower(step, *args, backend="cuda").source
    assert "#include <mma.h>" not in float32 and "<float, true>" not in float32
    compiles(source, tmp_path, compiler)


@with_each_compiler
def test_bf16_direct_convolution_rounds_its_operands(compiler, tmp_path):
    """A convolution too small for a GEMM stays direct and rounds what it multiplies."""
    x = np.zeros((2, 1, 10, 10), np.float32)
    w = np.zeros((4, 1, 3, 3), np.float32)
    source = nc.lower(nc.conv2d, x, w, backend="cuda", matmul_precision="bf16").source
    # defined once in the prelude, called for the input's and the weights' rounded copies
    assert source.count("nc_round_bf16(") >= 3
    compiles(source, tmp_path, compiler)


def test_one_global_function_per_launch_named_after_its_kernel():
    x = np.random.default_rng(0).random((33, 70)).astype(np.float32)

    def f(x):
        return nc.softmax(x) @ nc.transpose(x), nc.tanh(x) * 2

    lowered = nc.lower(f, x, backend="cuda")
    cuda = emit_cuda(lowered.program)
    functions = re.findall(r'extern "C" __global__ void (\w+)\(', cuda.source)
    assert functions == [launch.function for launch in cuda.launches]
    kernels = [k.name for k in lowered.program.kernels]
    for launch in cuda.launches:
        assert any(launch.function.startswith(k + "_") for k in kernels)
    gemm = next(launch for launch in cuda.launches if launch.kind == "gemm")
    assert gemm.block == (BLOCK, 1, 1)
    assert gemm.grid == (1, 1, 1)  # a 33 x 33 result: one 64 x 64 tile
    assert all(k.comment.split(",")[0] in cuda.source for k in lowered.program.kernels)


@pytest.mark.parametrize(
    "extent,blocks",
    [
        (1, 1),
        (BLOCK - 1, 1),
        (BLOCK, 1),
        (BLOCK + 1, 2),
        (10 * BLOCK + 3, 11),
        (1 << 40, MAX_BLOCKS),
    ],
)
def test_grid_stride_launch_arithmetic(extent, blocks):
    assert grid_stride_blocks(extent) == blocks


def test_running_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    x = np.ones(4, np.float32)
    compiled = nc.compile(lambda x: x + 1, backend="cuda")
    if not COMPILERS:
        with pytest.raises(nc.CompileError, match="needs NVRTC"):
            compiled(x)
    elif toolchain.missing_for_running() is not None:
        with pytest.raises(nc.ExecutionError, match="cannot run here: .*(driver|device)"):
            compiled(x)
    else:  # a GPU: it runs
        np.testing.assert_array_equal(compiled(x), x + 1)


def test_no_compiler_is_a_clear_compile_error(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setattr(toolchain, "nvrtc", lambda: None)
    with pytest.raises(nc.CompileError, match="needs NVRTC .* or nvcc"):
        toolchain.compile_cubin("// nothing")
    monkeypatch.setenv("NNCOMPILE_CUDA_COMPILER", "nvcc")
    with pytest.raises(nc.CompileError, match="nvcc is not on PATH"):
        toolchain.compile_cubin("// nothing")
    monkeypatch.setenv("NNCOMPILE_CUDA_COMPILER", "clang")
    with pytest.raises(nc.ConfigError, match="choose one of"):
        toolchain.compile_cubin("// nothing")


@with_each_compiler
def test_cubins_are_cached_and_a_corrupt_entry_is_rebuilt(compiler, tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    x = np.ones((5, 7), np.float32)
    source = nc.lower(lambda x: nc.exp(x) * 2, x, backend="cuda").source
    cubin = toolchain.compile_cubin(source, compiler=compiler)
    assert cubin.startswith(b"\x7fELF")
    (entry,) = tmp_path.glob("cuda-*.cubin")

    def no_compiler(*args, **kwargs):
        raise AssertionError("the compiler ran although the cubin was cached")

    with monkeypatch.context() as m:
        m.setattr(toolchain.subprocess, "run", no_compiler)
        m.setattr(toolchain, "_nvrtc_cubin", no_compiler)
        assert toolchain.compile_cubin(source, compiler=compiler) == cubin
    entry.write_bytes(entry.read_bytes()[:-100])  # truncated: detected, rebuilt
    assert toolchain.compile_cubin(source, compiler=compiler) == cubin


@with_each_compiler
def test_a_compiler_rejecting_source_is_a_compile_error(compiler, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", "off")
    with pytest.raises(nc.CompileError, match="rejected the generated CUDA C"):
        toolchain.compile_cubin("this is not C", compiler=compiler)


def test_index_arithmetic_is_plain_and_integer_data_arithmetic_wraps():
    x = np.arange(12, dtype=np.int64).reshape(3, 4)
    source = nc.lower(lambda x: nc.transpose(x) * 3 + 1, x, backend="cuda").source
    body = source[source.index('extern "C"') :]
    assert "(uint64_t)" in body  # int64 data: wrapping arithmetic, as on the CPU
    index = re.search(r"in0_x\[([^\]]*)\]", body).group(1)
    assert "uint64_t" not in index and "*" in index  # loop-variable math: plain C


def test_small_independent_loops_still_get_a_thread_each():
    """640 elements are too few for CPU threads, but each is a GPU thread."""
    x = np.zeros((64, 10), np.float32)
    program = nc.lower(lambda x: nc.tanh(x) * 2, x, backend="cuda").program
    (launch,) = emit_cuda(program).launches
    assert launch.kind == "grid-stride" and launch.block == (BLOCK, 1, 1)
    (loop,) = [s for s in program.kernels[0].body if hasattr(s, "independent")]
    assert loop.independent and not loop.parallel


def test_row_reductions_run_a_block_per_row_with_block_wide_reductions():
    """softmax over 64 rows: one block per row; its max and its sum are split across the
    block's threads and combined by nc_block_reduce with the op's own combine function."""
    x = np.zeros((64, 700), np.float32)
    cuda = emit_cuda(nc.lower(nc.softmax, x, backend="cuda").program)
    (launch,) = cuda.launches
    assert launch.kind == "block" and launch.grid == (64, 1, 1)
    assert launch.block == (BLOCK, 1, 1)
    source = cuda.source
    assert "blockIdx.x; i" in source and "+= gridDim.x" in source
    assert "nc_block_reduce<float, nc_combine_max_float>" in source
    assert "nc_block_reduce<float, nc_combine_add_float>" in source
    assert "nc_fmax<float>(a, b)" in source  # NaN propagates through the combination too
    assert "if (threadIdx.x == 0)" in source  # stores happen once


def test_a_full_reduction_is_one_block_and_argmax_stays_per_thread():
    x = np.arange(5000, dtype=np.float32)
    cuda = emit_cuda(nc.lower(lambda x: x.sum(), x, backend="cuda").program)
    assert [(launch.kind, launch.grid) for launch in cuda.launches] == [("block", (1, 1, 1))]
    cuda = emit_cuda(nc.lower(lambda x: nc.argmax(x), x, backend="cuda").program)
    assert all(launch.kind != "block" for launch in cuda.launches)  # not a plain combine


@with_each_compiler
def test_block_reductions_compile_for_every_dtype(compiler, tmp_path):
    def f(a, b, c, d, e):
        return a.sum(axis=1), b.max(axis=1), c.min(), nc.mean(d, axis=1), e.sum()

    args = (
        np.ones((40, 300), np.float32),
        np.ones((300, 7), np.float64),
        np.ones((9, 99), np.int32),
        np.ones((5, 70), np.float32),
        np.ones((50, 70), np.int64),
    )
    lowered = nc.lower(f, *args, backend="cuda")
    for t in ("float", "double", "int32_t", "int64_t"):
        assert f"nc_block_reduce<{t}," in lowered.source
    compiles(lowered.source, tmp_path, compiler)
