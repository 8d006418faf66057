"""``nncompile demo``: the primer's worked example end to end. The seed's Keras MNIST CNN
(Conv2D 32 3x3 relu -> MaxPool 2x2 -> Flatten -> Dense 64 relu -> Dense 10 softmax) is
trained with the compiled LLVM backend, then evaluated; the demo reports test accuracy,
macro precision / recall / F1, throughput, and the compiled training step's speedup over
the same step run eagerly on NumPy.

Default data: the 1,797 offline 8x8 digits (scikit-learn ships them). With ``--data DIR``
(the four MNIST IDX files) it is the seed's own run: Adam 1e-3, batch 64, 10 epochs,
validation_split 0.1 and early stopping.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import numpy as np

from . import data, distributed, metrics, nn, optim
from .argtypes import fraction, positive_float, positive_int
from .backends.cuda.emulator import emulating as emulating_cuda
from .nn.fitting import Trainer
from .visualize import draw_training_graph

# Defaults per dataset. The 8x8 digits are 1,438 training images: a larger step and more
# epochs (20 epochs, about a second in all) reach 97-98%; MNIST uses the seed's recipe.
DEFAULTS = {
    "digits": {"epochs": 20, "batch_size": 32, "lr": 3e-3, "validation_split": 0.0},
    "mnist": {"epochs": 10, "batch_size": 64, "lr": 1e-3, "validation_split": 0.1},
}


def seed_cnn(input_shape: tuple[int, ...], seed: int = 0) -> nn.Sequential:
    return nn.Sequential(
        [
            nn.Conv2D(32, (3, 3), activation="relu", input_shape=input_shape),
            nn.MaxPooling2D((2, 2)),
            nn.Flatten(),
            nn.Dense(64, activation="relu"),
            nn.Dense(10, activation="softmax"),
        ],
        name="seed_cnn",
        seed=seed,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="folder with the MNIST IDX files (default: offline 8x8 digits)")
    p.add_argument("--epochs", type=positive_int, help="epochs (digits: 20, MNIST: 10)")
    p.add_argument("--batch-size", type=positive_int, help="batch size (digits: 32, MNIST: 64)")
    p.add_argument(
        "--lr", type=positive_float, help="Adam learning rate (digits: 3e-3, MNIST: 1e-3)"
    )
    p.add_argument(
        "--validation-split", type=fraction, help="held out for early stopping (MNIST: 0.1)"
    )
    p.add_argument(
        "--limit", type=positive_int, help="use only the first N training and test images"
    )
    p.add_argument("--backend", default="llvm", choices=("llvm", "cuda", "numpy"))
    p.add_argument("--seed", type=int, default=0, help="initialization and shuffling seed")
    p.add_argument("--graph", default="seed_cnn_step.svg", help="picture of the training graph")
    p.add_argument("--no-graph", action="store_true", help="do not draw the training graph")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over MPI (under mpirun -n N): --batch-size rows per rank",
    )


def _step_times(model: nn.Sequential, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Median seconds of one training step, compiled and eager, on copies of the trained
    weights (the compiled step updates its inputs in place)."""
    compiled = model.trainer
    eager = Trainer(model, compiled.optimizer, compiled.loss, compiled.metrics, run_eagerly=True)

    def timer(trainer: Trainer, repeats: int) -> float:
        fn = trainer.function("train")
        params, frozen, opt_state, state, xb, yb, lr, key = trainer.step_arguments(x, y)
        samples = []
        for _ in range(repeats + 1):  # the first call warms up
            start = time.perf_counter()
            params, opt_state, state, _, _ = fn(params, frozen, opt_state, state, xb, yb, lr, key)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples[1:])

    return timer(compiled, 30), timer(eager, 3)


def run(args: argparse.Namespace) -> int:
    if not args.distributed:
        return _run(args)
    distributed.init()
    try:
        if distributed.is_primary():
            return _run(args)
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            return _run(args)  # the other ranks train and evaluate too, silently
    except Exception as e:  # the CLI would turn it into an exit code; the peers would wait
        if distributed.size() > 1:
            distributed.abort(f"rank {distributed.rank()}: {type(e).__name__}: {e}")
        raise


def _run(args: argparse.Namespace) -> int:
    name, (x_train, y_train), (x_test, y_test) = data.load_images(args.data, args.limit)
    settings = dict(DEFAULTS[name])
    for key in settings:
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    print(
        f"data: {name}, {len(x_train):,} training and {len(x_test):,} test images of "
        f"{x_train.shape[1:]}"
    )
    model = seed_cnn(x_train.shape[1:], args.seed)
    model.summary()
    model.compile(
        optimizer=optim.Adam(settings["lr"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", "precision", "recall", "f1"],
        backend=args.backend,
        distributed=args.distributed,
    )
    callbacks = []
    if settings["validation_split"]:
        callbacks.append(nn.EarlyStopping("val_loss", patience=2, restore_best_weights=True))
    batch = settings["batch_size"]
    if args.distributed:
        print(
            f"data-parallel: {distributed.size()} ranks x {batch} rows = global batch "
            f"{batch * distributed.size()}"
        )
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch,
        epochs=settings["epochs"],
        validation_split=settings["validation_split"],
        callbacks=callbacks,
        verbose=0 if args.quiet else 1,
        seed=args.seed,
    )
    train_seconds = time.perf_counter() - start
    trained = len(x_train) * (1 - settings["validation_split"])
    predictions = model.predict(x_test)  # compiles the inference graph; timed below
    start = time.perf_counter()
    predictions = model.predict(x_test)
    predict_seconds = time.perf_counter() - start
    scores = model.evaluate(x_test, y_test)
    cm = metrics.confusion_matrix(y_test, predictions, num_classes=10)

    shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
    print(f"\ntest ({len(x_test):,} images): {shown}")
    print("confusion matrix (rows: true digit, columns: predicted):")
    print("\n".join("  " + " ".join(f"{v:4d}" for v in row) for row in cm))
    epochs = len(history.epoch)
    fastest = min(history.epoch_seconds)
    print(
        f"training: {epochs} epochs in {train_seconds:.1f} s (first epoch includes compiling: "
        f"{history.epoch_seconds[0]:.2f} s; fastest {fastest:.2f} s = "
        f"{trained / fastest:,.0f} samples/s)"
    )
    print(f"inference: {len(x_test) / predict_seconds:,.0f} images/s (batches of 256)")
    idx = np.arange(min(batch, len(x_train)))
    compiled_s, eager_s = _step_times(model, x_train[idx], y_train[idx])
    backend = args.backend
    if backend == "cuda" and emulating_cuda():
        backend = "cuda, emulated on the CPU: its speed says nothing of a GPU's"
    print(
        f"training step, batch {len(idx)}: compiled ({backend}) {compiled_s * 1e3:.3f} ms, "
        f"eager (NumPy) {eager_s * 1e3:.2f} ms: {eager_s / compiled_s:.1f}x faster compiled"
    )
    if not args.no_graph and not args.distributed:  # (the picture is of the fused step)
        print(draw_training_graph(model, x_train[idx], y_train[idx], os.path.abspath(args.graph)))
    return 0
