"""nc.profile: per-kernel times of a compiled function, run kernel by kernel."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc


def step(x, w):
    h = nc.relu(nc.matmul(x, w))
    return nc.sum(h, axis=0), nc.tanh(h)


def test_profile_times_every_kernel_in_program_order():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32)).astype(np.float32)
    w = rng.standard_normal((32, 16)).astype(np.float32)
    before = x.copy(), w.copy()
    report = nc.profile(step, x, w, steps=3)
    program = nc.lower(step, x, w).program
    assert [k.name for k in report.kernels] == [k.name for k in program.kernels]
    assert all(k.median_ms > 0 for k in report.kernels)
    assert report.total_ms == pytest.approx(sum(k.median_ms for k in report.kernels))
    table = report.table()
    assert "total of" in table and all(k.name in table for k in report.kernels)
    assert len(report.table(top=1).splitlines()) == 3  # header, one kernel, total
    np.testing.assert_array_equal(x, before[0])  # inputs are not modified
    np.testing.assert_array_equal(w, before[1])


def test_kernel_by_kernel_run_gives_the_normal_results():
    from nncompile.compiler import lower_graph_for

    x = np.linspace(-1, 1, 64 * 32, dtype=np.float32).reshape(64, 32)
    w = np.linspace(1, -1, 32 * 16, dtype=np.float32).reshape(32, 16)
    lowered = lower_graph_for(nc.trace(step, x, w), kernel_entries=True)
    executable = lowered.compile()
    want = executable([x, w])
    want = [a.copy() for a in want]
    got, seconds = executable.call_timed([x, w], executable.kernel_entries())
    assert len(seconds) == len(lowered.program.kernels)
    for g, e in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, e)


def test_profile_rejects_zero_steps():
    x = np.ones((2, 2), np.float32)
    with pytest.raises(nc.ConfigError, match="steps"):
        nc.profile(step, x, x, steps=0)


def test_profile_takes_a_compiled_function():
    """The README's own example: nc.profile(step, *args) with step = nc.compile(...)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 8)).astype(np.float32)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    compiled = nc.compile(step, donate_argnums=(1,))
    report = nc.profile(compiled, x, w, steps=2)
    assert [k.name for k in report.kernels] == [
        k.name for k in nc.lower(step, x, w).program.kernels
    ]
    jitted = nc.jit(step)
    assert len(nc.profile(jitted, x, w, steps=2).kernels) == len(report.kernels)


def test_profile_on_the_cuda_emulator_says_the_times_are_emulation_times(monkeypatch):
    import shutil

    if not shutil.which("g++"):
        pytest.skip("the CUDA emulator needs g++")
    monkeypatch.setenv("NNCOMPILE_CUDA_EMULATOR", "1")
    x = np.linspace(-1, 1, 16 * 8, dtype=np.float32).reshape(16, 8)
    w = np.linspace(1, -1, 8 * 4, dtype=np.float32).reshape(8, 4)
    report = nc.profile(step, x, w, steps=2, backend="cuda")
    program = nc.lower(step, x, w, backend="cuda").program
    assert [k.name for k in report.kernels] == [k.name for k in program.kernels]
    assert all(k.median_ms > 0 for k in report.kernels)
    table = report.table()
    assert "emulation times" in table.splitlines()[0] and "cuda" in table.splitlines()[-1]
    with pytest.raises(nc.ConfigError, match="CPU peaks"):
        report.table(peaks=object())  # CPU roofline peaks mean nothing for the emulator


def test_profile_on_the_numpy_backend_names_what_it_lacks():
    x = np.ones((4, 4), np.float32)
    with pytest.raises(NotImplementedError, match="backend 'numpy' lacks"):
        nc.profile(step, x, x, backend="numpy")
