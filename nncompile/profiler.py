"""Per-kernel timing of a compiled function: where does a step's time go?

The program is compiled with one extra entry point per kernel and run kernel by kernel,
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
from .compiler import lower_graph_for
from .tracing import is_array_leaf, trace


@dataclass(frozen=True)
class KernelTime:
    name: str
    ops: str  # the source ops the kernel was fused from
    median_ms: float


@dataclass(frozen=True)
class Profile:
    kernels: list[KernelTime]  # in program order
    steps: int
    threads: int

    @property
    def total_ms(self) -> float:
        return sum(k.median_ms for k in self.kernels)

    def table(self, top: int | None = None) -> str:
        """The kernels, slowest first, with their share of the total."""
        rows = sorted(self.kernels, key=lambda k: -k.median_ms)[:top]
        total = self.total_ms or 1.0
        lines = [f"{'ms':>8} {'share':>6}  kernel  (ops)"]
        for k in rows:
            share = 100 * k.median_ms / total
            lines.append(f"{k.median_ms:8.3f} {share:5.1f}%  {k.name}  ({k.ops})")
        lines.append(
            f"{self.total_ms:8.3f} 100.0%  total of {len(self.kernels)} kernels, "
            f"median of {self.steps} steps, {self.threads} thread(s)"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def profile(
    fn: Callable[..., Any], *args: Any, steps: int = 20, threads: int | None = None
) -> Profile:
    """Compile ``fn`` for ``args`` (LLVM backend) and time each kernel over ``steps`` runs.
    Donation is off: the arguments are not modified."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    lowered = lower_graph_for(trace(fn, *args), "llvm", threads=threads, kernel_entries=True)
    executable = lowered.compile()
    entries = executable.kernel_entries()
    leaves, _, _ = pytree.flatten(args, is_array_leaf)
    arrays = [np.asarray(a) for a in leaves]
    executable(arrays)  # warm up: page in the arena and the outputs
    runs = [executable.call_timed(arrays, entries)[1] for _ in range(steps)]
    kernels = [
        KernelTime(k.name, k.comment, 1e3 * statistics.median(r[i] for r in runs))
        for i, k in enumerate(lowered.program.kernels)
    ]
    return Profile(kernels, steps, lowered.threads)
