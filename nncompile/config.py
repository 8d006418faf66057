"""Every environment variable nncompile reads, declared once with its kind, default and a
one-line doc, and parsed by one rule per kind.

Values are read at call time (not at import), so ``monkeypatch.setenv`` and
``envvars.override`` take effect on the next compile. An invalid value raises
``ConfigError`` naming the variable. README.md's "Environment variables" table lists
exactly these declarations (tests/test_config.py checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .ir.errors import ConfigError

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")
OFF = ("", "off", "0", "none")  # a path variable set to one of these turns its feature off


@dataclass(frozen=True)
class Variable:
    name: str
    kind: str  # "bool" | "int" | "path" | "enum" | "str"
    default: object
    doc: str
    low: int = 1  # int: the accepted range
    high: int = 2**31 - 1
    choices: tuple[str, ...] = ()  # enum: the accepted values (lower case)


VARIABLES: dict[str, Variable] = {}


def _declare(*args, **kwargs) -> Variable:
    v = Variable(*args, **kwargs)
    VARIABLES[v.name] = v
    return v


CHECK = _declare(
    "NNCOMPILE_CHECK", "bool", False, "compare every compiled buffer with the reference"
)
BOUNDS_CHECK = _declare(
    "NNCOMPILE_BOUNDS_CHECK", "bool", False, "LLVM code checks every index (debugging)"
)
THREADS = _declare(
    "NNCOMPILE_THREADS", "int", None, "LLVM worker threads (default: usable cores)", high=1024
)
VERIFY = _declare(
    "NNCOMPILE_VERIFY", "bool", False, "verify every kernel lowering builds (a lowering bug check)"
)
MEMORY_CACHE = _declare(
    "NNCOMPILE_MEMORY_CACHE", "int", 32, "compiled signatures each function keeps in memory"
)
CACHE_DIR = _declare(
    "NNCOMPILE_CACHE_DIR",
    "path",
    "~/.cache/nncompile",
    "on-disk object/cubin cache folder; off/0/none disables it",
)
CACHE_MAX_MB = _declare(
    "NNCOMPILE_CACHE_MAX_MB",
    "int",
    1024,
    "size of the on-disk cache; the least recently used entries go beyond it",
)
GEMM_TUNE = _declare(
    "NNCOMPILE_GEMM_TUNE",
    "enum",
    "auto",
    "GEMM blocking: auto (tune once, stored in the cache folder), model, force",
    choices=("auto", "model", "force"),
)
AMX = _declare(
    "NNCOMPILE_AMX",
    "bool",
    True,
    "bf16 matmuls use the CPU's AMX tiles where present (0: float32 on bf16-rounded operands)",
)
AMX_EMULATE = _declare(
    "NNCOMPILE_AMX_EMULATE",
    "bool",
    False,
    "where AMX is not usable, bf16 matmuls run the AMX form with its tile instructions "
    "emulated in software (a test of that code path on any CPU; scalar speed)",
)
AVX512BF16 = _declare(
    "NNCOMPILE_AVX512BF16",
    "enum",
    "auto",
    "without AMX, bf16 matmuls use AVX512-BF16 (vdpbf16ps): auto (where it measures faster"
    " than float32 FMAs), 1 (wherever present), 0 (never)",
    choices=("auto", "1", "0"),
)
MATMUL_PRECISION = _declare(
    "NNCOMPILE_MATMUL_PRECISION",
    "enum",
    "float32",
    "default matmul_precision of compiles: float32, or bf16 (operands rounded, float32 sums)",
    choices=("float32", "bf16"),
)
FLUSH_DENORMALS = _declare(
    "NNCOMPILE_FLUSH_DENORMALS",
    "bool",
    True,
    "compiled CPU code treats subnormal floats as 0 (x86 FTZ/DAZ; much faster)",
)
DIST_TIMEOUT = _declare(
    "NNCOMPILE_DIST_TIMEOUT",
    "int",
    300,
    "seconds a distributed collective waits for every rank before it aborts the job",
    low=1,
)
DUMP = _declare("NNCOMPILE_DUMP", "path", None, "folder for every compilation stage's text")
CUDA_EMULATOR = _declare(
    "NNCOMPILE_CUDA_EMULATOR", "bool", False, "run backend='cuda' on the CPU emulation (g++)"
)
CUDA_COMPILER = _declare(
    "NNCOMPILE_CUDA_COMPILER",
    "enum",
    None,
    "CUDA C compiler: nvrtc or nvcc (default: first available)",
    choices=("nvrtc", "nvcc"),
)
CUDA_HOME = _declare("CUDA_HOME", "path", None, "CUDA toolkit folder (nvcc, libnvrtc)")
CUDA_PATH = _declare("CUDA_PATH", "path", None, "CUDA toolkit folder when CUDA_HOME is unset")
CXX = _declare("CXX", "str", "g++", "C++ compiler of the CUDA emulation")


def _raw(var: Variable) -> str | None:
    value = os.environ.get(var.name)
    return None if value is None else value.strip()


def _invalid(var: Variable, raw: str, want: str) -> ConfigError:
    return ConfigError(f"{var.name}={raw!r} is invalid: {want}")


def get_bool(var: Variable) -> bool:
    raw = _raw(var)
    if raw is None:
        return bool(var.default)
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise _invalid(var, raw, f"use one of {TRUE} or {FALSE[:-1]} (or leave it empty)")


def get_int(var: Variable) -> int | None:
    """The integer, or the default when unset or blank."""
    raw = _raw(var)
    if not raw:
        return var.default  # type: ignore[return-value]
    try:
        n = int(raw)
    except ValueError:
        n = None
    if n is None or not var.low <= n <= var.high:
        raise _invalid(var, raw, f"must be an integer from {var.low} to {var.high}")
    return n


def get_path(var: Variable) -> str | None:
    """The path, ``~`` expanded as a shell would (a quoted "~/x" is not expanded by the
    shell); the default (expanded) when unset; None (off) when blank or off/0/none."""
    raw = _raw(var)
    if raw is None:
        return None if var.default is None else os.path.expanduser(str(var.default))
    if raw.lower() in OFF:
        return None
    return os.path.expanduser(raw)


def get_enum(var: Variable) -> str | None:
    raw = _raw(var)
    if not raw:
        return var.default  # type: ignore[return-value]
    if raw.lower() not in var.choices:
        raise _invalid(var, raw, f"choose one of {var.choices}")
    return raw.lower()


def get_str(var: Variable) -> str | None:
    raw = _raw(var)
    return raw if raw else var.default  # type: ignore[return-value]


def setting(var: Variable) -> str:
    """``NAME='value'`` as set now, for error messages."""
    return f"{var.name}={os.environ.get(var.name)!r}"


def readme_table() -> str:
    """The Markdown table README.md's "Environment variables" section holds."""
    rows = ["| Variable | Kind | Default | What it does |", "|---|---|---|---|"]
    for v in VARIABLES.values():
        kind = "/".join(v.choices) if v.kind == "enum" else v.kind
        default = "unset" if v.default is None else str(v.default)
        rows.append(f"| `{v.name}` | {kind} | {default} | {v.doc} |")
    return "\n".join(rows)
