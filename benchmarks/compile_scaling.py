"""Cold compile times of deep graphs (issue #13): SimpleRNN and LSTM layers unrolled over
T steps (the forward pass and a training gradient), a fused elementwise chain and a wide
concatenate. Time per step should stay about flat as T grows.

    python benchmarks/compile_scaling.py [--steps 100,400,1000] [--cells rnn,lstm]
                                         [--no-train] [--json]

Compiles are cold: the on-disk object cache is a fresh temporary folder, and the runtime
GEMM library every program links against is built once before the first timing (a
one-time cost per process, not per program). Each row is trace + optimize + lower +
LLVM IR + LLVM optimization and code generation (``nc.compile(...).compiled_for``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ["NNCOMPILE_CACHE_DIR"] = tempfile.mkdtemp(prefix="nncompile-scaling-")

import numpy as np  # noqa: E402  (after the cache folder is chosen)

import nncompile as nc  # noqa: E402
from nncompile import nn  # noqa: E402

UNITS, FEATURES, BATCH = 32, 8, 16
CELLS = {"rnn": nn.SimpleRNN, "lstm": nn.LSTM}
NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM"}


def recurrent(cell: str, steps: int, train: bool):
    model = nn.Sequential([CELLS[cell](UNITS, input_shape=(steps, FEATURES))])
    state = model.state()
    x = np.random.default_rng(0).normal(size=(BATCH, steps, FEATURES)).astype(np.float32)

    def forward(params, x):
        return model.apply(params, state, x)[0]

    if not train:
        return forward, (model.params(), x)
    return nc.value_and_grad(lambda p, x: nc.sum(nc.square(forward(p, x)))), (model.params(), x)


def chain(ops: int):
    def f(x):
        for _ in range(ops // 2):
            x = x * 0.5 + 0.25
        return x

    return f, (np.ones(4096, np.float32),)


def concat(inputs: int):
    xs = [np.full((BATCH, 4), i, np.float32) for i in range(inputs)]
    return (lambda xs: nc.concatenate(xs, axis=1)), (xs,)


def measure(name: str, size: int, fn, args) -> dict:
    start = time.perf_counter()
    lowered, _, graph = nc.compile(fn).compiled_for(*args)
    total = time.perf_counter() - start
    return {
        "case": name,
        "size": size,
        "seconds": total,
        "ms_per_unit": 1e3 * total / size,
        "nodes": len(graph.nodes),
        "kernels": len(lowered.program.kernels),
        "functions": lowered.source.count("\ndefine "),
        **{k: v for k, v in lowered.timings.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", default="100,400,1000", help="sequence lengths T")
    ap.add_argument("--cells", default="rnn,lstm", help="recurrent layers: rnn, lstm")
    ap.add_argument("--no-train", action="store_true", help="forward passes only")
    ap.add_argument("--json", action="store_true", help="machine-readable results")
    opts = ap.parse_args()
    steps = [int(s) for s in opts.steps.split(",")]

    nc.compile(lambda a: a @ a)(np.eye(2, dtype=np.float32))  # builds the runtime once
    rows = []
    for cell in opts.cells.split(","):
        for train in (False,) if opts.no_train else (False, True):
            for t in steps:
                label = f"{NAMES[cell]} {'train' if train else 'forward'}"
                rows.append(measure(label, t, *recurrent(cell, t, train)))
    for ops in (2000, 10000):
        rows.append(measure("elementwise chain (ops)", ops, *chain(ops)))
    rows.append(measure("concatenate (inputs)", 1000, *concat(1000)))

    if opts.json:
        print(json.dumps(rows, indent=1))
        return
    head = f"{'case':<24} {'T/size':>6} {'total s':>8} {'ms/step':>8} {'nodes':>6} "
    head += f"{'kernels':>7} {'fns':>4} {'opt s':>6} {'lower s':>7} {'ir s':>6} {'llvm s':>6}"
    print(f"{BATCH=} {UNITS=} {FEATURES=}, cold (cache {os.environ['NNCOMPILE_CACHE_DIR']})")
    print(head)
    for r in rows:
        print(
            f"{r['case']:<24} {r['size']:>6} {r['seconds']:>8.2f} {r['ms_per_unit']:>8.2f} "
            f"{r['nodes']:>6} {r['kernels']:>7} {r['functions']:>4} {r['optimize']:>6.2f} "
            f"{r['lower']:>7.2f} {r['codegen']:>6.2f} {r['llvm']:>6.2f}"
        )


if __name__ == "__main__":
    main()
