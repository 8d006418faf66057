"""The program the MPI tests launch (``mpirun -n 2 python mpi_worker.py OUT SCENARIO``),
and the models and data they share with the one-process references in the tests.

Each rank writes what it saw to ``OUT/rank<r>.npz``; the tests compare the ranks with
each other and with one process training on the global batch.
"""

from __future__ import annotations

import os
import sys

import numpy as np

import nncompile as nc
from nncompile import nn, optim

PER_RANK_BATCH = 32
EPOCHS = 2
# rows: 300 leaves a ragged last global batch (rank 0: 32 rows, rank 1: 12);
# 280 leaves rank 1 no rows at all in the last step
FIT_CASES = {
    "sgd_ordered": ("sgd", False, 300),
    "sgd_shuffled": ("sgd", True, 280),
    "adam_ordered": ("adam", False, 280),
    "adam_shuffled": ("adam", True, 300),
}


def data(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, 12)).astype(np.float32)
    y = (x[:, :4].argmax(axis=1) + (x[:, 5] > 1.0)) % 4
    return x, y.astype(np.int64)


def optimizer(name: str, lr: float | None = None) -> optim.Optimizer:
    if name == "sgd":
        return optim.SGD(0.1 if lr is None else lr, momentum=0.9)
    return optim.Adam(1e-2 if lr is None else lr)


def mlp() -> nn.Sequential:
    return nn.Sequential(
        [nn.Dense(16, activation="tanh", input_shape=(12,)), nn.Dense(4, activation="softmax")],
        seed=1,
    )


def batch_norm_model() -> nn.Sequential:
    """Batch normalization first, on the data: its statistics do not depend on weights."""
    return nn.Sequential(
        [
            nn.BatchNormalization(momentum=0.5, input_shape=(12,)),
            nn.Dense(4, activation="softmax"),
        ],
        seed=2,
    )


def time_distributed_batch_norm_model() -> nn.Sequential:
    """The same through a wrapper: its state lives under the wrapper's name, and the
    layer sees batch * time rows."""
    return nn.Sequential(
        [
            nn.Reshape((3, 4), input_shape=(12,)),
            nn.TimeDistributed(nn.BatchNormalization(momentum=0.5)),
            nn.Flatten(),
            nn.Dense(4, activation="softmax"),
        ],
        seed=3,
    )


BATCH_NORM_MODELS = {"bn": batch_norm_model, "bn_wrapped": time_distributed_batch_norm_model}


def compiled(model: nn.Sequential, opt: optim.Optimizer, distributed: bool) -> nn.Sequential:
    model.compile(
        optimizer=opt,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", "f1"],
        distributed=distributed,
    )
    return model


def fit_cases(results: dict) -> None:
    for name, (opt, shuffle, rows) in FIT_CASES.items():
        x, y = data(rows)
        model = compiled(mlp(), optimizer(opt), True)
        history = model.fit(
            x, y, batch_size=PER_RANK_BATCH, epochs=EPOCHS, shuffle=shuffle, seed=7, verbose=0
        )
        for i, w in enumerate(model.get_weights()):
            results[f"{name}/w{i}"] = w
        for key, values in history.history.items():
            results[f"{name}/history/{key}"] = np.array(values)
        for key, value in model.evaluate(x, y, batch_size=50).items():
            results[f"{name}/eval/{key}"] = np.array(value)
        results[f"{name}/compiles"] = np.array(model.compile_count)


def batch_norm_case(results: dict) -> None:
    x, y = data(300)
    for name, build in BATCH_NORM_MODELS.items():
        model = compiled(build(), optimizer("sgd", lr=0.0), True)
        model.fit(x, y, batch_size=PER_RANK_BATCH, epochs=1, shuffle=False, verbose=0)
        for i, array in enumerate(model.get_weights()):
            results[f"{name}/w{i}"] = array


def early_stopping_fit(distributed: bool, batch_size: int):
    """Validation split and early stopping: validation runs split across ranks, and every
    rank sees the same val_loss, so all stop (and restore) at the same epoch."""
    x, y = data(300)
    model = compiled(mlp(), optimizer("adam", lr=0.05), distributed)
    stop = nn.EarlyStopping("val_loss", patience=1, restore_best_weights=True)
    fit = {"epochs": 10, "validation_split": 0.3, "shuffle": True, "seed": 3, "verbose": 0}
    history = model.fit(x, y, batch_size=batch_size, callbacks=[stop], **fit)
    return model, history.history


def early_stopping_case(results: dict) -> None:
    model, history = early_stopping_fit(True, PER_RANK_BATCH)
    results["early/val_loss"] = np.array(history["val_loss"])
    for i, w in enumerate(model.get_weights()):
        results[f"early/w{i}"] = w


def checkpoint_case(results: dict, out: str) -> None:
    x, y = data(100)
    model = compiled(mlp(), optimizer("adam"), True)
    path = os.path.join(out, f"checkpoint-written-by-rank{nc.distributed.rank()}")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[nn.ModelCheckpoint(path)])


def collectives_case(results: dict) -> None:
    dist = nc.distributed
    r = dist.rank()
    tree = {"a": np.full((3, 2), r + 1.0, np.float32), "b": [np.arange(4) * (r + 1), 2.5 * r]}
    for op in ("sum", "max", "min"):
        out = dist.allreduce(tree, op=op)
        results[f"allreduce_{op}/a"], results[f"allreduce_{op}/b0"] = out["a"], out["b"][0]
        results[f"allreduce_{op}/b1"] = np.array(out["b"][1])
    mean = dist.allreduce({"a": tree["a"]})
    results["allreduce_mean/a"] = mean["a"]
    results["broadcast/a"] = dist.broadcast(tree, root=1)["a"]
    try:  # rank 1 passes a differently shaped tree: every rank must raise
        dist.allreduce({"a": np.zeros(3 + r, np.float32)}, op="sum")
        results["mismatch_raised"] = np.array(False)
    except nc.DistributedError:
        results["mismatch_raised"] = np.array(True)


def failure_case(results: dict) -> None:
    """Rank 1's loss raises while its step is being traced: both ranks must raise
    DistributedError naming rank 1, and keep the weights they had before the epoch."""

    def loss(y_true, y_pred):
        if nc.distributed.rank() == 1:
            raise ValueError("this loss refuses rank 1")
        return nc.losses.sparse_categorical_crossentropy(y_true, y_pred)

    x, y = data(100)
    model = mlp()
    model.compile(optimizer=optimizer("adam"), loss=loss, distributed=True)
    before = model.get_weights()
    try:
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        results["failure/message"] = np.array("")
    except nc.DistributedError as e:
        results["failure/message"] = np.array(str(e))
    after = model.get_weights()
    results["failure/unchanged"] = np.array(
        all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    )


def main(out: str, scenario: str) -> None:
    nc.distributed.init()
    results: dict = {"size": np.array(nc.distributed.size())}
    if scenario == "all":
        fit_cases(results)
        batch_norm_case(results)
        early_stopping_case(results)
        checkpoint_case(results, out)
        collectives_case(results)
        failure_case(results)
    elif scenario == "fit":
        fit_cases(results)
    elif scenario == "uncaught":  # rank 1 raises outside any collective
        if nc.distributed.rank() == 1:
            raise RuntimeError("rank 1 gives up")
        nc.distributed.barrier()
    elif scenario == "absent":  # rank 1 never comes to the collective
        if nc.distributed.rank() == 0:
            nc.distributed.allreduce({"a": np.ones(2)})
        else:
            import time

            time.sleep(120)
    np.savez(os.path.join(out, f"rank{nc.distributed.rank()}.npz"), **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
