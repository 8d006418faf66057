"""CUDA C -> cubin with nvcc (cached on disk like LLVM objects), and what the machine
lacks for running CUDA code: the driver (libcuda) and a device.

The driver is probed through ctypes with two calls (cuInit, cuDeviceGetCount), so that
``backend="cuda"`` can say exactly what is missing on machines without a GPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable

from ...disk_cache import cache_dir, read_cached, write_cached
from ...ir.errors import CompileError

ARCH = "sm_90"  # H100 / H200


def nvcc_path() -> str | None:
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    candidates = [shutil.which("nvcc")]
    if home:
        candidates.append(os.path.join(home, "bin", "nvcc"))
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@functools.cache
def nvcc_version(nvcc: str) -> str:
    run = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
    return run.stdout.strip()


def cubin_cache_key(source: str, arch: str, nvcc: str) -> str:
    from ... import __version__

    h = hashlib.sha256()
    for part in (source, arch, nvcc_version(nvcc), __version__):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def compile_cubin(source: str, arch: str = ARCH) -> bytes:
    """The cubin for ``source``: from the disk cache, or compiled with nvcc and cached."""
    nvcc = nvcc_path()
    if nvcc is None:
        raise CompileError(
            "backend='cuda' needs nvcc (on PATH or in $CUDA_HOME/bin) to compile the "
            "generated CUDA C"
        )
    return build_cached(
        f"cuda-{cubin_cache_key(source, arch, nvcc)}.cubin",
        source,
        "program.cu",
        lambda src, out: [nvcc, f"-arch={arch}", "-cubin", "-o", out, src],
        "nvcc rejected the generated CUDA C (a code generator bug)",
    )


def build_cached(
    name: str,
    source: str,
    source_name: str,
    command: Callable[[str, str], list[str]],
    failure: str,
) -> bytes:
    """What ``command(source_path, output_path)`` builds from ``source``, kept in the disk
    cache as ``name`` (the caller's key); CompileError with the compiler's messages if it
    fails."""
    directory = cache_dir()
    path = os.path.join(directory, name) if directory else None
    if path:
        cached = read_cached(path)
        if cached is not None:
            return cached
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, source_name), os.path.join(tmp, "output")
        with open(src, "w") as f:
            f.write(source)
        run = subprocess.run(command(src, out), capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            raise CompileError(f"{failure}:\n" + run.stderr[-2000:])
        with open(out, "rb") as f:
            built = f.read()
    if path:
        try:
            write_cached(path, built)
        except OSError:
            pass  # a read-only cache folder only costs speed
    return built


def missing_for_running() -> str | None:
    """What this machine lacks to run CUDA code (None when a device is usable)."""
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        driver = ctypes.CDLL(name)
    except OSError:
        return "no NVIDIA driver: libcuda.so.1 cannot be loaded on this machine"
    code = driver.cuInit(0)
    if code != 0:
        return f"the NVIDIA driver did not initialize (cuInit returned error {code})"
    count = ctypes.c_int(0)
    code = driver.cuDeviceGetCount(ctypes.byref(count))
    if code != 0 or count.value == 0:
        return "no CUDA device is visible (cuDeviceGetCount found none)"
    return None
