"""Per-kernel time of a compiled training step (nc.profile): where the time goes.

python benchmarks/profile_step.py [cnn|mlp] [--batch 64] [--threads N] [--top 15]
    [--precision float32|bf16]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import graph_sizes as models  # noqa: E402

import nncompile as nc  # noqa: E402
from nncompile import optim  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", choices=("cnn", "mlp"), nargs="?", default="cnn")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--precision", choices=("float32", "bf16"), default="float32")
    args = parser.parse_args()
    params, loss, x = getattr(models, args.model)()
    x = np.resize(x, (args.batch,) + x.shape[1:]).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 10, args.batch)
    opt = optim.Adam(1e-3)
    step = nc.train_step(loss, opt)
    report = nc.profile(
        nc.compile(step, matmul_precision=args.precision),
        params,
        opt.init(params),
        x,
        y,
        np.float32(1e-3),
        steps=args.steps,
        threads=args.threads,
    )
    print(report.table(args.top))


if __name__ == "__main__":
    main()
