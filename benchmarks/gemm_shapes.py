"""sgemm from generated code vs NumPy (OpenBLAS), on 1 and 2 threads, for 1024^3 and the
training shapes (and their transposed variants), and thin batch-1 inference shapes; or,
with ``--set everyday``, products of other common shapes (classifier heads and their
gradients, few rows, short k, mid sizes whose n is not a multiple of the tile).

    python benchmarks/gemm_shapes.py [--steps 20] [--set training|everyday] [--json]

Each row says which form our GEMM took: "packed" (the runtime's packed GEMM) or "inline"
(code in the program: register tiles, blocks of them, dot products).

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
# (m, k, n, a transposed, b transposed)
EVERYDAY = [
    (64, 128, 10, False, False),  # a classifier head at batch 64
    (128, 64, 10, True, False),  # its weight gradient
    (512, 64, 3, False, False),
    (2048, 2048, 2, False, False),  # a GEMV-like head: dot products (gemm.few_columns)
    (2048, 2048, 10, False, False),  # a classifier head over a large A: short row blocks
    (32, 5408, 64, False, True),  # a Linear layer's weight, long k: dot products in passes
    (128, 512, 128, False, True),
    (128, 784, 256, False, False),  # B read in place: a whole-row block (128 rows)
    (10, 5000, 50, False, False),
    (3, 3000, 300, False, False),  # few rows, wide
    (64, 256, 40, False, False),
    (4096, 128, 64, False, False),
    (256, 4096, 24, True, False),
    (64, 8, 256, False, False),  # short k
    (96, 2048, 96, False, False),  # mid sizes, n not a multiple of 64
    (128, 1024, 100, False, False),
    (100, 1000, 100, False, False),
    (300, 300, 300, False, False),
    (512, 512, 100, False, False),
    (200, 784, 200, False, False),
    (1000, 100, 1000, False, False),
]
SETS = {"training": SHAPES, "everyday": EVERYDAY}


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


def worker(lib: str, threads: int, steps: int, shapes: list) -> list[tuple[float, str]]:
    """(seconds, our GEMM's form) per shape; the form is "" for NumPy."""
    out = []
    for m, k, n, ta, tb in shapes:
        a, b = operands(m, k, n, ta, tb)
        if lib == "numpy":
            at, bt = (a.T if ta else a), (b.T if tb else b)
            out.append((median_time(lambda at=at, bt=bt: at @ bt, steps), ""))
        else:
            import nncompile as nc

            def f(a, b, ta=ta, tb=tb):
                return (nc.transpose(a) if ta else a) @ (nc.transpose(b) if tb else b)

            lowered = nc.lower(f, a, b, threads=threads)
            form = "packed" if "nc_rt_gemm" in lowered.source else "inline"
            exe = lowered.compile()
            out.append((median_time(lambda exe=exe, a=a, b=b: exe([a, b]), steps), form))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--set", choices=sorted(SETS), default="training")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("LIB", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    shapes = SETS[args.set]
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.steps, shapes)))
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
                    "--set",
                    args.set,
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
        for (m, k, n, ta, tb), (ours, form), (theirs, _) in zip(
            shapes, times["nncompile"], times["numpy"], strict=True
        ):
            rows.append(
                {
                    "threads": threads,
                    "shape": f"{m}x{k}x{n}" + ("^T" if ta else "") + (" B^T" if tb else ""),
                    "form": form,
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
            f"({r['gflops']:5.0f} GFLOP/s, {r['form']:<6})  numpy {r['numpy_ms']:7.3f} ms  "
            f"ratio {r['ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
