"""Data-parallel training written by hand, around compiled steps (nncompile.distributed).

    mpirun -n 2 python examples/data_parallel.py        (as root: mpirun --allow-run-as-root)

Every rank holds the same data and model; each takes its own rows of every global batch,
computes gradients with a compiled function, averages them over ranks with
``dist.allreduce`` and applies the same compiled optimizer update, so all ranks keep the
same weights. (Keras-style models do all of this with ``compile(..., distributed=True)``.)
Run without mpirun it is a world of one process.
"""

from __future__ import annotations

import numpy as np

import nncompile as nc
import nncompile.distributed as dist
from nncompile import optim

ROWS_PER_RANK = 32


def loss_fn(params: dict, x: nc.Tensor, y: nc.Tensor) -> nc.Tensor:
    return nc.mean((x @ params["w"] + params["b"] - y) ** 2)


def main() -> None:
    dist.init()
    rng = np.random.default_rng(0)  # the same data on every rank
    x = rng.normal(size=(1024, 8)).astype(np.float32)
    true_w = rng.normal(size=(8, 1)).astype(np.float32)
    y = x @ true_w + 0.5 + 0.01 * rng.normal(size=(1024, 1)).astype(np.float32)

    # rank 0's initial weights on every rank
    init = {"w": rng.normal(size=(8, 1)).astype(np.float32), "b": np.zeros(1, np.float32)}
    params = dist.broadcast(init, root=0)
    opt = optim.SGD(0.1, momentum=0.9)
    state = opt.init(params)
    gradient = nc.compile(nc.value_and_grad(loss_fn))
    update = nc.compile(lambda p, g, s: opt.update(p, g, s), donate_argnums=(0, 2))

    global_batch = ROWS_PER_RANK * dist.size()
    mine = slice(dist.rank() * ROWS_PER_RANK, (dist.rank() + 1) * ROWS_PER_RANK)
    for epoch in range(8):
        losses = []
        for start in range(0, len(x) - global_batch + 1, global_batch):
            rows = np.arange(start, start + global_batch)[mine]
            loss, grads = gradient(params, x[rows], y[rows])
            grads = dist.allreduce(grads)  # the mean over ranks: the global batch's gradient
            params, state = update(params, grads, state)
            losses.append(float(loss))
        mean_loss = dist.allreduce(float(np.mean(losses)))
        if dist.is_primary():
            print(f"epoch {epoch + 1}: loss {mean_loss:.5f}")
    checksum = float(np.sum(params["w"])) + float(params["b"][0])
    print(f"rank {dist.rank()} of {dist.size()}: weights checksum {checksum!r}")


if __name__ == "__main__":
    main()
