"""``nncompile bench``: one workload run by every available mode, timed the same way.

Modes: eager (the same Python function op by op on NumPy: the semantic reference),
llvm (compiled), cuda (compiled; reported unavailable without a GPU), and with
``--vs torch`` PyTorch eager and torch.compile. Compiled modes run first, then eager, then
PyTorch: thread pools that keep spinning after their work (NumPy's BLAS, two OpenMP
runtimes) slow down whatever runs next.

Per mode: median and interquartile range of the step time, throughput, speedup over
eager, compile time (first call minus a steady-state call; cold, without the on-disk object
cache, unless --cached) and peak memory (NumPy
allocations during one call, measured with tracemalloc, plus the compiled program's arena;
not measured for PyTorch).
"""

from __future__ import annotations

import json
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .envvars import override
from .ir.errors import ConfigError, NCError
from .workloads import Workload

NNCOMPILE_MODES = ("eager", "llvm", "cuda")
# Run order: compiled modes first, then eager (NumPy's BLAS threads keep spinning after
# its matmuls and would slow the next compiled run), then PyTorch.
RUN_ORDER = ("llvm", "cuda", "eager", "torch", "torch.compile")
TORCH_MODES = ("torch", "torch.compile")


@dataclass
class ModeResult:
    workload: str
    mode: str
    status: str = "ok"  # or "unavailable: <why>"
    median_ms: float | None = None
    p25_ms: float | None = None
    p75_ms: float | None = None
    steps: int = 0
    throughput: float | None = None
    unit: str = ""
    speedup_vs_eager: float | None = None
    compile_s: float | None = None
    peak_mb: float | None = None


def _time_steps(step: Callable[[], Any], steps: int, budget_s: float) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    for _ in range(2):  # warm-up (caches, page faults, thread pools)
        step()
    while len(samples) < steps and (len(samples) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return samples


def _peak_mb(step: Callable[[], Any], resident_bytes: int = 0) -> float:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak + resident_bytes) / 2**20


def _nncompile_step(w: Workload, mode: str, cold: bool) -> tuple[Callable[[], Any], float, int]:
    """(step, first-call seconds, resident bytes). ``cold``: compile without the on-disk
    object cache, so the compile time is a real one."""
    from .compiler import compile

    if mode == "eager":
        start = time.perf_counter()
        w.fn(*w.args)
        return (lambda: w.fn(*w.args)), time.perf_counter() - start, 0
    args = _on_device(w) if mode == "cuda" else w.args
    if mode == "llvm":  # the shared runtime (tuned GEMM) is built once per process, not
        from .backends.llvm.runtime import runtime  # part of this program's compile time

        runtime()
    compiled = compile(w.fn, mode, donate_argnums=w.donate, device_outputs=mode == "cuda")
    with override("NNCOMPILE_CACHE_DIR", "off" if cold else None):
        start = time.perf_counter()
        compiled(*args)
        first = time.perf_counter() - start
    lowered, _, _ = compiled.compiled_for(*args)
    arena = lowered.program.arena_bytes if lowered is not None else 0
    return (lambda: compiled(*args)), first, arena


def _result(w: Workload, mode: str, samples: list[float]) -> ModeResult:
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    median = statistics.median(samples)
    return ModeResult(
        w.name,
        mode,
        median_ms=1e3 * median,
        p25_ms=1e3 * q[0],
        p75_ms=1e3 * q[2],
        steps=len(samples),
        throughput=w.throughput(median),
        unit=w.unit,
    )


def _synchronized(step: Callable[[], Any], device: str) -> Callable[[], Any]:
    """On a GPU a step returns before its kernels finish: wait for them, as ours do."""
    if device == "cpu":
        return step
    import torch

    def run() -> None:
        step()
        torch.cuda.synchronize()

    return run


