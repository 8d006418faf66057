"""libgomp's pool threads are created inside a flushed call and inherit its FTZ|DAZ; they
must go back to IEEE subnormals when compiled code leaves them, or a later program
compiled with flushing off (or any other user of the pool) flushes on half its threads."""

from __future__ import annotations

import numpy as np

import nncompile as nc


def test_pool_threads_return_to_ieee_subnormals(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", "off")
    big = np.ones(1 << 22, np.float32)
    nc.compile(lambda v: v * np.float32(2.0), threads=2)(big)  # flushing: the pool starts
    monkeypatch.setenv("NNCOMPILE_FLUSH_DENORMALS", "0")
    tiny = nc.compile(lambda v: v * np.float32(1e-38), threads=2)(np.full(1 << 22, 0.5, "f4"))
    assert np.count_nonzero(tiny == 0) == 0  # 5e-39, a subnormal, on every thread's share
    np.testing.assert_array_equal(tiny, np.float32(0.5) * np.float32(1e-38))
