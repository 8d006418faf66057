"""Plain functions of nc ops, compiled, differentiated and drawn: a two-layer network's
loss, its gradient with nc.grad, a hand-written SGD loop compiled with nc.jit, and graph
pictures of every compilation stage with nc.viz.

    python examples/custom_function.py [--data DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import nncompile as nc
from nncompile import init
from nncompile.argtypes import positive_int


def loss_fn(params: dict, x: np.ndarray, y: np.ndarray) -> nc.Tensor:
    with nc.name_scope("hidden"):
        h = nc.tanh(x @ params["w1"] + params["b1"])
    with nc.name_scope("output"):
        logits = h @ params["w2"] + params["b2"]
    return nc.cross_entropy(logits, y)


grad_fn = nc.grad(loss_fn)  # d loss / d params, same structure as params


@nc.jit
def sgd_step(params: dict, x: np.ndarray, y: np.ndarray, lr: np.float32) -> tuple[dict, nc.Tensor]:
    loss, grads = nc.value_and_grad(loss_fn)(params, x, y)
    new = {k: params[k] - lr * grads[k] for k in params}
    return new, loss


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", help="folder with the MNIST IDX files (default: offline digits)")
    p.add_argument("--out", default="custom_function_graphs", help="folder for the pictures")
    p.add_argument("--steps", type=positive_int, default=300)
    args = p.parse_args()

    _, (x, y), (xt, yt) = nc.data.load_images(args.data)
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    rng = np.random.default_rng(0)
    params = {
        "w1": init.glorot_uniform((x.shape[1], 32), rng, layout="in_out"),
        "b1": np.zeros(32, np.float32),
        "w2": init.glorot_uniform((32, 10), rng, layout="in_out"),
        "b2": np.zeros(10, np.float32),
    }

    # The gradient three ways: eagerly, compiled, and by central finite differences.
    xb, yb = x[:32], y[:32]
    eager = grad_fn(params, xb, yb)
    compiled = nc.jit(grad_fn)(params, xb, yb)
    eps, i, j = 1e-3, 3, 5
    bumped = {k: v.copy() for k, v in params.items()}
    bumped["w2"][i, j] += eps
    up = float(loss_fn(bumped, xb, yb))
    bumped["w2"][i, j] -= 2 * eps
    numeric = (up - float(loss_fn(bumped, xb, yb))) / (2 * eps)
    print(
        f"d loss / d w2[{i},{j}]: eager {float(eager['w2'][i, j]):.6f}, compiled "
        f"{float(compiled['w2'][i, j]):.6f}, finite difference {numeric:.6f}"
    )

    lr = np.float32(0.5)
    for step in range(args.steps):
        idx = rng.integers(0, len(x), 64)
        params, loss = sgd_step(params, x[idx], y[idx], lr)
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:4d}: loss {float(loss):.4f}")
    logits = np.tanh(xt @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
    print(f"test accuracy: {(logits.argmax(1) == yt).mean():.4f}")

    os.makedirs(args.out, exist_ok=True)
    for stage in ("traced", "grad", "optimized", "fused"):
        path = nc.viz(
            loss_fn, params, xb, yb, path=os.path.join(args.out, f"{stage}.svg"), stage=stage
        )
        print(f"{stage:>9}: {path}")
    path = nc.viz(sgd_step.fn, params, xb, yb, lr, path=os.path.join(args.out, "sgd_step.svg"))
    print(f" sgd step: {path}")


if __name__ == "__main__":
    main()
