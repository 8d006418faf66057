"""The GEMM blocking from the machine: cache sizes read from the OS, the analytical model
for other machines (AVX2, small caches), every blocking the tuner may pick computing the
same products as NumPy (tiny blockings force many row blocks, rank updates and column
blocks), and the tuning stored on disk, read back, and rebuilt when the file is damaged."""

from __future__ import annotations

import ctypes
import json
import os

import numpy as np
import pytest
from nncompile.backends.llvm import gemm_tune
from nncompile.backends.llvm.executable import aligned_empty
from nncompile.backends.llvm.gemm_packed import (
    A_BUDGET_ELEMENTS,
    B_BUDGET_ELEMENTS,
    WORKSPACE_BYTES,
)
from nncompile.backends.llvm.gemm_params import GemmParams, model_params, within_workspace
from nncompile.backends.llvm.machine import Machine, _size, cache_sizes, this_machine

AVX512 = Machine("test", "skylake-avx512", 64, 32, 32 * 1024, 1024 * 1024, 32 << 20, 4)
AVX2 = Machine("test", "haswell", 32, 16, 32 * 1024, 256 * 1024, 8 << 20, 4)
SMALL = Machine("test", "tiny", 16, 16, 16 * 1024, 128 * 1024, 0, 1)


def test_cache_sizes_come_from_the_os():
    sizes = cache_sizes()
    assert sizes[1] >= 8 * 1024 and sizes[2] >= sizes[1]
    assert _size("48K") == 48 * 1024 and _size("2M") == 2 << 20 and _size("512") == 512
    machine = this_machine()
    assert machine.vector_bytes in (16, 32, 64) and machine.l1d == sizes[1]
    assert "KiB" in machine.describe()


@pytest.mark.parametrize("machine", [AVX512, AVX2, SMALL], ids=lambda m: m.llvm_cpu)
def test_model_blocking_fits_registers_caches_and_workspace(machine):
    p = model_params(machine)
    assert p.lanes == machine.vector_bytes // 4
    assert p.mr * p.vectors + p.vectors + 1 <= machine.vector_registers  # no spills
    assert p.mr * p.kc * 4 <= machine.l1d // 2  # A's micro-panel in half of L1
    assert p.kc * p.nc * 4 <= machine.l2 // 2 or p.nc == p.nr  # B's block in half of L2
    assert p.mc % p.mr == 0 and p.mc * p.kc <= A_BUDGET_ELEMENTS
    assert p.kc * p.nc <= B_BUDGET_ELEMENTS


def test_model_differs_between_machines():
    wide, narrow = model_params(AVX512), model_params(AVX2)
    assert (wide.nr, narrow.nr) == (64, 16)
    assert narrow.nc > wide.nc or narrow.kc != wide.kc or narrow.mc != wide.mc


def test_a_blocking_beyond_the_workspace_is_refused():
    with pytest.raises(ValueError, match="workspace"):
        GemmParams(6, 4, 16, 256, 384 * 4, 1024)
    assert within_workspace(6, 4, 16, 256, 6000, 100000).mc * 256 <= A_BUDGET_ELEMENTS


def test_candidates_are_valid_and_distinct():
    for machine in (AVX512, AVX2, this_machine()):
        options = gemm_tune.candidates(machine)
        assert options[0] == model_params(machine) and len(set(options)) == len(options)


_CALL = ctypes.CFUNCTYPE(
    None, *([ctypes.c_void_p] * 3 + [ctypes.c_int64] * 10 + [ctypes.c_void_p, ctypes.c_int64])
)
BLOCKINGS = [  # (mr, vectors, lanes, kc, mc, nc)
    (6, 4, 16, 256, 384, 1024),  # the AVX-512 model
    (6, 4, 16, 16, 12, 64),  # tiny: many row blocks, rank updates and column blocks
    (6, 4, 16, 32, 18, 128),  # a few panels per thread along rows or columns
    (12, 2, 16, 48, 24, 64),  # the tall tile
    (6, 2, 8, 24, 12, 32),  # the AVX2 tile (8 lanes), tiny blocking
]
# (the 30 x 500 x 700 product splits its many column panels between the threads, the
# 700 x 64 x 40 one its row panels)
SHAPES = [(1, 1, 1), (7, 33, 65), (40, 100, 130), (100, 7, 300), (13, 260, 5), (30, 500, 700)]
SHAPES += [(700, 64, 40)]


@pytest.fixture(scope="module")
def compiled_tiles():
    cache: dict = {}

    def get(params: GemmParams):
        if params.tile not in cache:
            cache[params.tile] = gemm_tune.compile_gemm(params.tile)
        return cache[params.tile]

    return get


