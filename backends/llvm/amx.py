"""Whether this process may run Intel AMX bfloat16 code, decided at run time.

Three things must hold: the CPU has the tile and bf16 units (LLVM's host features
``amx-tile`` and ``amx-bf16``), Linux grants this process the tile data state (AMX's 8 KiB
of tile registers are off until a process asks: ``arch_prctl(ARCH_REQ_XCOMP_PERM,
XFEATURE_XTILEDATA)``; without it the first tile instruction is SIGILL), and
``NNCOMPILE_AMX`` does not turn it off. The request is made once per process and covers
all its threads, present and future (and a forked child, which inherits it).
"""

from __future__ import annotations

import ctypes
import functools
import platform

from ... import config
from .machine import host_features

_SYS_ARCH_PRCTL = 158  # x86-64
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18


def cpu_has_amx() -> bool:
    return {"amx-tile", "amx-bf16"} <= host_features()


@functools.cache
def _permission_granted() -> bool:
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False


def amx_usable() -> bool:
    """AMX bf16 may be used now (the permission is requested on the first True)."""
    return config.get_bool(config.AMX) and cpu_has_amx() and _permission_granted()


# vdpbf16ps does two products per lane where an FMA does one: at 1.5x the FMA's flops it
# still leaves a clear gain after the rounding passes; near 1x (half the issue rate) none.
DOT_SPEEDUP_NEEDED = 1.5


def cpu_has_avx512bf16() -> bool:
    return "avx512bf16" in host_features()


def bf16_form() -> str:
    """How this process computes bf16 products now: "amx", "avx512bf16" (vdpbf16ps) or
    "float32" (the float32 GEMM rounding as it packs); "amx-emulated" (the AMX form with
    its tile instructions in plain code, amx_emulation.py) where AMX is not usable and
    NNCOMPILE_AMX_EMULATE asks for it. Without usable AMX, AVX512-BF16 is
    taken where the CPU has it and NNCOMPILE_AVX512BF16 is 1, or is auto and it measures
    at least DOT_SPEEDUP_NEEDED times the float32 FMA peak (fma_peak.bf16_dot_speedup):
    on Zen 5 it measures 1.9x and the bf16 GEMM runs 1.7x the float32 one; on the
    Sapphire Rapids machine of the first measurements (AMX off) the bf16 GEMM ran 95
    GFLOP/s on one core against the float32 form's 154 (its vdpbf16ps peak was not
    measured then)."""
    if amx_usable():
        return "amx"
    if config.get_bool(config.AMX_EMULATE):
        return "amx-emulated"
    choice = config.get_enum(config.AVX512BF16)
    if choice == "0" or not cpu_has_avx512bf16():
        return "float32"
    if choice == "1":
        return "avx512bf16"
    from .fma_peak import bf16_dot_speedup

    speedup = bf16_dot_speedup()
    return "avx512bf16" if speedup is not None and speedup >= DOT_SPEEDUP_NEEDED else "float32"
