"""Reductions as CNNs and classifiers use them, compiled vs PyTorch eager on the same threads
(and NumPy, one thread): NCHW global average pooling, batch-norm statistics (mean and
variance over batch and pixels), a bias gradient over NHWC data, row maxima and a
softmax over 1000 classes.

    python benchmarks/reductions.py [--threads 2] [--steps 200] [--json]

Medians of ``--steps`` calls after warm-up; ratios are PyTorch's time over ours, measured
in the same run. PyTorch is skipped when it is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_targets import timed, torch_on  # noqa: E402

import nncompile as nc  # noqa: E402

NCHW = (64, 32, 26, 26)  # the seed CNN's first activation, channels first
NHWC = (64, 26, 26, 32)
ROWS = (512, 1000)  # logits of a 1000-class classifier


def _bn_stats(x):
    mean = nc.mean(x, axis=(0, 2, 3), keepdims=True)
    return nc.reshape(mean, (-1,)), nc.mean((x - mean) ** 2, axis=(0, 2, 3))


WORKLOADS = {  # name: (shape, ours, torch, numpy)
    "gap_nchw": (
        NCHW,
        lambda x: nc.mean(x, axis=(2, 3)),
        lambda t, x: x.mean(dim=(2, 3)),
        lambda x: x.mean(axis=(2, 3)),
    ),
    "bn_stats_nchw": (
        NCHW,
        _bn_stats,
        lambda t, x: t.var_mean(x, dim=(0, 2, 3), unbiased=False),
        lambda x: (x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))),
    ),
    "bias_grad_nhwc": (
        NHWC,
        lambda x: nc.sum(x, axis=(0, 1, 2)),
        lambda t, x: x.sum(dim=(0, 1, 2)),
        lambda x: x.sum(axis=(0, 1, 2)),
    ),
    "row_max": (
        ROWS,
        lambda x: nc.max(x, axis=1),
        lambda t, x: x.amax(dim=1),
        lambda x: x.max(axis=1),
    ),
    "softmax": (
        ROWS,
        lambda x: nc.softmax(x, axis=1),
        lambda t, x: t.softmax(x, dim=1),
        lambda x: (
            np.exp(x - x.max(1, keepdims=True))
            / np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)
        ),
    ),
}


def measure(name: str, threads: int, steps: int, torch) -> dict:
    shape, ours, theirs, reference = WORKLOADS[name]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    compiled = nc.compile(ours, threads=threads)
    got, want = compiled(x), reference(x.astype(np.float64))
    got, want = (v if isinstance(v, (tuple, list)) else [v] for v in (got, want))
    for g, w in zip(got, want, strict=True):  # against float64 NumPy
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-5)
    row = {"workload": name, "shape": "x".join(map(str, shape))}
    row["nncompile_ms"] = 1e3 * timed(lambda: compiled(x), steps)
    row["numpy_ms"] = 1e3 * timed(lambda: reference(x), steps)
    if torch is not None:
        tx = torch.from_numpy(x)
        row["torch_ms"] = 1e3 * timed(lambda: theirs(torch, tx), steps)
        row["speedup_vs_torch"] = row["torch_ms"] / row["nncompile_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch = torch_on(args.threads)
    rows = [measure(name, args.threads, args.steps, torch) for name in WORKLOADS]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"threads={args.threads} (NumPy: one thread, its own reductions)")
    for row in rows:
        vs = f"  vs torch {row['speedup_vs_torch']:.2f}x" if "speedup_vs_torch" in row else ""
        torch_ms = f"  torch {row['torch_ms']:.3f} ms" if "torch_ms" in row else ""
        print(
            f"{row['workload']:<15} {row['shape']:<13} nncompile {row['nncompile_ms']:.3f} ms"
            f"{torch_ms}  numpy {row['numpy_ms']:.3f} ms{vs}"
        )


if __name__ == "__main__":
    main()
