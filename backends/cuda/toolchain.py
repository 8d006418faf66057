"""CUDA C -> cubin with NVRTC (through cuda-bindings: ``pip install nncompile[cuda]``) or
nvcc, cached on disk like LLVM objects, and what the machine lacks for running CUDA
code: the driver (libcuda) and a device.

NVRTC compiles in-process and is used when it loads; nvcc when it is on PATH (or in
$CUDA_HOME/bin). ``NNCOMPILE_CUDA_COMPILER=nvrtc|nvcc`` picks one. Neither needs a GPU.
The driver is probed through ctypes with two calls (cuInit, cuDeviceGetCount), so that
``backend="cuda"`` can say exactly what is missing on machines without a GPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable

from ... import config
from ...disk_cache import cache_dir, read_cached, write_cached
from ...ir.errors import CompileError

ARCH = "sm_90"  # H100 / H200
COMPILERS = ("nvrtc", "nvcc")


def nvcc_path() -> str | None:
    home = config.get_path(config.CUDA_HOME) or config.get_path(config.CUDA_PATH)
    candidates = [shutil.which("nvcc")]
    if home:
        candidates.append(os.path.join(home, "bin", "nvcc"))
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@functools.cache
def toolkit_include() -> str | None:
    """The CUDA toolkit's include folder (CUDA_HOME, CUDA_PATH, /usr/local/cuda*), for the
    headers NVRTC does not carry itself: WMMA's mma.h and cuda_bf16.h (bf16 GEMMs)."""
    homes = [config.get_path(config.CUDA_HOME), config.get_path(config.CUDA_PATH)]
    homes += ["/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*"), reverse=True)]
    for home in homes:
        if home and os.path.isfile(os.path.join(home, "include", "mma.h")):
            return os.path.join(home, "include")
    return None


def nvrtc():
    """cuda-bindings' NVRTC module, or None when it is not installed or will not load."""
    try:
        from cuda.bindings import nvrtc as module

        err, *_ = module.nvrtcVersion()
        return module if int(err) == 0 else None
    except Exception:  # not installed, or libnvrtc missing: nvcc is the other way
        return None


@functools.cache
def nvcc_version(nvcc: str) -> str:
    run = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
    return run.stdout.strip()


def available_compilers() -> list[str]:
    """The compilers this machine has, in order of preference."""
    found = []
    if nvrtc() is not None:
        found.append("nvrtc")
    if nvcc_path() is not None:
        found.append("nvcc")
    return found


def chosen_compiler() -> str:
    """NNCOMPILE_CUDA_COMPILER's choice, or the first available; CompileError if none."""
    wanted = config.get_enum(config.CUDA_COMPILER)
    available = available_compilers()
    if wanted:
        if wanted not in available:
            raise CompileError(f"NNCOMPILE_CUDA_COMPILER={wanted} but {_how_to_get(wanted)}")
        return wanted
    if not available:
        raise CompileError(
            "backend='cuda' needs NVRTC (pip install 'nncompile[cuda]') or nvcc (on PATH or "
            "in $CUDA_HOME/bin) to compile the generated CUDA C"
        )
    return available[0]


def _how_to_get(compiler: str) -> str:
    if compiler == "nvrtc":
        return "NVRTC does not load (pip install 'nncompile[cuda]')"
    return "nvcc is not on PATH or in $CUDA_HOME/bin"


def compiler_version(compiler: str) -> str:
    if compiler == "nvrtc":
        _, major, minor = nvrtc().nvrtcVersion()
        return f"nvrtc {major}.{minor}"
    return nvcc_version(nvcc_path())


def cubin_cache_key(source: str, arch: str, compiler: str) -> str:
    from ... import __version__

    h = hashlib.sha256()
    for part in (source, arch, compiler_version(compiler), __version__):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def compile_cubin(source: str, arch: str = ARCH, compiler: str | None = None) -> bytes:
    """The cubin for ``source``: from the disk cache, or compiled (NVRTC or nvcc, see
    chosen_compiler) and cached."""
    compiler = compiler or chosen_compiler()
    name = f"cuda-{cubin_cache_key(source, arch, compiler)}.cubin"
    if compiler == "nvrtc":
        return cached(name, lambda: _nvrtc_cubin(source, arch))
    nvcc = nvcc_path()
    return cached(
        name,
        lambda: run_compiler(
            source,
            "program.cu",
            lambda src, out: [nvcc, f"-arch={arch}", "-cubin", "-o", out, src],
            "nvcc rejected the generated CUDA C (a code generator bug)",
        ),
    )


def _nvrtc_cubin(source: str, arch: str) -> bytes:
    rtc = nvrtc()

    def check(result, what: str):
        err, *values = result
        if int(err) != 0:
            raise CompileError(f"NVRTC: {what} failed: {rtc.nvrtcGetErrorString(err)[1]!r}")
        return values

    (program,) = check(rtc.nvrtcCreateProgram(source.encode(), b"program.cu", 0, [], []), "create")
    try:
        options = [f"--gpu-architecture={arch}".encode(), b"-std=c++17"]
        if "#include <mma.h>" in source:  # a bf16 GEMM's tensor-core fragments
            include = toolkit_include()
            if include is None:
                raise CompileError(
                    "matmul_precision='bf16' on CUDA compiles WMMA code, whose headers (mma.h, "
                    "cuda_bf16.h) come with the CUDA toolkit, not with NVRTC: set CUDA_HOME "
                    "to the toolkit's folder"
                )
            options.append(f"--include-path={include}".encode())
        (err,) = rtc.nvrtcCompileProgram(program, len(options), options)
        if int(err) != 0:
            (size,) = check(rtc.nvrtcGetProgramLogSize(program), "log size")
            log = b" " * size
            check(rtc.nvrtcGetProgramLog(program, log), "log")
            raise CompileError(
                "NVRTC rejected the generated CUDA C (a code generator bug):\n"
                + log.decode(errors="replace")[-2000:]
            )
        (size,) = check(rtc.nvrtcGetCUBINSize(program), "cubin size")
        cubin = b" " * size
        check(rtc.nvrtcGetCUBIN(program, cubin), "cubin")
        return cubin
    finally:
        rtc.nvrtcDestroyProgram(program)


def cached(name: str, produce: Callable[[], bytes]) -> bytes:
    """``produce()``, kept in the disk cache under ``name`` (the caller's key)."""
    directory = cache_dir()
    path = os.path.join(directory, name) if directory else None
    if path:
        hit = read_cached(path)
        if hit is not None:
            return hit
    built = produce()
    if path:
        try:
            write_cached(path, built)
        except OSError:
            pass  # a read-only cache folder only costs speed
    return built


def run_compiler(
    source: str, source_name: str, command: Callable[[str, str], list[str]], failure: str
) -> bytes:
    """What ``command(source_path, output_path)`` builds from ``source``; CompileError with
    the compiler's messages if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, source_name), os.path.join(tmp, "output")
        with open(src, "w") as f:
            f.write(source)
        run = subprocess.run(command(src, out), capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            raise CompileError(f"{failure}:\n" + run.stderr[-2000:])
        with open(out, "rb") as f:
            return f.read()


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