@pytest.mark.parametrize("blocking", BLOCKINGS, ids=lambda b: "_".join(map(str, b)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_blocking_computes_the_product(compiled_tiles, blocking, dtype):
    params = GemmParams(*blocking)
    native = compiled_tiles(params)
    gemm_tune.set_blocking(native, params)
    suffix = "f32" if dtype == np.float32 else "f64"
    fn = _CALL(native.engine.get_function_address(f"nc_gemm_{suffix}"))
    workspace = aligned_empty(WORKSPACE_BYTES * 2)  # (two threads: a slice each)
    rng = np.random.default_rng(sum(blocking))
    for m, k, n in SHAPES:
        for transposed_a in (False, True):
            a = rng.uniform(-1, 1, (k, m) if transposed_a else (m, k)).astype(dtype)
            b = rng.uniform(-1, 1, (k, n)).astype(dtype)
            a_rs, a_cs = (1, m) if transposed_a else (k, 1)
            want = (a.T if transposed_a else a).astype(np.float64) @ b
            for threads in (1, 2):
                for beta in (0, 1):
                    c = np.full((m, n), 0.5, dtype)
                    args = (a.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, k)
                    fn(*args, a_rs, a_cs, n, 1, n, 1, beta, workspace.ctypes.data, threads)
                    expected = want + (0.5 if beta else 0.0)
                    np.testing.assert_allclose(
                        c, expected, rtol=1e-4, atol=1e-4 * k**0.5, err_msg=f"{m}x{k}x{n}"
                    )


def test_model_mode_times_nothing(monkeypatch):
    monkeypatch.setattr(gemm_tune, "tune", lambda *a: pytest.fail("tuned in model mode"))
    tuning = gemm_tune.gemm_tuning("model")
    assert tuning.source == "model" and tuning.params == model_params(this_machine())


def test_without_a_cache_folder_auto_uses_the_model(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", "off")
    monkeypatch.setattr(gemm_tune, "tune", lambda *a: pytest.fail("tuned without a cache"))
    assert gemm_tune.gemm_tuning("auto").source == "model"


def test_tuning_is_stored_read_back_and_rebuilt_when_damaged(monkeypatch, tmp_path):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    calls = []
    fake = model_params(this_machine())

    def fake_tune(machine, threads):
        calls.append(threads)
        return gemm_tune.Tuning(fake, machine, threads, "tuned", timings={"x": 1.0}, date="d")

    monkeypatch.setattr(gemm_tune, "tune", fake_tune)
    first = gemm_tune.gemm_tuning("auto")
    assert first.source == "tuned" and os.path.exists(first.stored_at) and len(calls) == 1
    again = gemm_tune.gemm_tuning("auto")
    assert again.source == "stored" and again.params == fake and len(calls) == 1
    with open(first.stored_at) as f:
        record = json.load(f)
    assert record["machine"]["l1d"] == this_machine().l1d and record["date"] == "d"
    for damage in ("{not json", json.dumps({"params": {"mr": 6}}), ""):
        with open(first.stored_at, "w") as f:
            f.write(damage)
        assert gemm_tune.gemm_tuning("auto").source == "tuned"
    assert len(calls) == 4
    assert gemm_tune.gemm_tuning("force").source == "tuned" and len(calls) == 5


def test_the_tuner_times_real_candidates_and_checks_the_winner(monkeypatch):
    """A real (short) tuning run: every candidate timed on every shape, the winner one of
    them and its product checked."""
    monkeypatch.setattr(gemm_tune, "TUNING_SHAPES", ((96, 64, 128), (20, 300, 40)))
    monkeypatch.setattr(gemm_tune, "ROUNDS", 1)
    monkeypatch.setattr(gemm_tune, "candidates", lambda m: [GemmParams(*b) for b in BLOCKINGS[:3]])
    tuning = gemm_tune.tune(this_machine(), 2)
    assert tuning.params in [GemmParams(*b) for b in BLOCKINGS[:3]]
    assert len(tuning.timings) == 3 and min(tuning.timings.values()) >= 1.0
    assert tuning.native is not None and "candidates" in tuning.describe()


def test_fma_peak_is_measured():
    from nncompile.backends.llvm.fma_peak import fma_peak

    assert 1.0 < fma_peak(0.02) < 1e5


def test_processes_started_together_tune_once(tmp_path):
    """Two processes with no stored tuning: one tunes, the other waits for its lock and
    reads the result (both timing at once would measure each other)."""
    import subprocess
    import sys

    script = (
        "from nncompile.backends.llvm import gemm_tune as t\n"
        "t.TUNING_SHAPES = ((256, 256, 256),)\n"
        "print(t.gemm_tuning('auto').source)\n"
    )
    env = {**os.environ, "NNCOMPILE_CACHE_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    sources = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert sources == ["stored", "tuned"], sources
    assert len(list(tmp_path.glob("gemm-tuning-*.json"))) == 1


def test_a_stored_blocking_no_candidate_could_be_is_not_used(monkeypatch, tmp_path):
    """A hand-edited file with valid-looking numbers (a 600-row micro-tile) is ignored and
    tuning runs again, rather than compiling whatever the file says."""
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    machine = this_machine()
    path = gemm_tune._store_path(machine, 2)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    forged = {**model_params(machine).__dict__, "mr": 600, "mc": 600}
    with open(path, "w") as f:
        json.dump({"params": forged, "date": "d"}, f)
    assert gemm_tune._load(path, machine, 2) is None
