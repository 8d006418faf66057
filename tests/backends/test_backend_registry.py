"""nncompile/backend.py: backends are looked up by name, through one protocol."""

from types import SimpleNamespace

import numpy as np
import pytest
from nncompile.backends import cuda as cuda_pkg
from nncompile.backends.cuda import emulator
from nncompile.backends.cuda import executable as cuda_executable

import nncompile as nc
from nncompile import backend as registry


def test_the_three_backends_are_registered():
    assert registry.backend_names()[:3] == ("numpy", "llvm", "cuda")
    for name in ("numpy", "llvm", "cuda"):
        assert registry.get_backend(name).name == name


def test_unknown_backend_lists_the_registered_ones():
    with pytest.raises(nc.CompileError, match="unknown backend 'tpu'.*'llvm'"):
        nc.compile(lambda x: x, backend="tpu")


def test_a_backend_that_cannot_be_imported_names_the_missing_module(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "broken", ".backends.no_such_backend")
    with pytest.raises(nc.CompileError, match="'nncompile.backends.no_such_backend' is missing"):
        registry.get_backend("broken")


def test_check_mode_needs_per_kernel_entries(monkeypatch):
    fake = SimpleNamespace(name="fake", device="cpu", per_kernel=False, device_outputs=False)
    monkeypatch.setitem(registry._REGISTRY, "fake", fake)
    with pytest.raises(NotImplementedError, match="check=True.*'fake'"):
        nc.compile(lambda x: x, backend="fake", check=True)


def test_device_outputs_needs_a_backend_that_keeps_them():
    with pytest.raises(nc.CompileError, match="device_outputs=True"):
        nc.compile(lambda x: x, backend="llvm", device_outputs=True)


def test_is_device_array():
    assert not registry.is_device_array(np.ones(2))
    assert registry.is_device_array(cuda_executable.DeviceArray(0, (2,), np.float32))


def test_cuda_c_is_generated_once_per_compile(monkeypatch):
    """Building reuses the launches emitted with the source instead of emitting again."""
    x = np.ones((4, 3), np.float32)
    lowered = nc.lower(lambda x: nc.exp(x) + 1, x, backend="cuda")
    assert lowered.artifacts, "the launches come with the source"

    def again(program):
        raise AssertionError("the CUDA C was generated a second time")

    built = {}
    monkeypatch.setattr(cuda_pkg, "emit_cuda", again)
    monkeypatch.setenv("NNCOMPILE_CUDA_EMULATOR", "1")
    monkeypatch.setattr(emulator, "build_library", lambda source, launches: (source, launches))
    monkeypatch.setattr(
        cuda_executable,
        "CUDAExecutable",
        lambda p, launches, lib, device_outputs: built.update(lib=lib),
    )
    lowered.compile()
    assert built["lib"] == (lowered.source, lowered.artifacts)
