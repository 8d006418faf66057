"""What a backend is, and the registry compiler.py looks them up in.

compiler.py names no backend: it asks the registry for one by name and talks to it
through ``Backend`` (emit source for a lowered Program, build an ``Executable`` from it).
Backends are registered by module path and imported on first use, so ``import
nncompile`` loads neither llvmlite nor the CUDA modules, and a backend whose module
cannot be imported says which module is missing.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import config
from .ir.errors import CompileError, ConfigError

MAX_THREADS = 1024  # the largest thread count a CPU backend accepts (NNCOMPILE_THREADS too)


def check_threads(n: object, what: str = "threads") -> int:
    """``n`` as a thread count, or a ConfigError naming ``what``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_THREADS:
        raise ConfigError(f"{what} must be an integer from 1 to {MAX_THREADS}, got {n!r}")
    return n


def available_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_threads() -> int:
    """NNCOMPILE_THREADS, else the cores this process may run on."""
    n = config.get_int(config.THREADS)
    return available_cores() if n is None else n


def is_device_array(a: object) -> bool:
    """Whether ``a`` is an array living on an accelerator (the CUDA backend's DeviceArray):
    it has a shape and dtype, but its data must be copied to the host to be read."""
    return hasattr(a, "device_pointer")


@dataclass(frozen=True)
class EmitOptions:
    threads: int | None = None  # CPU backends: worker threads (None: the default)
    kernel_entries: bool = False  # also emit one entry point per kernel (check, profile)


@dataclass
class Emitted:
    source: str  # the generated code (LLVM IR, CUDA C)
    threads: int = 1  # the thread count the source was built for
    artifacts: Any = None  # what build needs besides the source (CUDA: the launches)


class Executable(Protocol):
    """Native code for one Program, called on its flat input arrays."""

    def __call__(self, arrays: Sequence[object]) -> list[Any]: ...

    def kernel_entries(self) -> list[Any]:
        """One handle per kernel of the Program, for call_checked / call_timed."""
        ...

    def call_checked(
        self,
        arrays: Sequence[object],
        entries: list[Any],
        on_kernel: Callable[[int, Callable[[str], Any]], None],
    ) -> list[Any]:
        """A call that runs kernel by kernel and calls ``on_kernel(i, read)`` after each;
        ``read(buffer name)`` is that buffer's contents (a host array) at that moment."""
        ...

    def call_timed(
        self, arrays: Sequence[object], entries: list[Any]
    ) -> tuple[list[Any], list[float]]: ...


class Backend(Protocol):
    name: str
    device: str | None  # what lowering targets ("cpu" | "gpu"); None: the graph interpreter
    source_file: str  # the NNCOMPILE_DUMP file name of the generated source
    per_kernel: bool  # whether its executables have kernel entries (check mode, profiling)
    device_outputs: bool  # whether results can stay on the device (device_outputs=True)

    def emit(self, program: Any, options: EmitOptions) -> Emitted: ...

    def build(self, lowered: Any, device_outputs: bool = False) -> Executable:
        """Native code for ``lowered``; ``device_outputs``: calls leave results on the device."""
        ...

    def dump_files(self, lowered: Any) -> dict[str, str]:
        """The backend's artifacts for ``lowered`` by file name (``nncompile dump``);
        may build it (LLVM: its optimized IR and assembly)."""
        ...

    def timing_note(self) -> str:
        """What per-kernel times measure here ('' when they are plain wall-clock times on
        the target), for nc.profile's header."""
        ...


_REGISTRY: dict[str, str | Backend] = {}


def register(name: str, backend: str | Backend) -> None:
    """Register ``backend``, or the module (relative to nncompile) whose ``BACKEND`` it is."""
    _REGISTRY[name] = backend


def backend_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The backend registered as ``name`` (imported on first use)."""
    found = _REGISTRY.get(name) if isinstance(name, str) else None
    if found is None:
        raise CompileError(f"unknown backend {name!r}; choose one of {backend_names()}")
    if isinstance(found, str):
        try:
            module = importlib.import_module(found, __package__)
        except ModuleNotFoundError as e:
            raise CompileError(
                f"backend {name!r} cannot be loaded: the module {e.name!r} is missing ({e})"
            ) from e
        found = _REGISTRY[name] = module.BACKEND
    return found


register("numpy", ".backends.numpy.backend")
register("llvm", ".backends.llvm.backend")
register("cuda", ".backends.cuda.backend")
