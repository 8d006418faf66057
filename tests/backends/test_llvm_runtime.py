"""The LLVM backend's runtime behaviour around the generated code: input validation, the
on-disk object cache, recompilation per signature, NNCOMPILE_DUMP, thread counts."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import llvmlite.binding as llvm
import numpy as np
import pytest
from nncompile.backends.llvm import jit
from nncompile.backends.llvm.parallel import load_libgomp

import nncompile as nc

from . import llvm_support as S


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NNCOMPILE_DUMP", raising=False)
    monkeypatch.delenv("NNCOMPILE_THREADS", raising=False)


def entries(cf) -> list[tuple]:
    """(lowered, executable) per compiled signature of a CompiledFunction."""
    return [(v[0], v[1]) for v in cf._cache.values()]


# ---- input validation ---------------------------------------------------------------------


def scale_add(x, s, k, flag):
    return nc.where(flag, x * s, x + nc.astype(k, "float32"))


X = np.arange(12, dtype=np.float32).reshape(3, 4)
GOOD = [X, np.float32(2.5), np.int64(3), np.bool_(True)]


@pytest.fixture
def guarded():
    """An executable whose native entry must not run (a ctypes call is replaced)."""
    exe = nc.lower(scale_add, *GOOD).compile()
    real, calls = exe._entry, []

    def entry(args):
        calls.append(args)
        return real(args)

    exe._entry = entry
    return exe, calls


def test_valid_inputs_run(guarded):
    exe, calls = guarded
    (out,) = exe(GOOD)
    np.testing.assert_array_equal(out, X * np.float32(2.5))
    assert len(calls) == 1


def test_python_scalars_are_accepted_for_0d_inputs(guarded):
    exe, _ = guarded
    (a,) = exe([X, 2.5, 3, True])
    (b,) = exe([X, 2, 3, False])  # an int for a float32 scalar, too
    np.testing.assert_array_equal(a, X * np.float32(2.5))
    np.testing.assert_array_equal(b, X + 3)


def _misaligned(a: np.ndarray) -> np.ndarray:
    raw = np.zeros(a.nbytes + a.itemsize, np.uint8)
    start = 1 if raw.ctypes.data % a.itemsize == 0 else 2
    view = raw[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert view.flags.c_contiguous and view.ctypes.data % a.itemsize
    return view


@pytest.mark.parametrize(
    "position, value, error, match",
    [
        (0, X.astype(np.float64), nc.DTypeError, "float32"),
        (0, X.astype(np.int32), nc.DTypeError, "float32"),
        (1, np.float64(2.5), nc.DTypeError, "float32"),
        (2, np.int32(3), nc.DTypeError, "int64"),
        (3, np.int64(1), nc.DTypeError, "bool"),
        (0, X[:2], nc.ShapeError, "shape"),
        (0, X.reshape(4, 3), nc.ShapeError, "shape"),
        (0, X.reshape(1, 3, 4), nc.ShapeError, "shape"),
        (1, np.full((1,), 2.5, np.float32), nc.ShapeError, "shape"),
    ],
    ids=[
        "f64-for-f32",
        "i32-for-f32",
        "f64-scalar",
        "i32-for-i64",
        "int-for-bool",
        "fewer-rows",
        "other-shape",
        "extra-dim",
        "1d-for-0d",
    ],
)
def test_bad_input_raises_before_native_code_runs(guarded, position, value, error, match):
    exe, calls = guarded
    args = list(GOOD)
    args[position] = value
    with pytest.raises(error, match=match):
        exe(args)
    assert not calls
    assert exe(GOOD)[0].shape == X.shape  # still usable


@pytest.mark.parametrize("count", [0, 3, 5])
def test_wrong_number_of_inputs(guarded, count):
    exe, calls = guarded
    with pytest.raises(nc.ExecutionError, match="4 inputs"):
        exe((GOOD * 2)[:count])
    assert not calls


@pytest.mark.parametrize(
    "view",
    [
        np.ascontiguousarray(X.T).T,
        np.repeat(X, 2, axis=1)[:, ::2],
        np.asfortranarray(X),
        X[::-1, ::-1],
        _misaligned(X),
    ],
    ids=["transposed-view", "strided-slice", "fortran-order", "negative-strides", "misaligned"],
)
def test_views_are_read_through_a_contiguous_copy(guarded, view):
    exe, calls = guarded
    args = list(GOOD)
    args[0] = view
    (out,) = exe(args)
    np.testing.assert_array_equal(out, view * np.float32(2.5))
    assert len(calls) == 1


def test_compiled_function_accepts_non_contiguous_views():
    cf = nc.compile(lambda x, y: x * y + 1.0)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    cf(x, x)
    t = np.ascontiguousarray(x.T).T  # same shape and dtype: same executable
    np.testing.assert_array_equal(cf(t, x), t * x + 1.0)
    s = np.repeat(x, 2, axis=1)[:, 1::2]
    np.testing.assert_array_equal(cf(x, s), x * s + 1.0)
    np.testing.assert_array_equal(cf(x[:, ::-1], x), x[:, ::-1] * x + 1.0)
    assert len(cf._cache) == 1


# ---- the object cache ---------------------------------------------------------------------


def cached_fn(x, y):
    return nc.tanh(x) * y + nc.sum(x, axis=0)


def _cache_args():
    rng = np.random.default_rng(5)
    return rng.standard_normal((5, 17)).astype(np.float32), rng.standard_normal(17).astype(
        np.float32
    )


def _truncate_half(b: bytes) -> bytes:
    return b[: len(b) // 2]


def _flip_payload(b: bytes) -> bytes:
    i = len(b) * 2 // 3
    return b[:i] + bytes([b[i] ^ 0xFF]) + b[i + 1 :]


def _flip_magic(b: bytes) -> bytes:
    return bytes([b[0] ^ 0x01]) + b[1:]


CORRUPTIONS = {
    "truncate-half": _truncate_half,
    "truncate-header": lambda b: b[:10],
    "empty": lambda b: b"",
    "flip-payload": _flip_payload,
    "flip-digest": lambda b: b[:12] + bytes([b[12] ^ 0x80]) + b[13:],
    "flip-magic": _flip_magic,
    "garbage-appended": lambda b: b + b"\x00garbage",
    "other-object": lambda b: b[:7] + os.urandom(32) + b[39:],
}


def _object_path(cache: pathlib.Path, cf) -> pathlib.Path:
    ((lowered, _),) = entries(cf)
    return cache / (jit.cache_key(lowered.source) + ".o")


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS))
def test_corrupt_cache_entry_is_rebuilt_and_replaced(tmp_path, monkeypatch, corrupt):
    cache = tmp_path / "objects"
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(cache))
    x, y = _cache_args()
    want = S.reference(cached_fn, x, y)
    first = nc.compile(cached_fn)
    np.testing.assert_allclose(first(x, y), want, rtol=1e-5, atol=1e-5)
    path = _object_path(cache, first)
    assert path.is_file() and jit.read_cached(str(path)) is not None

    path.write_bytes(CORRUPTIONS[corrupt](path.read_bytes()))
    again = nc.compile(cached_fn)
    np.testing.assert_allclose(again(x, y), want, rtol=1e-5, atol=1e-5)
    ((_, exe),) = entries(again)
    assert not exe.native.from_cache  # rebuilt, not loaded
    assert jit.read_cached(str(path)) is not None  # and replaced by a valid entry

    third = nc.compile(cached_fn)
    np.testing.assert_allclose(third(x, y), want, rtol=1e-5, atol=1e-5)
    ((_, exe),) = entries(third)
    assert exe.native.from_cache


def test_cache_hit_gives_the_same_results(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path / "objects"))
    x, y = _cache_args()
    a = nc.compile(cached_fn)
    b = nc.compile(cached_fn)
    first, second = a(x, y), b(x, y)
    assert not entries(a)[0][1].native.from_cache
    assert entries(b)[0][1].native.from_cache
    np.testing.assert_array_equal(first, second)
    assert not list((tmp_path / "objects").glob("*.tmp"))  # no temporary files left


def test_unwritable_cache_dir_only_costs_speed(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    x, y = _cache_args()
    want = S.reference(cached_fn, x, y)
    for _ in range(2):
        cf = nc.compile(cached_fn)
        np.testing.assert_allclose(cf(x, y), want, rtol=1e-5, atol=1e-5)
        assert not entries(cf)[0][1].native.from_cache
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("setting", ["off", "OFF", "0", "none"])
def test_cache_off_writes_nothing(tmp_path, monkeypatch, setting):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", setting)
    x, y = _cache_args()
    for _ in range(2):
        cf = nc.compile(cached_fn)
        cf(x, y)
        assert not entries(cf)[0][1].native.from_cache
    assert not list(tmp_path.rglob("*.o"))


def test_cache_dir_expands_a_leading_tilde(tmp_path, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", "~/objects")  # as a quoted "~/objects" arrives
    x, y = _cache_args()
    nc.compile(cached_fn)(x, y)
    assert list((home / "objects").glob("*.o"))
    assert list(cwd.iterdir()) == []  # no literal ./~/objects


# ---- recompilation ------------------------------------------------------------------------


def test_recompiles_only_for_new_shapes_and_dtypes():
    traces = []

    def fn(x, y):
        traces.append(x.shape)
        return x * y + 1.0

    cf = nc.compile(fn)
    a = np.ones((3, 4), np.float32)
    cf(a, a)
    cf(a.copy() * 2, a)
    cf(a, np.zeros_like(a))
    assert len(cf._cache) == 1 and len(traces) == 1
    cf(np.ones((3, 5), np.float32), np.ones((3, 5), np.float32))  # new shape
    assert len(cf._cache) == 2
    cf(a.astype(np.float64), a.astype(np.float64))  # new dtype
    assert len(cf._cache) == 3
    cf(a, np.ones((4,), np.float32))  # broadcasting: another signature
    assert len(cf._cache) == 4
    for x in (a, np.ones((3, 5), np.float32)):
        np.testing.assert_array_equal(cf(x, x), x * x + 1)
    assert len(cf._cache) == 4 and len(traces) == 4


def test_static_arguments_are_part_of_the_signature():
    cf = nc.compile(lambda x, axis: nc.sum(x, axis=axis))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(cf(x, 0), x.sum(0))
    np.testing.assert_array_equal(cf(x, 1), x.sum(1))
    np.testing.assert_array_equal(cf(x, 0), x.sum(0))
    assert len(cf._cache) == 2


# ---- NNCOMPILE_DUMP -----------------------------------------------------------------------


def big_elementwise(x, y):
    return nc.exp(x) * y + nc.sqrt(nc.abs(x)) - nc.tanh(y)


def _has_simd() -> bool:
    feats = llvm.get_host_cpu_features()
    return bool(feats.get("avx") or feats.get("avx2") or feats.get("avx512f"))


def test_dump_writes_every_stage(tmp_path, monkeypatch):
    dump = tmp_path / "dump"
    monkeypatch.setenv("NNCOMPILE_DUMP", str(dump))
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal(4099).astype(np.float32) for _ in range(2))
    cf = nc.compile(big_elementwise)
    np.testing.assert_allclose(cf(x, y), S.reference(big_elementwise, x, y), rtol=1e-5, atol=1e-5)
    folder = dump / "big_elementwise"
    files = {p.name: p.read_text() for p in folder.iterdir()}
    assert {"kernels.txt", "llvm.ll", "llvm_optimized.ll", "assembly.s"} <= set(files)
    assert all(files[n].strip() for n in files)
    assert "kernel " in files["kernels.txt"]
    ((lowered, _),) = entries(cf)
    assert files["llvm.ll"] == lowered.source
    assert files["kernels.txt"] == lowered.program.text()
    assert "define" in files["llvm_optimized.ll"] and "nc_entry" in files["llvm_optimized.ll"]
    if _has_simd():
        assert re.search(r"%[yz]mm\d+", files["assembly.s"]), "no vector registers used"


def test_lower_exposes_source_program_and_compile():
    x = np.ones((5, 7), np.float32)
    lowered = nc.lower(big_elementwise, x, x, backend="llvm")
    assert "define" in lowered.source and "nc_entry" in lowered.source
    assert "kernel " in lowered.program.text()
    (out,) = lowered.compile()([x, x])
    np.testing.assert_allclose(out, S.reference(big_elementwise, x, x), rtol=1e-5, atol=1e-6)


# ---- threads ------------------------------------------------------------------------------


def parallel_work(x, w, img, k):
    h = nc.tanh(x @ w) + nc.sigmoid(x)
    conv = nc.conv2d(img, k, None, 1, 1)
    return {
        "elementwise": nc.exp(nc.minimum(x, 3.0)) * 2.0 + x,
        "matmul": h,
        "rows": nc.softmax(x, axis=1),
        "cols": nc.sum(x, axis=0),
        "conv": conv,
        "pool": nc.max_pool2d(nc.relu(conv), 2),
    }


def _parallel_args():
    rng = np.random.default_rng(3)
    return (
        rng.standard_normal((257, 129)).astype(np.float32),
        rng.standard_normal((129, 129)).astype(np.float32) * 0.1,
        rng.standard_normal((4, 3, 33, 31)).astype(np.float32),
        rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
    )


def test_thread_counts_agree(monkeypatch):
    args = _parallel_args()
    tol = S.acc(np.float32, 257, 3.0)
    results = {}
    for threads in (1, 2, 3):
        cf = nc.compile(parallel_work, threads=threads)
        results[threads] = S.check(parallel_work, *args, tol=tol, compiled=cf)
        lowered = entries(cf)[0][0]
        assert lowered.threads == threads
        if threads > 1 and load_libgomp():  # the parallel code path is really exercised
            assert "GOMP_parallel" in lowered.source
    monkeypatch.setenv("NNCOMPILE_THREADS", "2")
    cf = nc.compile(parallel_work)
    results["env"] = cf(*args)
    assert entries(cf)[0][0].threads == 2
    for key in results:
        for name in results[1]:
            S.assert_close(results[key][name], results[1][name], tol, f"{key} threads: {name}")


@pytest.mark.parametrize("value", ["many", "0", "-1", "1.5", "40000", "65535"])
def test_bad_thread_setting_is_a_config_error(monkeypatch, value):
    monkeypatch.setenv("NNCOMPILE_THREADS", value)
    with pytest.raises(nc.ConfigError, match=f"NNCOMPILE_THREADS.*{re.escape(value)}"):
        nc.compile(lambda x: x + 1)(np.ones(3, np.float32))


@pytest.mark.parametrize("value", [0, -2, 5000, 2.0, "2", True])
def test_bad_threads_argument_is_a_config_error(value):
    with pytest.raises(nc.ConfigError, match="threads"):
        nc.compile(lambda x: x + 1, threads=value)


EXIT_SCRIPT = """
import numpy as np, nncompile as nc, os
f = nc.compile(lambda x: nc.tanh(x) * 2, threads=2)
x = np.ones(1 << 20, np.float32)
for _ in range(3):
    f(x)
