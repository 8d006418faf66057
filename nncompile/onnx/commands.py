"""``nncompile run model.onnx`` and ``nncompile bench model.onnx --vs onnxruntime``.

run: the model's outputs for inputs read from .npy files (in graph-input order, or
``name=path``), printed or written to an .npz keyed by output name.

bench: the model compiled by nncompile against onnxruntime on the CPU (2 intra-op
threads, all graph optimizations), in the same process on the same random inputs of
the declared shapes (named or unknown sizes = --batch): median latency, interquartile
range, throughput (batch items per second) and how far the two outputs are apart.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from typing import Any

import numpy as np

from ..errors import ConfigError, SerializationError
from ..fileio import atomic_write
from .function import InputSpec, OnnxFunction
from .narrow import to_containers, to_onnx_dtypes

ORT_THREADS = 2
MAX_RANDOM_ELEMENTS = 1 << 28  # a declared size of 10^12 must not be allocated


def cmd_run(args: argparse.Namespace) -> int:
    from .. import compile as nc_compile
    from . import load

    f = load(args.model)
    positional, named = _read_inputs(args.input, f)
    fn = f if args.backend == "eager" else nc_compile(f, backend=args.backend)
    if args.backend != "eager":  # compiled code takes int8/uint8/... in their containers
        positional = list(to_containers(*positional))
        named = dict(zip(named, to_containers(*named.values()), strict=True))
    # narrow integer outputs (held in int32/int64) written in their ONNX dtypes
    outs = to_onnx_dtypes(fn(*positional, **named), f)
    arrays = dict(zip(f.output_names, outs, strict=True))
    if args.output:
        atomic_write(args.output, lambda file: np.savez(file, **arrays))
        print(f"wrote {len(arrays)} outputs to {args.output}")
        return 0
    for name, a in arrays.items():
        print(f"{name}: {a.dtype} {a.shape}")
        print(np.array2string(a, threshold=50, edgeitems=3, precision=6))
    return 0


def _read_inputs(specs: list[str], f: OnnxFunction) -> tuple[list[Any], dict[str, Any]]:
    positional, named = [], {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        try:
            # no pickles: an .npy file from someone else must not run code
            array = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise SerializationError(f"{path}: not a readable .npy array: {e}") from None
        if not isinstance(array, np.ndarray):
            raise SerializationError(f"{path}: an .npz archive; give one .npy array per input")
        if name:
            named[name] = array
        else:
            if named:
                raise ConfigError("--input: positional inputs come before NAME=FILE ones")
            positional.append(array)
    return positional, named


def _numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


# -- bench ---------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    """``nncompile bench model.onnx [--vs onnxruntime]`` (bench's --batch, --steps and
    --budget apply)."""
    from .. import compile as nc_compile
    from ..bench import _time_steps
    from . import load

    if len(args.targets) != 1:
        raise ConfigError("bench of an ONNX model takes one .onnx file (and no other workload)")
    if args.vs not in (None, "onnxruntime"):
        raise ConfigError(f"bench of an ONNX model compares with --vs onnxruntime, not {args.vs}")
    path = args.targets[0]
    f = load(path)
    inputs = random_inputs(f.input_specs, args.batch)
    fast = nc_compile(f, backend="llvm")
    wide = to_containers(*inputs)  # int8/uint8/... compiled in their containers
    rows = []
    start = time.perf_counter()
    ours = fast(*wide)
    first = time.perf_counter() - start
    samples = _time_steps(lambda: fast(*wide), args.steps, args.budget)
    rows.append(("nncompile llvm", samples, first))
    ours = to_onnx_dtypes(ours, f)
    diff = None
    if args.vs == "onnxruntime":
        session = _ort_session(path)
        feeds = dict(zip(f.input_names, inputs, strict=True))
        start = time.perf_counter()
        theirs = session.run(None, feeds)
        first = time.perf_counter() - start
        samples = _time_steps(lambda: session.run(None, feeds), args.steps, args.budget)
        rows.append(("onnxruntime cpu", samples, first))
        diff = max(
            (_max_diff(_numpy(a), b) for a, b in zip(ours, theirs, strict=True)), default=0.0
        )
    named = zip(f.input_names, inputs, strict=True)
    shapes = ", ".join(f"{n} {a.dtype} {a.shape}" for n, a in named)
    print(f"{os.path.basename(path)}: inputs {shapes}; batch {args.batch}")
    print(table(rows, args.batch))
    if diff is not None:
        print(f"largest difference between the outputs: {diff:.3g}")
    return 0


def random_inputs(specs: list[InputSpec], batch: int, seed: int = 0) -> list[np.ndarray]:
    """Inputs of the declared shapes (named or unknown sizes = ``batch``): floats from a
    standard normal, integers zero (valid indices), bools False."""
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        if s.shape is None:
            raise ConfigError(f"input {s.name!r} declares no shape; cannot make a random one")
        shape = tuple(d if isinstance(d, int) else batch for d in s.shape)
        if math.prod(shape) > MAX_RANDOM_ELEMENTS:
            raise ConfigError(
                f"input {s.name!r} of shape {shape} is too large to benchmark "
                f"(over {MAX_RANDOM_ELEMENTS} elements)"
            )
        if np.issubdtype(s.dtype, np.floating):
            out.append(rng.standard_normal(shape).astype(s.dtype))
        else:
            out.append(np.zeros(shape, s.dtype))
    return out


def _ort_session(path: str) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("--vs onnxruntime needs: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = ORT_THREADS
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != np.shape(b):
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - np.asarray(b, np.float64))))


def table(rows: list[tuple[str, list[float], float]], batch: int) -> str:
    lines = [f"{'runtime':<18}{'median ms':>11}{'p25-p75 ms':>18}{'items/s':>12}{'first s':>10}"]
    for name, samples, first in rows:
        median = statistics.median(samples)
        q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [median] * 3
        spread = f"{q[0] * 1e3:.4g}-{q[2] * 1e3:.4g}"  # 4 digits: microsecond models too
        lines.append(
            f"{name:<18}{median * 1e3:>11.4g}{spread:>18}{batch / median:>12.4g}{first:>10.3f}"
        )
    return "\n".join(lines)
