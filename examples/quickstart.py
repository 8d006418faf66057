"""Quickstart: the seed MNIST CNN's forward pass and loss, eager and traced.

Runs the same Python function three ways and checks they agree:
  1. eagerly on NumPy arrays,
  2. traced into an nncompile.ir.Graph and run on the reference interpreter,
  3. after a JSON round trip of that graph.

    python examples/quickstart.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import nncompile as nc
from nncompile.fileio import atomic_write


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Glorot-uniform weights for Conv2D(32, 3x3) -> MaxPool 2x2 -> Dense 64 -> Dense 10."""

    def glorot(shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
        limit = np.sqrt(6 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(np.float32)

    return {
        "conv_w": glorot((32, 1, 3, 3), 9, 32 * 9),
        "conv_b": np.zeros(32, np.float32),
        "dense1_w": glorot((64, 13 * 13 * 32), 13 * 13 * 32, 64),
        "dense1_b": np.zeros(64, np.float32),
        "dense2_w": glorot((10, 64), 64, 10),
        "dense2_b": np.zeros(10, np.float32),
    }


def cnn_loss(params: dict, images: np.ndarray, labels: np.ndarray):
    """Mean cross-entropy and accuracy of the seed CNN on a batch of NCHW images."""
    x = nc.relu(nc.conv2d(images, params["conv_w"], params["conv_b"]))
    x = nc.max_pool2d(x, 2)
    x = x.reshape(x.shape[0], -1)
    x = nc.relu(nc.linear(x, params["dense1_w"], params["dense1_b"]))
    logits = nc.linear(x, params["dense2_w"], params["dense2_b"])
    loss = nc.cross_entropy(logits, labels)
    accuracy = nc.mean(nc.argmax(logits, axis=1) == labels)
    return {"loss": loss, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="out", help="folder for the graph's text and JSON")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    params = init_params(rng)
    images = rng.random((64, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, 64)

    eager = cnn_loss(params, images, labels)
    graph = nc.trace(cnn_loss, params, images, labels)
    traced = nc.run(graph, params, images, labels)
    reloaded = nc.run(nc.ir.Graph.from_json(graph.to_json()), params, images, labels)

    print(graph)
    for key in ("loss", "accuracy"):
        same = np.array_equal(eager[key].numpy(), traced[key])
        same &= np.array_equal(traced[key], reloaded[key])
        print(f"{key:>9}: eager {eager[key].item():.6f}  traced == eager == reloaded: {same}")
        assert same, key
    print(f"graph: {len(graph.nodes)} nodes, ops {graph.op_counts()}")

    # atomic_write: a temporary file, fsync, then a rename (never half a file)
    atomic_write(os.path.join(args.out, "cnn_loss.json"), graph.to_json(indent=1))
    atomic_write(os.path.join(args.out, "cnn_loss.txt"), str(graph) + "\n")
    print(f"wrote {args.out}/cnn_loss.json and {args.out}/cnn_loss.txt")


if __name__ == "__main__":
    main()
