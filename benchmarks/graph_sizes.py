"""Node counts of the forward graph vs the whole training step (forward + backward +
optimizer) for three models: an MLP 784-256-128-10, the seed CNN, and an LSTM 28->128
over 28 steps. The counts are of traced, unoptimized graphs.

    python benchmarks/graph_sizes.py [--json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import nncompile as nc
from nncompile import functional as F
from nncompile import init, optim

BATCH = 64


def mlp(sizes: tuple[int, ...] = (784, 256, 128, 10)):
    rng = np.random.default_rng(0)
    params = {}
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        params[f"w{i}"] = init.glorot_uniform((a, b), rng, layout="in_out")
        params[f"b{i}"] = init.zeros((b,))

    layers = len(sizes) - 1

    def loss(p, x, y):
        h = x
        for i in range(layers):
            h = F.dense(h, p[f"w{i}"], p[f"b{i}"], "relu" if i < layers - 1 else None)
        return nc.cross_entropy(h, y)

    x = rng.random((BATCH, sizes[0]), dtype=np.float32)
    return params, loss, x


def cnn():
    rng = np.random.default_rng(0)
    params = {
        "conv_w": init.glorot_uniform((32, 1, 3, 3), rng),
        "conv_b": init.zeros((32,)),
        "w1": init.glorot_uniform((13 * 13 * 32, 64), rng, layout="in_out"),
        "b1": init.zeros((64,)),
        "w2": init.glorot_uniform((64, 10), rng, layout="in_out"),
        "b2": init.zeros((10,)),
    }

    def loss(p, x, y):
        h = F.conv2d_layer(x, p["conv_w"], p["conv_b"], act="relu")
        h = F.flatten(F.max_pool(h, 2))
        h = F.dense(h, p["w1"], p["b1"], "relu")
        return nc.cross_entropy(F.dense(h, p["w2"], p["b2"]), y)

    x = rng.random((BATCH, 28, 28, 1), dtype=np.float32)
    return params, loss, x


def lstm():
    rng = np.random.default_rng(0)
    hidden = 128
    params = {
        "w_ih": init.glorot_uniform((4 * hidden, 28), rng),
        "w_hh": init.orthogonal((4 * hidden, hidden), rng),
        "b_ih": init.zeros((4 * hidden,)),
        "b_hh": init.zeros((4 * hidden,)),
        "w": init.glorot_uniform((hidden, 10), rng, layout="in_out"),
        "b": init.zeros((10,)),
    }

    def loss(p, x, y):
        h, _ = F.lstm(x, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
        return nc.cross_entropy(F.dense(h, p["w"], p["b"]), y)

    x = rng.random((BATCH, 28, 28), dtype=np.float32)
    return params, loss, x


def measure(name, build):
    params, loss, x = build()
    y = np.random.default_rng(1).integers(0, 10, BATCH)
    opt = optim.Adam(1e-3)
    forward = nc.trace(loss, params, x, y)
    step = nc.trace(nc.train_step(loss, opt), params, opt.init(params), x, y, np.float32(1e-3))
    return {
        "model": name,
        "forward_nodes": len(forward.nodes),
        "train_step_nodes": len(step.nodes),
        "ratio": round(len(step.nodes) / len(forward.nodes), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [
        measure(n, b)
        for n, b in [("mlp 784-256-128-10", mlp), ("seed cnn", cnn), ("lstm 28->128 x28", lstm)]
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'model':<22}{'forward':>9}{'fwd+bwd+adam':>14}{'ratio':>7}")
    for r in rows:
        print(f"{r['model']:<22}{r['forward_nodes']:>9}{r['train_step_nodes']:>14}{r['ratio']:>7}")


if __name__ == "__main__":
    main()
