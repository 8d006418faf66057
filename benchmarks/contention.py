"""Training steps when several processes share the cores: each one's median step time
alone and with 2 and 4 copies of itself running at once, for nncompile and PyTorch.

    python benchmarks/contention.py [--seconds 4] [--workloads mlp,cnn] [--procs 2,4]
                                    [--no-torch] [--json]

Every process builds its step, warms up, waits for a common start time and then runs
steps for ``--seconds``; the table gives each configuration's slowest process median and
its ratio to the solo median (issue #13's targets: <= 3x with 2 processes, <= 6x with 4).
Default settings throughout: no thread counts are set for either framework.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = ("mlp", "cnn")
RESTART = 200


def _leaves(tree) -> list:
    if isinstance(tree, dict):
        return [a for v in tree.values() for a in _leaves(v)]
    if isinstance(tree, (list, tuple)):
        return [a for v in tree for a in _leaves(v)]
    return [tree]


def _build(framework: str, workload: str):
    if framework == "nncompile":
        import nncompile as nc
        from nncompile.workloads import builtin

        w = builtin(workload, batch=64)
        f = nc.compile(w.fn, donate_argnums=w.donate)
        # The same batch again and again drives the weights' updates into subnormal floats
        # (measured: the MLP step goes 0.6 -> 1.7 ms after ~600 steps, old and new code
        # alike): every RESTART steps the donated state is set back to where it started.
        state = [a for k in w.donate for a in _leaves(w.args[k])]
        start = [a.copy() for a in state]
        count = [0]

        def step() -> None:
            count[0] += 1
            if count[0] % RESTART == 0:
                for a, b in zip(state, start, strict=True):
                    a[...] = b
            f(*w.args)

        return step
    from nncompile.workloads import builtin

    return builtin(workload, batch=64).torch(False, "cpu")


def worker(framework: str, workload: str, start_at: float, seconds: float) -> None:
    step = _build(framework, workload)
    for _ in range(5):
        step()
    time.sleep(max(0.0, start_at - time.time()))
    samples = []
    end = time.time() + seconds
    while time.time() < end:
        t = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t)
    print(json.dumps({"median_ms": 1e3 * statistics.median(samples), "steps": len(samples)}))


def run_together(framework: str, workload: str, procs: int, seconds: float) -> list[dict]:
    """Each process's median step (ms) and step count when ``procs`` of them run at once."""
    start_at = time.time() + 12.0 + 3.0 * procs  # time to import, build and compile
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, workload]
    cmd += [str(start_at), str(seconds)]
    children = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    results = []
    for child in children:
        out, _ = child.communicate(timeout=600)
        if child.returncode:
            raise RuntimeError(f"{framework} {workload} worker failed ({child.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        framework, workload, start_at, seconds = sys.argv[2:6]
        worker(framework, workload, float(start_at), float(seconds))
        return
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=float, default=4.0, help="timed seconds per process")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="mlp,cnn")
    p.add_argument("--procs", default="2,4", help="concurrent process counts to try")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    a = p.parse_args()
    frameworks = ["nncompile"]
    if not a.no_torch:
        try:
            import torch  # noqa: F401

            frameworks.append("torch")
        except ImportError:
            print("(torch not installed: nncompile only)")
    counts = [int(n) for n in a.procs.split(",")]
    results = []
    print(f"{os.cpu_count()} CPUs; median step per process (the slowest process's), and")
    print("throughput: all processes' steps per second together, relative to one alone")
    head = f"{'framework':<10} {'workload':<8} {'procs':>5} {'median ms':>10} {'x solo':>7}"
    print(f"{head} {'steps/s':>8} {'x solo':>7}")
    for workload in a.workloads.split(","):
        for framework in frameworks:
            solo = None
            for n in [1, *counts]:
                runs = run_together(framework, workload, n, a.seconds)
                worst = max(r["median_ms"] for r in runs)
                rate = sum(r["steps"] for r in runs) / a.seconds
                if solo is None:
                    solo = (worst, rate)
                line = f"{framework:<10} {workload:<8} {n:>5} {worst:>10.3f}"
                print(f"{line} {worst / solo[0]:>7.2f} {rate:>8.0f} {rate / solo[1]:>7.2f}")
                results.append(
                    {
                        "framework": framework,
                        "workload": workload,
                        "procs": n,
                        "median_ms": [r["median_ms"] for r in runs],
                        "ratio_to_solo": worst / solo[0],
                        "steps_per_s": rate,
                    }
                )
    if a.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
