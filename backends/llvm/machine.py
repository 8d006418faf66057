"""What the CPU this process runs on offers the generated code: its caches, its vector
width and register count, its name. Read once from the OS and LLVM's host description;
nothing here is a constant of one box."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import llvmlite.binding as llvm

# Used where the OS reports nothing (a container without sysfs): a common desktop core.
FALLBACK_CACHES = {1: 32 * 1024, 2: 1024 * 1024, 3: 8 * 1024 * 1024}


@dataclass(frozen=True)
class Machine:
    cpu_model: str  # /proc/cpuinfo's model name
    llvm_cpu: str  # LLVM's name for the core (rocketlake, znver4, ...)
    vector_bytes: int  # widest float vector: 64 (AVX-512), 32 (AVX2), 16 (SSE)
    vector_registers: int  # 32 with AVX-512, else 16
    l1d: int  # bytes per core
    l2: int  # bytes per core
    l3: int  # bytes, shared
    cores: int  # cores this process may run on

    def describe(self) -> str:
        return (
            f"{self.cpu_model} ({self.llvm_cpu}), {self.cores} cores, "
            f"{self.vector_bytes * 8}-bit vectors x {self.vector_registers}, "
            f"L1d {self.l1d // 1024} KiB, L2 {self.l2 // 1024} KiB, L3 {self.l3 // 1024} KiB"
        )


def _size(text: str) -> int:
    """sysfs cache sizes: '48K', '2048K', '32M'."""
    text = text.strip().upper()
    scale = {"K": 1024, "M": 1024 * 1024, "G": 1024**3}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def cache_sizes(cpu: int = 0) -> dict[int, int]:
    """{level: bytes} of the data caches of ``cpu`` (sysfs, then sysconf, then fallbacks)."""
    sizes: dict[int, int] = {}
    base = f"/sys/devices/system/cpu/cpu{cpu}/cache"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        entries = []
    for entry in entries:
        if not entry.startswith("index"):
            continue
        try:
            with open(f"{base}/{entry}/level") as f:
                level = int(f.read())
            with open(f"{base}/{entry}/type") as f:
                kind = f.read().strip()
            with open(f"{base}/{entry}/size") as f:
                size = _size(f.read())
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified") and size > 0:
            sizes[level] = size
    names = {1: "SC_LEVEL1_DCACHE_SIZE", 2: "SC_LEVEL2_CACHE_SIZE", 3: "SC_LEVEL3_CACHE_SIZE"}
    for level, name in names.items():
        if level not in sizes:
            try:
                value = os.sysconf(name)
            except (ValueError, OSError):
                value = 0
            sizes[level] = value if value > 0 else FALLBACK_CACHES[level]
    return sizes


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


@functools.cache
def host_features() -> frozenset[str]:
    """The CPU features LLVM reports for this host that are present ("avx512f", ...)."""
    llvm.initialize_native_target()
    return frozenset(name for name, on in llvm.get_host_cpu_features().items() if on)


@functools.cache
def this_machine() -> Machine:
    from ...backend import default_threads

    features = host_features()
    wide = "avx512f" in features
    vector_bytes = 64 if wide else 32 if "avx2" in features else 16
    caches = cache_sizes()
    return Machine(
        cpu_model=_cpu_model(),
        llvm_cpu=llvm.get_host_cpu_name(),
        vector_bytes=vector_bytes,
        vector_registers=32 if wide else 16,
        l1d=caches[1],
        l2=caches[2],
        l3=caches[3],
        cores=default_threads(),
    )
