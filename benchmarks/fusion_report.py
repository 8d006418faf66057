"""Node and fusion-group counts of whole training steps (forward + backward + Adam)
before and after ``nc.optimize(level=2)``: the MLP 784-256-128-10 and the seed CNN.

    python benchmarks/fusion_report.py [--dump-cnn FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from graph_sizes import BATCH, cnn, mlp  # noqa: I001  (benchmarks/ is the script's folder)

import nncompile as nc
from nncompile import optim
from nncompile.fileio import atomic_write
from nncompile.passes import format_fusion


def training_step_graph(build):
    params, loss, x = build()
    y = np.random.default_rng(1).integers(0, 10, BATCH)
    opt = optim.Adam(1e-3)
    return nc.trace(nc.train_step(loss, opt), params, opt.init(params), x, y, np.float32(1e-3))


def report(name, build):
    graph = training_step_graph(build)
    start = time.perf_counter()
    opt = nc.optimize(graph, level=2)
    seconds = time.perf_counter() - start
    matmuls = sum(1 for n in opt.nodes if n.op == "matmul")
    return opt, {
        "model": name,
        "nodes_before": len(graph.nodes),
        "nodes_after": len(opt.nodes),
        "fusion_groups": len(opt.fusion_groups),
        "matmuls": matmuls,
        "group_budget": matmuls + 6,
        "optimize_seconds": round(seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dump-cnn", help="write the CNN step's fusion dump to this file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for name, build in [("mlp 784-256-128-10 + adam", mlp), ("seed cnn + adam", cnn)]:
        opt, row = report(name, build)
        rows.append(row)
        if args.dump_cnn and name.startswith("seed"):
            atomic_write(args.dump_cnn, format_fusion(opt) + "\n")
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(
        f"{'model':<28}{'nodes':>7}{'->':>4}{'after':>7}{'groups':>8}{'matmuls+6':>11}{'time':>8}"
    )
    for r in rows:
        print(
            f"{r['model']:<28}{r['nodes_before']:>7}{'':>4}{r['nodes_after']:>7}"
            f"{r['fusion_groups']:>8}{r['group_budget']:>11}{r['optimize_seconds']:>7.3f}s"
        )


if __name__ == "__main__":
    main()
