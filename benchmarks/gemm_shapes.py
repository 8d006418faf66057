"""sgemm from generated code vs NumPy (OpenBLAS), on 1 and 2 threads, for 1024^3 and the
training shapes (and their transposed variants), and thin batch-1 inference shapes.

    python benchmarks/gemm_shapes.py [--steps 20] [--json]

Each library is timed in its own process (OpenBLAS's and libgomp's spinning threads
slow each other down in one process), with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed
from NumPy's environment (they select slower kernels; see TOOLCHAIN.md). Times are
medians of the native call (nncompile: the compiled executable, no Python tracing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

SHAPES = [  # (m, k, n, a transposed, b transposed)
    (1024, 1024, 1024, False, False),
    (64, 784, 256, False, False),
    (784, 64, 256, True, False),
    (64, 256, 784, False, True),
    (256, 784, 256, False, False),
    (64, 5408, 64, False, False),
    (5408, 64, 64, True, False),
    (64, 64, 5408, False, True),
    # batch-1 inference: one row against a weight stored (k, n) or, as a Linear layer or
    # ONNX Gemm(transB=1) holds it, (n, k)
    (1, 5408, 64, False, False),
    (1, 5408, 64, False, True),
    (2, 512, 512, False, True),
]


def operands(m, k, n, ta, tb):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    return a, b


def median_time(fn, steps):
    for _ in range(3):
        fn()
    samples = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def worker(lib: str, threads: int, steps: int) -> list[float]:
    out = []
    for m, k, n, ta, tb in SHAPES:
        a, b = operands(m, k, n, ta, tb)
        if lib == "numpy":
            at, bt = (a.T if ta else a), (b.T if tb else b)
            out.append(median_time(lambda at=at, bt=bt: at @ bt, steps))
        else:
            import nncompile as nc

            def f(a, b, ta=ta, tb=tb):
                return (nc.transpose(a) if ta else a) @ (nc.transpose(b) if tb else b)

            exe = nc.lower(f, a, b, threads=threads).compile()
            out.append(median_time(lambda exe=exe, a=a, b=b: exe([a, b]), steps))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("LIB", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.steps)))
        return
    rows = []
    for threads in (1, 2):
        times = {}
        for lib in ("nncompile", "numpy"):
            env = dict(
                os.environ,
                OMP_NUM_THREADS=str(threads),
                OPENBLAS_NUM_THREADS=str(threads),
                NNCOMPILE_THREADS=str(threads),
            )
            if lib == "numpy":
                env.pop("OPENBLAS_CORETYPE", None)
                env.pop("OPENBLAS_L2_SIZE", None)
            r = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--steps",
                    str(args.steps),
                    "--worker",
                    lib,
                    str(threads),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            times[lib] = json.loads(r.stdout.strip().splitlines()[-1])
        for (m, k, n, ta, tb), ours, theirs in zip(
            SHAPES, times["nncompile"], times["numpy"], strict=True
        ):
            rows.append(
                {
                    "threads": threads,
                    "shape": f"{m}x{k}x{n}" + ("^T" if ta else "") + (" B^T" if tb else ""),
                    "nncompile_ms": ours * 1e3,
                    "numpy_ms": theirs * 1e3,
                    "ratio": theirs / ours,
                    "gflops": 2 * m * n * k / ours / 1e9,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for r in rows:
        print(
            f"threads={r['threads']}  {r['shape']:<18} nncompile {r['nncompile_ms']:7.3f} ms "
            f"({r['gflops']:5.0f} GFLOP/s)  numpy {r['numpy_ms']:7.3f} ms  "
            f"ratio {r['ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
