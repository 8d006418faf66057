"""Data-parallel training on this machine: the seed CNN's epoch time with 1 process x T
threads against N processes x (T/N) threads under mpirun, the share of each step spent in
the gradient allreduce, and the allreduce's latency and bandwidth (the inputs of the
scaling model in docs/distributed.md).

    python benchmarks/distributed.py [--data DIR] [--ranks 2] [--batch 64] [--epochs 2] [--json]

--batch is the global batch: the one process takes it whole, each rank takes batch/ranks.
The script launches itself (plain, then under mpirun) and prints one table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np


def _model_and_data(args):
    from nncompile import data, optim
    from nncompile.demo import seed_cnn

    _, (x, y), _ = data.load_images(args.data, args.limit)
    model = seed_cnn(x.shape[1:], seed=0)
    return model, optim.Adam(1e-3), x, y


def _epochs(model, x, y, batch: int, epochs: int) -> list[float]:
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, seed=0)  # compiles
    trainer = model.trainer
    if hasattr(trainer, "allreduce_seconds"):
        trainer.allreduce_seconds = trainer.grad_seconds = 0.0
    history = model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, seed=1)
    return history.epoch_seconds


def _waits(model, x, y, batch: int) -> dict[str, float]:
    """One more epoch with a barrier before each allreduce: waiting apart from reducing."""
    trainer = model.trainer
    trainer.separate_waits = True
    trainer.allreduce_seconds = trainer.wait_seconds = 0.0
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, seed=2)
    trainer.separate_waits = False
    steps = math.ceil(len(x) / (batch * trainer.world.size))
    return {
        "wait_per_step_ms": trainer.wait_seconds / steps * 1e3,
        "reduce_per_step_ms": trainer.allreduce_seconds / steps * 1e3,
    }


def role_single(args) -> dict:
    model, opt, x, y = _model_and_data(args)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    seconds = _epochs(model, x, y, args.batch, args.epochs)
    return {"epoch_s": statistics.median(seconds), "rows": len(x)}


def _allreduce_times(sizes: list[int], repeats: int = 20) -> dict[int, float]:
    from nncompile.distributed import barrier
    from nncompile.distributed.collectives import reduce_buffers

    times = {}
    for nbytes in sizes:
        buf = np.ones(max(1, nbytes // 4), np.float32)
        samples = []
        for _ in range(repeats):
            barrier()
            start = time.perf_counter()
            reduce_buffers([buf], "sum")
            samples.append(time.perf_counter() - start)
        times[nbytes] = statistics.median(samples)
    return times


def role_rank(args) -> dict | None:
    import nncompile.distributed as dist

    dist.init()
    model, opt, x, y = _model_and_data(args)
    model.compile(
        optimizer=opt,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        distributed=True,
    )
    per_rank = args.batch // dist.size()
    seconds = _epochs(model, x, y, per_rank, args.epochs)
    trainer = model.trainer
    steps = math.ceil(len(x) / (per_rank * dist.size())) * args.epochs
    allreduce_s, grad_s = trainer.allreduce_seconds, trainer.grad_seconds
    waits = _waits(model, x, y, per_rank)
    grad_bytes = sum(a.nbytes for a in model.get_weights())
    sizes = [8, 1 << 16, 1 << 20, grad_bytes, 4 << 20, 16 << 20, 64 << 20]
    times = _allreduce_times(sorted(set(sizes)))
    if dist.rank() != 0:
        return None
    return {
        "ranks": dist.size(),
        "epoch_s": statistics.median(seconds),
        "allreduce_per_step_ms": allreduce_s / steps * 1e3,
        "grad_per_step_ms": grad_s / steps * 1e3,
        **waits,
        "step_ms": sum(seconds) / steps * 1e3,
        "grad_bytes": grad_bytes,
        "allreduce_s": {str(k): v for k, v in times.items()},
    }


def _run(command: list[str], env: dict) -> dict:
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def _latency_bandwidth(times: dict[str, float]) -> tuple[float, float]:
    """alpha: the time of the smallest message; beta: the best bandwidth of messages of
    1 MiB and more (the scaling model's inputs)."""
    by_size = {int(k): v for k, v in times.items()}
    alpha = by_size[min(by_size)]
    beta = max(n / t for n, t in by_size.items() if n >= 1 << 20)
    return alpha, beta


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="MNIST IDX folder (default: the offline 8x8 digits)")
    p.add_argument("--limit", type=int, help="first N training images")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads in all")
    p.add_argument("--batch", type=int, default=64, help="global batch")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--role", choices=("single", "rank"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "single":
        print(json.dumps(role_single(args)))
        return
    if args.role == "rank":
        result = role_rank(args)
        if result is not None:
            print(json.dumps(result))
        return
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        sys.exit("needs mpirun: pip install 'nncompile[mpi]'")
    forwarded = sys.argv[1:]
    me = [sys.executable, os.path.abspath(__file__), *forwarded]
    single = _run([*me, "--role", "single"], {"NNCOMPILE_THREADS": str(args.threads)})
    per_rank_threads = max(1, args.threads // args.ranks)
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    launch = [mpirun, *root, "--oversubscribe", "-n", str(args.ranks)]
    ranks = _run([*launch, *me, "--role", "rank"], {"NNCOMPILE_THREADS": str(per_rank_threads)})
    alpha, beta = _latency_bandwidth(ranks["allreduce_s"])
    report = {"single": single, "distributed": ranks, "alpha_s": alpha, "beta_Bps": beta}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    share = ranks["allreduce_per_step_ms"] / ranks["step_ms"]
    print(f"seed CNN, {single['rows']:,} rows, global batch {args.batch}, Adam")
    print(f"  1 process x {args.threads} threads:   epoch {single['epoch_s']:.3f} s")
    print(
        f"  {args.ranks} processes x {per_rank_threads} thread(s): epoch {ranks['epoch_s']:.3f} s "
        f"({single['epoch_s'] / ranks['epoch_s']:.2f}x the single process)"
    )
    print(
        f"  per step: {ranks['step_ms']:.3f} ms, gradient function {ranks['grad_per_step_ms']:.3f}"
        f" ms, allreduce of {ranks['grad_bytes']:,} bytes {ranks['allreduce_per_step_ms']:.3f} ms"
        f" ({share:.1%} of the step, waiting for the slower rank included)"
    )
    reduce_ms = ranks["reduce_per_step_ms"]
    print(
        f"  an epoch with a barrier before each allreduce: waiting for the slower rank "
        f"{ranks['wait_per_step_ms']:.3f} ms, the allreduce itself {reduce_ms:.3f} ms "
        f"({reduce_ms / ranks['step_ms']:.1%} of the step)"
    )
    print(f"allreduce on {args.ranks} ranks (median of 20):")
    for nbytes, t in ranks["allreduce_s"].items():
        print(f"  {int(nbytes):>11,} bytes  {t * 1e6:9.1f} us  {int(nbytes) / t / 1e9:6.2f} GB/s")
    print(f"  latency alpha {alpha * 1e6:.1f} us, bandwidth beta {beta / 1e9:.2f} GB/s")


if __name__ == "__main__":
    main()
