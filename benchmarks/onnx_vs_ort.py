"""Imported ONNX models compiled by nncompile (LLVM) against ONNX Runtime on the CPU, at
batch 1 and 32 in the same run: median warm latency, throughput and their ratio.

    python benchmarks/onnx_vs_ort.py                               # every model, both sizes
    python benchmarks/onnx_vs_ort.py --models cnn,resnet --repeats 50 --exporter dynamo
    python benchmarks/onnx_vs_ort.py --models resnet --batches 32 --profile   # per kernel

The models are tests/onnx/exported_models.py's (small PyTorch modules exported with
torch.onnx.export). Both runtimes get the same thread count (``--threads``, default 2:
ORT's intra-op threads and nc.compile(threads=...)); ORT runs with ORT_ENABLE_ALL graph
optimizations. The two are timed in alternating blocks of calls, so load from other processes
falls on both alike, with a pause before each block for the other engine's threads to stop
spinning. "1st call s" is nncompile's first call at that batch size (tracing,
compiling, running). Every output is checked against ORT's before timing. Needs onnx,
onnxruntime and torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "onnx"))

RTOL, ATOL = 1e-4, 1e-5


def ort_session(path: str, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


# Calls are timed in alternating blocks, so that load that comes and goes hits both
# engines alike, with a pause before each block: after a run, ORT's intra-op threads keep
# spinning for 50-200 ms (its default, allow_spinning), taking the cores from whatever
# runs next in the process (measured: the decoder at batch 32 timed right after ORT
# blocks, 1.3-1.4 ms; after a 0.5 s pause, 0.71-0.75 ms, as alone). libgomp's spinning
# threads stop far sooner, but the pause is the same for both.
BLOCK = 25
PAUSE_S = 0.5


def time_pair(nc_call, ort_call, repeats: int, warmup: int) -> tuple[float, float]:
    """Median seconds per call of each, timed in alternating blocks of ``BLOCK`` calls
    (each after a pause of ``PAUSE_S`` and one untimed call), after ``warmup`` calls
    each."""
    # nncompile's thread chooser (backends/llvm/threads.py) settles on its thread count
    # over its first calls: those run with no ORT threads spinning beside them.
    time.sleep(PAUSE_S)
    for _ in range(warmup):
        nc_call()
    for _ in range(warmup):
        ort_call()
    nc_times: list[float] = []
    ort_times: list[float] = []
    while len(nc_times) < repeats:
        for call, times in ((nc_call, nc_times), (ort_call, ort_times)):
            time.sleep(PAUSE_S)
            call()
            for _ in range(min(BLOCK, repeats - len(times))):
                t = time.perf_counter()
                call()
                times.append(time.perf_counter() - t)
    return statistics.median(nc_times), statistics.median(ort_times)


def bench_model(name: str, exporter: str, directory: str, args: argparse.Namespace) -> list[dict]:
    from exported_models import MODELS, export

    import nncompile as nc

    spec = MODELS[name]
    path = export(spec.build(), spec, exporter, directory)
    f = nc.onnx.load(path)
    session = ort_session(path, args.threads)
    input_name = session.get_inputs()[0].name
    rows = []
    for batch in args.batches:
        x = spec.inputs(batch, seed=batch)
        t = time.perf_counter()
        fast = nc.compile(f, backend="llvm", threads=args.threads)
        got = np.asarray(fast(x))
        compile_s = time.perf_counter() - t
        want = session.run(None, {input_name: x})[0]
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{name} {batch}")
        if args.profile:  # where nncompile's time goes, kernel by kernel
            print(f"{name} ({exporter}), batch {batch}:")
            print(nc.profile(fast, x, steps=max(args.repeats, 20)).table())
        nc_s, ort_s = time_pair(
            lambda fast=fast, x=x: fast(x),
            lambda x=x: session.run(None, {input_name: x}),
            args.repeats,
            args.warmup,
        )
        rows.append(
            {
                "model": name,
                "exporter": exporter,
                "batch": batch,
                "compile_s": compile_s,
                "nc_ms": nc_s * 1e3,
                "ort_ms": ort_s * 1e3,
                "nc_per_s": batch / nc_s,
                "ort_per_s": batch / ort_s,
                "ratio": nc_s / ort_s,
            }
        )
    return rows


def print_table(rows: list[dict], threads: int, repeats: int) -> None:
    print(
        f"nncompile (LLVM) vs ONNX Runtime CPU: {threads} threads each, median of {repeats} "
        "warm calls; ratio = nncompile latency / ORT latency (< 1: nncompile faster)"
    )
    head = (
        f"{'model':<12} {'exporter':<11} {'batch':>5} {'1st call s':>10} {'nc ms':>9} "
        f"{'ort ms':>9} {'nc ex/s':>10} {'ort ex/s':>10} {'ratio':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['model']:<12} {r['exporter']:<11} {r['batch']:>5} {r['compile_s']:>10.2f} "
            f"{r['nc_ms']:>9.3f} {r['ort_ms']:>9.3f} {r['nc_per_s']:>10.0f} "
            f"{r['ort_per_s']:>10.0f} {r['ratio']:>6.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    from exported_models import EXPORTERS, MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    parser.add_argument("--exporter", default="torchscript", choices=EXPORTERS)
    parser.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per runtime")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls before timing")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--profile", action="store_true", help="also print nc.profile's per-kernel table"
    )
    args = parser.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    args.batches = [int(b) for b in args.batches.split(",")]
    if args.repeats < 1 or min(args.batches) < 1:
        parser.error("--repeats and every batch size must be >= 1")
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for name in names:
            rows += bench_model(name, args.exporter, directory, args)
    print_table(rows, args.threads, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
