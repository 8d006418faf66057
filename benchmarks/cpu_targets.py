"""The CPU targets of the LLVM backend, measured against PyTorch in the same process.

    python benchmarks/cpu_targets.py [--threads N] [--steps 20] [--json]

Reports medians over --steps runs (after warm-up) and ratios; PyTorch uses the same
thread count (torch.set_num_threads). Workloads:
  mlp64 / mlp256   MLP 784-256-128-10 Adam training step, batch 64 / 256
  cnn64            the seed CNN Adam training step, batch 64
  chain            y = tanh(0.5x + 1) * sigmoid(x) + x*x over 4M float32
  gemm1024         C = A @ B, 1024^3 float32 (vs NumPy/OpenBLAS, timed in a child process
                   without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which pick slower kernels)
  compile          cold compile time of the seed CNN training step (no disk cache)
Eager nncompile (NumPy) is timed too, for the compiled-vs-own-eager ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import graph_sizes as models  # noqa: E402

import nncompile as nc  # noqa: E402
from nncompile import optim  # noqa: E402
from nncompile.workloads import torch_cnn_model  # noqa: E402

# Warm-up: at least ``warmup`` calls and this long, the same for every side. On this kind
# of machine a process's first ~0.1 s of calls over large arrays run up to 3x slower (the
# 4M-element chain: 6.5 ms for its first ~8 calls, 2.0 after ~30; one-thread calls too;
# the process's huge pages do not change meanwhile; the cause was not found).
WARMUP_SECONDS = 0.3


def torch_on(threads: int):
    """PyTorch set to ``threads`` threads, or None where it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def warm_up(fn, warmup: int = 3) -> None:
    """At least ``warmup`` calls, and WARMUP_SECONDS of them."""
    start = time.perf_counter()
    calls = 0
    while calls < warmup or time.perf_counter() - start < WARMUP_SECONDS:
        fn()
        calls += 1


def timed(fn, steps: int, warmup: int = 3) -> float:
    warm_up(fn, warmup)
    samples = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def timed_alternating(fns: list, steps: int, block: int = 5) -> list[float]:
    """Median seconds per call of each of ``fns``, timed in alternating blocks of ``block``
    calls (``steps`` calls each in all, after the same warm-up as ``timed``): a slow spell
    of the machine, which lasts seconds to minutes on these VMs, slows every side alike,
    so their ratio holds (one side timed after the other gave a bf16/float32 CNN step
    ratio of 0.93 in one run and 1.05 in the next)."""
    for fn in fns:
        warm_up(fn)
    samples: list[list[float]] = [[] for _ in fns]
    while len(samples[0]) < steps:
        for fn, times in zip(fns, samples, strict=True):
            for _ in range(min(block, steps - len(times))):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
    return [statistics.median(times) for times in samples]


def numpy_gemm_seconds(threads: int, steps: int) -> float:
    """NumPy's 1024^3 matmul, timed like ours but in a child process whose environment has
    no OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some of these machines, they pick an
    older, slower kernel: see TOOLCHAIN.md) and OpenBLAS on ``threads`` threads."""
    import subprocess

    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    code = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); from cpu_targets import timed; "
        "a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32); "
        "b = np.random.default_rng(1).standard_normal((1024, 1024)).astype(np.float32); "
        "print(timed(lambda: a @ b, int(sys.argv[2])))"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        [sys.executable, "-c", code, here, str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def nncompile_step(build, batch: int, threads: int):
    params, loss, x = build()
    x = np.resize(x, (batch,) + x.shape[1:]).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 10, batch)
    opt = optim.Adam(1e-3)
    state = opt.init(params)
    step = nc.train_step(loss, opt)
    compiled = nc.compile(step, donate_argnums=(0, 1), threads=threads)
    lr = np.float32(1e-3)
    return (lambda: compiled(params, state, x, y, lr)), (lambda: step(params, state, x, y, lr))


def torch_mlp(batch: int):
    import torch

    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
    )
    return torch_step(model, torch.rand(batch, 784), torch.randint(0, 10, (batch,)))


