"""The packed GEMM reads a row-major A's whole MR-row panels in place (gemm_packed
GemmBuilder._in_place_a) and packs only the last, partial panel. Against a float64 product:
A as a view whose rows are longer than k (misaligned row starts), on one and two threads,
several rank-KC updates and row blocks; and A ending right before a page the process may
not read, so that a read of a row below A's end crashes the child running it."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from nncompile.backends.llvm import runtime
from nncompile.backends.llvm.executable import aligned_empty
from nncompile.backends.llvm.gemm_packed import WORKSPACE_BYTES

_CALL = ctypes.CFUNCTYPE(
    None, *([ctypes.c_void_p] * 3 + [ctypes.c_int64] * 10 + [ctypes.c_void_p, ctypes.c_int64])
)
# (m, k, n): rows not a multiple of the 6-row tile, one or more rank-KC updates and row
# blocks, few and many column panels
SHAPES = [(7, 33, 5), (61, 700, 64), (200, 1100, 130), (517, 300, 40), (13, 5000, 20)]


def _gemm(dtype) -> _CALL:
    suffix = "f32" if dtype == np.float32 else "f64"
    return _CALL(runtime.runtime().engine.get_function_address(f"nc_gemm_{suffix}"))


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_view_with_longer_rows_is_read_in_place_and_matches(m, k, n, dtype, threads):
    rng = np.random.default_rng(m + k + n)
    wide = rng.uniform(-1, 1, (m, k + 11)).astype(dtype)
    a = wide[:, 3 : 3 + k]  # rows k + 11 elements apart, starting 3 elements in
    b = rng.uniform(-1, 1, (k, n)).astype(dtype)
    c = np.full((m, n), 2.0, dtype)
    item = a.itemsize
    strides = [s // item for s in (*a.strides, *b.strides, *c.strides)]
    workspace = aligned_empty(WORKSPACE_BYTES * threads)
    for beta in (0, 1):
        before = c.copy()
        args = (a.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, k, *strides)
        _gemm(dtype)(*args, beta, workspace.ctypes.data, threads)
        want = a.astype(np.float64) @ b.astype(np.float64) + (before if beta else 0)
        tol = 1e-4 if dtype == np.float32 else 1e-11
        np.testing.assert_allclose(c, want, rtol=tol, atol=tol * k**0.5)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", ["flipped", "broadcast"])
def test_a_with_negative_or_zero_row_stride(rows, threads):
    """Rows read in place at a negative row stride (A flipped upside down) or at stride 0
    (one row broadcast to all of them)."""
    m, k, n = 100, 300, 70
    rng = np.random.default_rng(5)
    base = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    a = base[::-1] if rows == "flipped" else np.broadcast_to(base[0], (m, k))
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    c = np.empty((m, n), np.float32)
    strides = [s // 4 for s in (*a.strides, *b.strides, *c.strides)]
    workspace = aligned_empty(WORKSPACE_BYTES * threads)
    args = (a.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, k, *strides)
    _gemm(np.float32)(*args, 0, workspace.ctypes.data, threads)
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-4 * k**0.5)


_GUARDED = textwrap.dedent(
    """
    import ctypes, mmap, sys
    import numpy as np
    from nncompile.backends.llvm import runtime
    from nncompile.backends.llvm.executable import aligned_empty
    from nncompile.backends.llvm.gemm_packed import WORKSPACE_BYTES

    m, k, n, threads = map(int, sys.argv[1:])
    page = mmap.PAGESIZE
    nbytes = m * k * 4
    pages = -(-nbytes // page)
    region = mmap.mmap(-1, (pages + 1) * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(region))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(base + pages * page, page, 0) == 0  # PROT_NONE
    start = pages * page - nbytes  # A's last element ends where the guard page starts
    a = np.frombuffer(region, np.float32, m * k, start).reshape(m, k)
    rng = np.random.default_rng(0)
    a[...] = rng.uniform(-1, 1, (m, k))
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    c = np.empty((m, n), np.float32)
    call = ctypes.CFUNCTYPE(
        None, *([ctypes.c_void_p] * 3 + [ctypes.c_int64] * 10 + [ctypes.c_void_p, ctypes.c_int64])
    )(runtime.runtime().engine.get_function_address("nc_gemm_f32"))
    workspace = aligned_empty(WORKSPACE_BYTES * threads)
    call(a.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, k, k, 1, n, 1, n, 1, 0,
         workspace.ctypes.data, threads)
    want = a.astype(np.float64) @ b
    print("ok" if np.allclose(c, want, rtol=1e-4, atol=1e-3) else "wrong")
    """
)


@pytest.mark.parametrize("m,k,n,threads", [(61, 700, 64, 1), (13, 257, 130, 2), (1, 64, 64, 1)])
def test_rows_below_a_are_never_read(m, k, n, threads):
    done = subprocess.run(
        [sys.executable, "-c", _GUARDED, str(m), str(k), str(n), str(threads)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
