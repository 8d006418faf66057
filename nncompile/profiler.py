"""Per-kernel timing of a compiled function: where does a step's time go?

The program is compiled with per-kernel entries (the backend's ``kernel_entries`` /
``call_timed``: LLVM, CUDA; numpy has none) and run kernel by kernel,
in program order, for a number of steps; each kernel's median time is reported next to
the ops it was fused from. Kernel-by-kernel runs add a call per kernel (about a
microsecond), so the total is a little above a normal call's time.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import pytree
from .backend import get_backend, is_device_array
from .compiler import CompiledFunction, lower_graph_for, precision_for
from .ir.errors import ConfigError
from .ir.precision import matmul_precision
from .roofline import group_work
from .tracing import is_array_leaf, trace


@dataclass(frozen=True)
class KernelTime:
    name: str
    ops: str  # the source ops the kernel was fused from
    median_ms: float
    flops: float = 0.0  # estimated from the fusion group (see roofline.py)
    bytes: float = 0.0

    def rates(self) -> tuple[float, float]:
        """(GFLOP/s, GB/s) achieved."""
        seconds = max(self.median_ms, 1e-9) / 1e3
        return self.flops / seconds / 1e9, self.bytes / seconds / 1e9


@dataclass(frozen=True)
class Profile:
    kernels: list[KernelTime]  # in program order
    steps: int
    threads: int
    backend: str = "llvm"
    note: str = ""  # what the times measure when not wall-clock on the target (emulation)

    @property
    def total_ms(self) -> float:
        return sum(k.median_ms for k in self.kernels)

    def table(self, top: int | None = None, peaks: Any = None, width: int = 60) -> str:
        """The kernels, slowest first, with their share of the total; with ``peaks``
        (roofline.Peaks) also the achieved GFLOP/s and GB/s and their share of the peak
        (the bound that is closer is the kernel's limit)."""
        rows = sorted(self.kernels, key=lambda k: -k.median_ms)[:top]
        total = self.total_ms or 1.0
        if peaks is not None and self.backend != "llvm":
            # the peaks are measured on this CPU: against another device they mean nothing
            raise ConfigError(f"roofline peaks are CPU peaks; backend {self.backend!r} has none")
        lines = [f"[{self.note}]"] if self.note else []
        if peaks is None:
            lines.append(f"{'ms':>8} {'share':>6}  kernel  (ops)")
        else:
            lines += [
                f"{'ms':>8} {'share':>6} {'GFLOP/s':>8} {'%peak':>6} {'GB/s':>7} {'%peak':>6}  "
                f"kernel  (ops)   [peaks: {peaks.gflops:.0f} GFLOP/s, "
                f"{peaks.gbytes_per_s:.1f} GB/s]"
            ]
        for k in rows:
            share = 100 * k.median_ms / total
            ops = k.ops if len(k.ops) <= width else k.ops[: width - 3] + "..."
            if peaks is None:
                lines.append(f"{k.median_ms:8.3f} {share:5.1f}%  {k.name}  ({ops})")
                continue
            gf, gb = k.rates()
            lines.append(
                f"{k.median_ms:8.3f} {share:5.1f}% {gf:8.1f} {100 * gf / peaks.gflops:5.1f}% "
                f"{gb:7.1f} {100 * gb / peaks.gbytes_per_s:5.1f}%  {k.name}  ({ops})"
            )
        lines.append(
            f"{self.total_ms:8.3f} 100.0%  total of {len(self.kernels)} kernels, "
            f"median of {self.steps} steps, "
            + (f"{self.threads} thread(s)" if self.backend == "llvm" else self.backend)
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def profile(
    fn: Callable[..., Any],
    *args: Any,
    steps: int = 20,
    threads: int | None = None,
    backend: str = "llvm",
) -> Profile:
    """Compile ``fn`` for ``args`` on ``backend`` and time each kernel over ``steps`` runs
    (its ``call_timed``; on the CUDA emulator the times are CPU emulation times).
    ``fn`` may be a plain function or one made by ``nc.compile`` / ``nc.jit`` (its function
    is profiled, at its optimization level and thread count). Donation is off: the
    arguments are not modified."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    target = get_backend(backend)
    if not target.per_kernel:
        raise NotImplementedError(
            f"nc.profile needs per-kernel timed entries (call_timed), which backend "
            f"{backend!r} lacks"
        )
    level, precision = 2, precision_for(backend, None)
    if isinstance(fn, CompiledFunction):  # tracing the compiled wrapper would not work
        precision = fn.matmul_precision
        fn, level, threads = fn.fn, fn.level, fn.threads if threads is None else threads
    graph = trace(fn, *args)
    with matmul_precision(precision):
        lowered = lower_graph_for(graph, backend, level, threads=threads, kernel_entries=True)
    executable = lowered.compile()
    entries = executable.kernel_entries()
    leaves, _, _ = pytree.flatten(args, is_array_leaf)
    arrays = [a if is_device_array(a) else np.asarray(a) for a in leaves]
    executable(arrays)  # warm up: page in the arena and the outputs
    runs = [executable.call_timed(arrays, entries)[1] for _ in range(steps)]
    groups = {g.name: g for g in lowered.graph.fusion_groups or []}
    kernels = []
    for i, k in enumerate(lowered.program.kernels):
        flops, moved = group_work(groups[k.name]) if k.name in groups else (0.0, 0.0)
        median = 1e3 * statistics.median(r[i] for r in runs)
        kernels.append(KernelTime(k.name, k.comment, median, flops, moved))
    return Profile(kernels, steps, lowered.threads, backend, target.timing_note())