def torch_cnn(batch: int, autocast: bool = False):
    import torch

    model = torch_cnn_model()
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    return torch_step(model, x, y, autocast=autocast)


def torch_step(model, x, y, optimizer: str = "adam", autocast: bool = False):
    """A PyTorch eager training step; ``autocast`` runs the forward pass under
    torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's mixed precision."""
    import contextlib

    import torch

    params = model.parameters()
    opt = (
        torch.optim.Adam(params, lr=1e-3) if optimizer == "adam" else torch.optim.SGD(params, 1e-2)
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    scope = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        if autocast
        else contextlib.nullcontext
    )

    def step():
        opt.zero_grad(set_to_none=True)
        with scope():
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return step


def chain(x):
    return nc.tanh(0.5 * x + 1) * nc.sigmoid(x) + x * x


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows: list[dict] = []
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    def add(name, ours, other, other_name, eager=None):
        row = {
            "workload": name,
            "nncompile_ms": ours * 1e3,
            f"{other_name}_ms": other * 1e3 if other else None,
            f"speedup_vs_{other_name}": other / ours if other else None,
        }
        if eager is not None:
            row["nncompile_eager_ms"] = eager * 1e3
            row["speedup_vs_own_eager"] = eager / ours
        rows.append(row)

    # All nncompile timings first, PyTorch's after: two OpenMP runtimes spinning in one
    # process slow each other down, so neither runs while the other's threads are hot.
    ours: dict[str, float] = {}
    eager: dict[str, float] = {}
    workloads = (
        ("mlp64", models.mlp, 64, torch_mlp),
        ("mlp256", models.mlp, 256, torch_mlp),
        ("cnn64", models.cnn, 64, torch_cnn),
    )
    eager_runs = {}
    for name, build, batch, _ in workloads:
        run, eager_runs[name] = nncompile_step(build, batch, args.threads)
        ours[name] = timed(run, args.steps)
    x = np.random.default_rng(0).standard_normal(4 * 1024 * 1024).astype(np.float32)
    compiled_chain = nc.compile(chain, threads=args.threads)
    ours["chain"] = timed(lambda: compiled_chain(x), args.steps)
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((1024, 1024)).astype(np.float32)
    mm = nc.compile(lambda a, b: a @ b, threads=args.threads)
    ours["gemm1024"] = timed(lambda: mm(a, b), args.steps)
    # NumPy last among ours: OpenBLAS's threads keep spinning after its matmuls and would
    # slow a compiled step timed next (its thread chooser would even move it to one thread)
    for name, eager_run in eager_runs.items():
        eager[name] = timed(eager_run, max(3, args.steps // 5), warmup=1)
    numpy_gemm = numpy_gemm_seconds(args.threads, args.steps)

    for name, _, batch, torch_model in workloads:
        theirs = timed(torch_model(batch), args.steps) if torch else None
        add(name, ours[name], theirs, "torch", eager[name])
    theirs = None
    if torch is not None:
        tx = torch.from_numpy(x)
        tc = torch.compile(lambda t: torch.tanh(0.5 * t + 1) * torch.sigmoid(t) + t * t)
        theirs = timed(lambda: tc(tx), args.steps)
    add("chain", ours["chain"], theirs, "torch_compile")
    add("gemm1024", ours["gemm1024"], numpy_gemm, "numpy")
    rows[-1]["gflops"] = 2 * 1024**3 / rows[-1]["nncompile_ms"] / 1e6

    os.environ["NNCOMPILE_CACHE_DIR"] = "off"
    params, loss, xx = models.cnn()
    y = np.random.default_rng(1).integers(0, 10, 64)
    opt = optim.Adam(1e-3)
    start = time.perf_counter()
    lowered = nc.lower(nc.train_step(loss, opt), params, opt.init(params), xx, y, np.float32(1e-3))
    lowered.compile()
    rows.append(
        {
            "workload": "compile_cnn_step",
            "seconds": time.perf_counter() - start,
            "phases": {k: round(v, 3) for k, v in lowered.timings.items()},
        }
    )

    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for r in rows:
        print(
            "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())
        )


if __name__ == "__main__":
    main()
