"""GPU tests run where the CUDA backend can run: on a GPU (NVRTC or nvcc, the NVIDIA driver
and a device), or, without one, on the CPU emulation of the generated CUDA C
(NNCOMPILE_CUDA_EMULATOR=1, backends/cuda/emulator.py) when g++ is there. The emulation
checks what the kernels compute, block barriers and warp shuffles included; only a GPU
checks that the CUDA compiler's build of them runs, and how fast. Elsewhere the folder is
skipped."""

import os
import shutil

import pytest
from nncompile.backends.cuda import emulator, toolchain


def _gpu_missing() -> str | None:
    if not toolchain.available_compilers():
        return "neither NVRTC nor nvcc is here"
    return toolchain.missing_for_running()


def _mode() -> tuple[str, str | None]:
    """("gpu" | "emulated" | "skip", why)."""
    if emulator.emulating():
        return "emulated", None
    missing = _gpu_missing()
    if missing is None:
        return "gpu", None
    if shutil.which(os.environ.get("CXX", "g++")):
        return "emulated", missing
    return "skip", missing


def pytest_report_header(config):
    mode, why = _mode()
    return f"tests/gpu: {mode}" + (f" (no GPU: {why})" if why else "")


@pytest.fixture(autouse=True)
def _cuda_mode(request, monkeypatch):
    mode, _ = _mode()
    if mode == "emulated" and "tests/gpu/" in str(request.node.fspath).replace("\\", "/"):
        monkeypatch.setenv(emulator.ENV, "1")


def pytest_collection_modifyitems(config, items):
    mode, why = _mode()
    if mode != "skip":
        return
    skip = pytest.mark.skip(reason=f"no usable GPU and no g++ to emulate one: {why}")
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
