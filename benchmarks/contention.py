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


def _build(framework: str, workload: str):
    if framework == "nncompile":
        import nncompile as nc
        from nncompile.workloads import builtin

        w = builtin(workload, batch=64)
        f = nc.compile(w.fn, donate_argnums=w.donate)
        return lambda: f(*w.args)
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


def run_together(framework: str, workload: str, procs: int, seconds: float) -> list[float]:
    """Each process's median step (ms) when ``procs`` of them run at once."""
    start_at = time.time() + 12.0 + 3.0 * procs  # time to import, build and compile
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, workload]
    cmd += [str(start_at), str(seconds)]
    children = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    medians = []
    for child in children:
        out, _ = child.communicate(timeout=600)
        if child.returncode:
            raise RuntimeError(f"{framework} {workload} worker failed ({child.returncode})")
        medians.append(json.loads(out.strip().splitlines()[-1])["median_ms"])
    return medians


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        framework, workload, start_at, seconds = sys.argv[2:6]
        worker(framework, workload, float(start_at), float(seconds))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    print(f"{os.cpu_count()} CPUs; median step per process, slowest of the processes")
    print(f"{'framework':<10} {'workload':<6} {'procs':>5} {'median ms':>10} {'x solo':>7}")
    for workload in a.workloads.split(","):
        for framework in frameworks:
            solo = run_together(framework, workload, 1, a.seconds)[0]
            print(f"{framework:<10} {workload:<6} {1:>5} {solo:>10.3f} {1.0:>7.2f}")
            results.append(
                {"framework": framework, "workload": workload, "procs": 1, "median_ms": [solo]}
            )
            for n in counts:
                medians = run_together(framework, workload, n, a.seconds)
                worst = max(medians)
                print(f"{framework:<10} {workload:<6} {n:>5} {worst:>10.3f} {worst / solo:>7.2f}")
                results.append(
                    {
                        "framework": framework,
                        "workload": workload,
                        "procs": n,
                        "median_ms": medians,
                        "ratio_to_solo": worst / solo,
                    }
                )
    if a.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
