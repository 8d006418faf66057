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


def cpu_has_avx512bf16() -> bool:
    return "avx512bf16" in host_features()


def bf16_form() -> str:
    """How this process computes bf16 products now: "amx", "avx512bf16" (vdpbf16ps, where
    the CPU has it, AMX is not usable and NNCOMPILE_AVX512BF16=1 asks for it), or "float32"
    (on bf16-rounded copies). AVX512-BF16 is opt-in: on the development machine, with AMX
    turned off, it ran 1024^3 at 95 GFLOP/s on one core against the float32 form's 154
    (vdpbf16ps there runs at the float32 FMA's rate, and the rounding passes cost extra)."""
    if amx_usable():
        return "amx"
    if config.get_bool(config.AVX512BF16) and cpu_has_avx512bf16():
        return "avx512bf16"
    return "float32"
