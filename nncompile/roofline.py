"""The roofline view of a compiled program: per kernel, the work it does (flops and bytes
moved, estimated from its fusion group) against the machine's measured peaks."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .ir.graph import Node
from .ir.ops.binary import BINARY, binary_op
from .ir.ops.unary import UNARY, unary_op
from .ir.registry import get_op

# 2 flops per multiply-add in the contractions; one per output element elsewhere
_CONTRACTION_K = {
    "matmul": lambda n: n.inputs[0].shape[-1],
    "conv2d": lambda n: math.prod(n.inputs[1].shape[1:]),
    "conv2d_backward_input": lambda n: n.inputs[1].shape[0] * math.prod(n.inputs[1].shape[2:]),
    "conv2d_backward_weight": lambda n: (
        math.prod(n.inputs[1].shape)
        // max(
            n.inputs[1].shape[-1] if n.attrs.get("layout") == "NHWC" else n.inputs[1].shape[1], 1
        )
    ),
}


def node_flops(n: Node) -> float:
    out = math.prod(n.outputs[0].shape) if n.outputs else 0
    if n.op in _CONTRACTION_K:
        return 2.0 * out * _CONTRACTION_K[n.op](n)
    if n.op in ("constant", "reshape", "transpose", "expand", "slice", "concat", "pad"):
        return 0.0
    opdef = get_op(n.op)  # an unknown op raises instead of counting as one flop
    unary = opdef.category == "elementwise" and opdef.num_inputs == 1
    if n.op in UNARY or (unary and n.op not in ("cast", "stop_gradient")):
        # unary ops declare their flops; one missing from the declaration raises
        return float(out * unary_op(n.op).flops)
    binary = opdef.category == "elementwise" and opdef.num_inputs == 2
    if n.op in BINARY or binary:
        # binary ops declare their flops too; one missing from the declaration raises
        return float(out * binary_op(n.op).flops)
    if n.op.startswith("reduce") or n.op in ("argmax", "argmin"):
        return float(math.prod(n.inputs[0].shape))
    if n.op in ("max_pool2d", "avg_pool2d"):
        k = n.attrs.get("kernel_shape") or n.attrs.get("kernel") or (1, 1)
        return float(out * math.prod(k))
    return float(out)


def group_work(group) -> tuple[float, float]:
    """(flops, bytes) of a fusion group: flops of its nodes; bytes of the values it reads
    from and writes to memory (each once)."""
    flops = sum(node_flops(n) for n in group.nodes)
    moved = sum(v.type.size * v.dtype.itemsize for v in list(group.inputs) + list(group.outputs))
    return flops, float(moved)


@dataclass(frozen=True)
class Peaks:
    gflops: float
    gbytes_per_s: float


@lru_cache(maxsize=1)
def measure_peaks() -> Peaks:
    """This machine's float32 GEMM rate (1024^3 on every thread this process uses, the
    faster of NumPy's BLAS and nncompile's own GEMM) and memory copy bandwidth (64 MiB
    arrays, the faster of NumPy's one-thread copy and a compiled one on every thread),
    each the best of a few runs."""
    from .compiler import compile

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((1024, 1024)).astype(np.float32) for _ in range(2))
    ours = compile(lambda x, y: x @ y)
    ours(a, b)
    best = math.inf
    # ours first: NumPy's BLAS threads keep spinning after its calls and would slow a team
    # of ours to about one thread's rate (measured 520 -> 264 GFLOP/s on 2 Zen 5 cores)
    for gemm in (lambda: ours(a, b), lambda: a @ b):
        for _ in range(5):
            start = time.perf_counter()
            gemm()
            best = min(best, time.perf_counter() - start)
    gflops = 2 * 1024**3 / best / 1e9
    # The copy: NumPy's (one thread) or a compiled x + 1 (all of this process's threads,
    # as the kernels compared with it run), whichever is faster.
    src = np.ones(16 * 2**20, np.float32)
    dst = np.empty_like(src)
    add_one = compile(lambda x: x + 1.0)
    add_one(src)
    best = math.inf
    for copy in (lambda: np.copyto(dst, src), lambda: add_one(src)):
        for _ in range(5):
            start = time.perf_counter()
            copy()
            best = min(best, time.perf_counter() - start)
    return Peaks(gflops, 2 * src.nbytes / best / 1e9)
