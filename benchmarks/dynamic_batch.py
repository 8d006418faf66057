"""The cost of one compile for every batch size (issue: symbolic batch dimension).

1. Training step time of the MLP, seed CNN and LSTM workloads (``nncompile bench``'s) at
   batch 64 and 256: compiled for the symbolic batch size n against compiled for that one
   batch size, timed alternately in the same run (ratio of medians; target <= 1.15x).
2. Keras ``predict`` time per row on 1..1000 rows with the symbolic batch (one graph),
   and with the older padding to powers of two (``dynamic_batch=False``), after warm-up
   calls at each size (so compile time and the thread choice are left out of both).

    python benchmarks/dynamic_batch.py [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import nncompile as nc
from nncompile import workloads
from nncompile.demo import seed_cnn
from nncompile.nn.fit_data import copied


def _seconds(fn, args, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    return (time.perf_counter() - start) / calls


def step_ratio(name: str, batch: int, rounds: int) -> dict:
    w = workloads.builtin(name, batch=batch)
    static = nc.compile(w.fn, donate_argnums=w.donate)
    dynamic = nc.compile(w.fn, donate_argnums=w.donate, dynamic_batch=w.batched)
    args = {"static": copied(w.args), "dynamic": copied(w.args)}
    fns = {"static": static, "dynamic": dynamic}
    for kind in fns:  # compile and warm up
        _seconds(fns[kind], args[kind], 3)
    once = _seconds(static, args["static"], 3)
    calls = max(3, int(0.2 / max(once, 1e-6)))
    times: dict[str, list[float]] = {"static": [], "dynamic": []}
    for _ in range(rounds):
        for kind in fns:
            times[kind].append(_seconds(fns[kind], args[kind], calls))
    s, d = statistics.median(times["static"]), statistics.median(times["dynamic"])
    return {
        "workload": name,
        "batch": batch,
        "static_ms": s * 1e3,
        "dynamic_ms": d * 1e3,
        "ratio": d / s,
    }


def predict_per_row(
    rows: list[int], dynamic: bool, rounds: int, batch_size: int | None = None
) -> dict:
    """Microseconds per row of ``model.predict`` on each row count (and the compiles)."""
    model = seed_cnn((28, 28, 1), seed=0)
    model.compile(nc.optim.Adam(1e-3), "sparse_categorical_crossentropy", dynamic_batch=dynamic)
    rng = np.random.default_rng(0)
    x = rng.random((max(rows), 28, 28, 1)).astype(np.float32)
    out: dict = {}
    for n in rows:
        for _ in range(10):  # compile, warm up, and let the thread chooser settle
            model.predict(x[:n], batch_size=batch_size)
        calls = max(4, 6000 // n)
        per = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                model.predict(x[:n], batch_size=batch_size)
            per.append((time.perf_counter() - start) / calls / n)
        out[n] = statistics.median(per) * 1e6
    out["compiles"] = model.compile_count
    return out


PREDICT_KINDS = {  # name: (dynamic_batch, predict's batch_size)
    "symbolic": (True, None),  # Keras' default batch_size, 256
    "padded": (False, None),
    "symbolic_1024": (True, 1024),  # up to 1000 rows in one call
    "padded_1024": (False, 1024),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--json", action="store_true")
    p.add_argument("--skip-predict", action="store_true")
    args = p.parse_args()
    steps = [step_ratio(name, b, args.rounds) for name in ("mlp", "cnn", "lstm") for b in (64, 256)]
    rows = [1, 2, 5, 16, 64, 100, 128, 200, 256, 333, 512, 777, 1000]
    predict = {}
    if not args.skip_predict:
        k = max(5, args.rounds)
        predict = {
            name: predict_per_row(rows, dynamic, k, batch)
            for name, (dynamic, batch) in PREDICT_KINDS.items()
        }
    if args.json:
        print(json.dumps({"steps": steps, "predict_us_per_row": predict}, indent=1))
        return
    print("training step, symbolic batch vs specialized (same run, median of rounds)")
    print(f"{'workload':<8} {'batch':>5} {'specialized ms':>15} {'symbolic ms':>12} {'ratio':>6}")
    for r in steps:
        print(
            f"{r['workload']:<8} {r['batch']:>5} {r['static_ms']:>15.3f} "
            f"{r['dynamic_ms']:>12.3f} {r['ratio']:>6.3f}"
        )
    if not predict:
        return
    print("\nKeras predict (seed CNN), microseconds per row (batch_size 256, or 1024: _1024)")
    print(f"{'rows':>5} " + " ".join(f"{k:>13}" for k in PREDICT_KINDS))
    for n in rows:
        print(f"{n:>5} " + " ".join(f"{predict[k][n]:>13.2f}" for k in PREDICT_KINDS))
    for k in PREDICT_KINDS:
        big = [predict[k][n] for n in rows if n >= 64]
        print(
            f"{k}: from 64 rows up, max/min time per row {max(big) / min(big):.2f}x; "
            f"{predict[k]['compiles']} compiles"
        )


if __name__ == "__main__":
    main()
