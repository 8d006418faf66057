"""GPU tests run only where the CUDA backend can run: nvcc, the NVIDIA driver and a device.
Everywhere else the whole folder is skipped with the reason."""

import pytest
from nncompile.backends.cuda import toolchain


def _why_not() -> str | None:
    if toolchain.nvcc_path() is None:
        return "nvcc is not on PATH"
    return toolchain.missing_for_running()


def pytest_collection_modifyitems(config, items):
    reason = _why_not()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"no usable GPU: {reason}")
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