def _on_device(w: Workload) -> tuple:
    """The workload's arguments with the donated ones (parameters, optimizer state) moved
    to the GPU, where a training loop keeps them; the batch still crosses every step."""
    from . import pytree
    from .backends.cuda import toolchain
    from .backends.cuda.emulator import emulating
    from .backends.cuda.executable import DeviceArray
    from .ir.errors import ExecutionError
    from .tracing import is_array_leaf

    missing = toolchain.missing_for_running()
    if missing and not emulating():  # emulated: runs (for testing), and its rows say so
        raise ExecutionError(f"backend='cuda' cannot run here: {missing}")
    args = list(w.args)
    for i in w.donate:
        leaves, statics, tree = pytree.flatten(args[i], is_array_leaf)
        moved = [DeviceArray.from_numpy(np.asarray(leaf)) for leaf in leaves]
        args[i] = pytree.unflatten(tree, moved, statics)
    return tuple(args)


def run_mode(
    w: Workload,
    mode: str,
    steps: int,
    budget_s: float,
    cold: bool = True,
    torch_device: str = "cpu",
) -> ModeResult:
    try:
        if mode in NNCOMPILE_MODES:
            step, first, resident = _nncompile_step(w, mode, cold)
        else:
            if w.torch is None:
                return ModeResult(w.name, mode, "unavailable: no PyTorch twin for this workload")
            start = time.perf_counter()
            try:
                step = _synchronized(w.torch(mode == "torch.compile", torch_device), torch_device)
                step()
            except (RuntimeError, AssertionError) as e:  # e.g. torch without CUDA
                raise NotImplementedError(f"PyTorch on {torch_device}: {e}") from None
            first, resident = time.perf_counter() - start, 0
    except (NCError, NotImplementedError, ImportError) as e:
        return ModeResult(w.name, mode, f"unavailable: {str(e).splitlines()[0]}")
    samples = _time_steps(step, steps, budget_s)
    result = _result(w, mode, samples)
    if mode != "eager":
        result.compile_s = max(first - statistics.median(samples), 0.0)
    if mode in NNCOMPILE_MODES:
        result.peak_mb = _peak_mb(step, resident)
    return result


def bench(
    w: Workload,
    modes: list[str],
    steps: int = 20,
    budget_s: float = 10.0,
    cold: bool = True,
    torch_device: str = "cpu",
) -> list[ModeResult]:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    if not budget_s > 0:
        raise ConfigError(f"the time budget must be positive, got {budget_s!r}")
    ran = {
        mode: run_mode(w, mode, steps, budget_s, cold, torch_device)
        for mode in RUN_ORDER
        if mode in modes
    }
    results = [ran[m] for m in NNCOMPILE_MODES + TORCH_MODES if m in ran]  # shown eager first
    eager = next((r for r in results if r.mode == "eager" and r.median_ms), None)
    for r in results:
        if eager and r.median_ms:
            r.speedup_vs_eager = eager.median_ms / r.median_ms
    return results


def _fmt(v: float | None, spec: str, missing: str = "-") -> str:
    return missing if v is None else format(v, spec)


def provenance() -> str:
    """Where the numbers come from: the date, the machine and the GEMM blocking in use."""
    import datetime

    from .backends.llvm.runtime import runtime_tuning

    tuning = runtime_tuning()
    p = tuning.params
    return (
        f"measured {datetime.datetime.now().isoformat(timespec='minutes')} on "
        f"{tuning.machine.describe()}; GEMM {p.mr}x{p.nr} KC {p.kc} MC {p.mc} NC {p.nc} "
        f"({tuning.source})"
    )


def table(w: Workload, results: list[ModeResult]) -> str:
    unit = w.unit
    lines = [
        f"{w.name}: {w.description}",
        f"  {'mode':<14}{'median ms':>11}{'IQR ms':>20}{unit:>14}{'vs eager':>10}"
        f"{'compile s':>11}{'peak MB':>9}{'steps':>7}",
    ]
    for r in results:
        if r.status != "ok":
            lines.append(f"  {r.mode:<14}{r.status}")
            continue
        iqr = f"{r.p25_ms:.3f}-{r.p75_ms:.3f}"
        lines.append(
            f"  {r.mode:<14}{r.median_ms:>11.3f}{iqr:>20}{_fmt(r.throughput, ',.1f'):>14}"
            f"{_fmt(r.speedup_vs_eager, '.1f'):>9}x{_fmt(r.compile_s, '.2f'):>11}"
            f"{_fmt(r.peak_mb, '.1f'):>9}{r.steps:>7}"
        )
    return "\n".join(lines)


def to_json(results: list[ModeResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=1)
