"""Mixed precision on the CPU's matrix units: matmul_precision="bf16" against our float32
and against PyTorch's bfloat16, all timed in one run (ratios; absolute times vary by box).

  gemm1024   C = A @ B, 1024^3: ours bf16 vs torch.matmul on bf16 tensors, and our float32;
             GFLOP/s and the share of the AMX peak (a tile loop, amx_peak.py) x threads, or
             of the vdpbf16ps peak (fma_peak.py) where that is the form
  mlp1024    SGD step of an MLP 784-1024-1024-10, batch 256: ours bf16 vs ours float32 vs
             PyTorch eager under torch.autocast("cpu", dtype=torch.bfloat16)
  cnn64      the seed CNN's Adam step, batch 64: the same three

    python benchmarks/bf16.py [--steps 30] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import graph_sizes as models  # noqa: E402
from cpu_targets import (  # noqa: E402
    timed,
    timed_alternating,
    torch_cnn,
    torch_on,
    torch_step,
)
from nncompile.backends.llvm.amx_peak import amx_peak  # noqa: E402
from nncompile.backends.llvm.fma_peak import bf16_dot_peak  # noqa: E402
from nncompile.backends.llvm.runtime import bf16_form  # noqa: E402

import nncompile as nc  # noqa: E402
from nncompile import optim  # noqa: E402


def mlp1024():
    params, loss, x = models.mlp(sizes=(784, 1024, 1024, 10))
    return params, loss, np.resize(x, (256, 784)).astype(np.float32), optim.SGD(1e-2)


def seed_cnn():
    params, loss, x = models.cnn()
    return params, loss, np.resize(x, (64,) + x.shape[1:]).astype(np.float32), optim.Adam(1e-3)


def our_step(build, precision: str, threads: int):
    params, loss, x, opt = build()
    y = np.random.default_rng(1).integers(0, 10, len(x))
    state = opt.init(params)
    step = nc.compile(
        nc.train_step(loss, opt),
        donate_argnums=(0, 1),
        threads=threads,
        matmul_precision=precision,
    )
    lr = np.float32(1e-3)
    return lambda: step(params, state, x, y, lr)


def torch_autocast_step(kind: str):
    import torch

    if kind == "cnn64":
        return torch_cnn(64, autocast=True)
    sizes = (784, 1024, 1024, 10)
    layers = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    x, y = torch.rand(256, 784), torch.randint(0, 10, (256,))
    return torch_step(model, x, y, optimizer="sgd", autocast=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch = torch_on(args.threads)

    rows: list[dict] = []
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    b = rng.standard_normal((1024, 1024)).astype(np.float32)
    precisions = ("bf16", "float32")
    products = [
        nc.compile(lambda a, b: a @ b, threads=args.threads, matmul_precision=p) for p in precisions
    ]
    calls = [lambda mm=mm: mm(a, b) for mm in products]
    ours = dict(zip(precisions, timed_alternating(calls, args.steps), strict=True))
    peak = amx_peak()
    flops = 2 * 1024**3
    row = {
        "workload": "gemm1024",
        "bf16_form": bf16_form(),
        "bf16_ms": ours["bf16"] * 1e3,
        "bf16_gflops": flops / ours["bf16"] / 1e9,
        "float32_ms": ours["float32"] * 1e3,
        "speedup_vs_our_float32": ours["float32"] / ours["bf16"],
    }
    if peak:
        row["amx_peak_gflops_per_core"] = peak
        row["share_of_amx_peak"] = row["bf16_gflops"] / (peak * args.threads)
    elif row["bf16_form"] == "avx512bf16":
        dot = bf16_dot_peak()  # (the instruction's own peak: what this form can reach)
        if dot:
            row["vdpbf16ps_peak_gflops_per_core"] = dot
            row["share_of_vdpbf16ps_peak"] = row["bf16_gflops"] / (dot * args.threads)
    if torch is not None:
        ta, tb = torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()
        row["torch_bf16_ms"] = timed(lambda: ta @ tb, args.steps) * 1e3
        row["speedup_vs_torch_bf16"] = row["torch_bf16_ms"] / row["bf16_ms"]
    rows.append(row)

    for name, build in (("mlp1024", mlp1024), ("cnn64", seed_cnn)):
        # all compiled steps first: PyTorch's spinning threads must not skew ours
        steps = [our_step(build, p, args.threads) for p in precisions]
        times = dict(zip(precisions, timed_alternating(steps, args.steps), strict=True))
        row = {
            "workload": name,
            "bf16_ms": times["bf16"] * 1e3,
            "float32_ms": times["float32"] * 1e3,
            "speedup_vs_our_float32": times["float32"] / times["bf16"],
        }
        if torch is not None:
            row["torch_autocast_ms"] = timed(torch_autocast_step(name), args.steps) * 1e3
            row["speedup_vs_torch_autocast"] = row["torch_autocast_ms"] / row["bf16_ms"]
        rows.append(row)

    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for row in rows:
        print(
            "  ".join(
                f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            )
        )


if __name__ == "__main__":
    main()