print("ok", os.environ.get("GOMP_SPINCOUNT"))
"""


@pytest.mark.parametrize("policy", ["active", None])
def test_process_exits_cleanly_while_openmp_threads_spin(policy):
    """Regression: llvmlite dlcloses libgomp at exit while its idle threads still spin in
    it (SIGSEGV with OMP_WAIT_POLICY=active). Without a policy, nncompile sets libgomp's
    spin count so that its threads stay awake between the parallel loops of a step."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["NNCOMPILE_CACHE_DIR"] = "off"
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    run = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    spincount = run.stdout.split()[-1]
    assert spincount == ("None" if policy else "300000")


def test_kernels_that_differ_only_in_buffers_share_one_function():
    from nncompile.backends.llvm.module import build_module

    from nncompile.compiler import lower_graph_for

    def f(a, b, c):
        return nc.tanh(a) * 2.0, nc.tanh(b) * 2.0, nc.exp(c)

    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    lowered = lower_graph_for(nc.trace(f, x, x + 1, x), "llvm")
    source = build_module(lowered.program, 1)
    defined = [line for line in source.splitlines() if line.startswith('define internal void @"k_')]
    assert len(lowered.program.kernels) == 3
    assert len(defined) == 2  # the two tanh kernels share one function
    outs = nc.compile(f)(x, x + 1, x)
    np.testing.assert_allclose(outs[0], np.tanh(x) * 2, rtol=1e-6)
    np.testing.assert_allclose(outs[1], np.tanh(x + 1) * 2, rtol=1e-6)
