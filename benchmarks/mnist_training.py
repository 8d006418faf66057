"""Real-MNIST training runs for the model targets (issue #7), measured, with PyTorch as
the same-machine peer.

    python benchmarks/mnist_training.py --model cnn --epochs 10 [--eager-epochs 1] [--vs torch]
    python benchmarks/mnist_training.py --model lstm --epochs 2 --vs torch

cnn is the seed's Keras model (Conv2D 32 3x3 relu, MaxPool 2x2, Flatten, Dense 64 relu,
Dense 10 softmax; Adam 1e-3, batch 64, validation_split 0.1); lstm is LSTM(64) over the
28 image rows, then Dense 10 softmax. Per epoch it prints seconds (training plus
validation), validation and test accuracy. --eager-epochs times whole epochs of the same
model run eagerly on NumPy (run_eagerly=True). The PyTorch model has the same
architecture, Keras' initialization and Adam settings, threads and data order policy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import nncompile as nc
from nncompile import nn, optim

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "mnist")


def build(kind: str, seed: int) -> nn.Sequential:
    if kind == "cnn":
        layers = [
            nn.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
            nn.MaxPooling2D((2, 2)),
            nn.Flatten(),
            nn.Dense(64, activation="relu"),
            nn.Dense(10, activation="softmax"),
        ]
    else:
        layers = [nn.LSTM(64, input_shape=(28, 28)), nn.Dense(10, activation="softmax")]
    return nn.Sequential(layers, seed=seed)


class TestAccuracy(nn.Callback):
    def __init__(self, x, y):
        self.x, self.y, self.values = x, y, []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(self.model.evaluate(self.x, self.y)["accuracy"])


def run_nncompile(args, train, test, eager: bool, epochs: int) -> None:
    model = build(args.model, args.seed)
    model.compile(
        optimizer=optim.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        run_eagerly=eager,
        threads=args.threads,
        matmul_precision=None if eager else args.matmul_precision,
    )
    test_acc = TestAccuracy(*test)
    history = model.fit(
        *train,
        batch_size=64,
        epochs=epochs,
        validation_split=0.1,
        verbose=0,
        seed=args.seed,
        callbacks=[test_acc],
    )
    label = "nncompile eager (NumPy)" if eager else "nncompile compiled (llvm)"
    if not eager and args.matmul_precision != "float32":
        label += f", {args.matmul_precision} matmuls"
    for e, (sec, val, acc) in enumerate(
        zip(history.epoch_seconds, history.history["val_accuracy"], test_acc.values, strict=True)
    ):
        print(f"{label:28s} epoch {e + 1:2d}: {sec:7.2f} s  val_acc {val:.4f}  test_acc {acc:.4f}")
    sys.stdout.flush()


def run_torch(args, train, test, epochs: int) -> None:
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads or os.cpu_count())
    if args.model == "cnn":
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(5408, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 10),
        )
        to_x = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # noqa: E731
    else:

        class RowLSTM(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = torch.nn.LSTM(28, 64, batch_first=True)
                self.out = torch.nn.Linear(64, 10)

            def forward(self, x):
                return self.out(self.lstm(x)[0][:, -1])

        model = RowLSTM()
        to_x = lambda x: torch.from_numpy(np.ascontiguousarray(x[..., 0]))  # noqa: E731
    for name, p in model.named_parameters():  # Keras' initialization
        if "bias" in name:
            torch.nn.init.zeros_(p)
            if "lstm" in name and "ih" in name:
                p.data[64:128] = 1.0  # unit_forget_bias
        elif "weight_hh" in name:
            torch.nn.init.orthogonal_(p)
        else:
            torch.nn.init.xavier_uniform_(p)
    # the Flatten order differs (NCHW vs NHWC), which does not matter for a fresh model
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = train
    cut = len(x) - len(x) // 10
    xt, yt = to_x(x[:cut]), torch.from_numpy(y[:cut])
    xv, yv = to_x(x[cut:]), torch.from_numpy(y[cut:])
    xte, yte = to_x(test[0]), torch.from_numpy(test[1])
    rng = np.random.default_rng(args.seed)

    def accuracy(xs, ys):
        with torch.no_grad():
            return float((model(xs).argmax(1) == ys).float().mean())

    for e in range(epochs):
        start = time.perf_counter()
        order = torch.from_numpy(rng.permutation(cut))
        for i in range(0, cut, 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        val = accuracy(xv, yv)
        sec = time.perf_counter() - start
        print(
            f"{'PyTorch eager':28s} epoch {e + 1:2d}: {sec:7.2f} s  val_acc {val:.4f}  "
            f"test_acc {accuracy(xte, yte):.4f}"
        )
        sys.stdout.flush()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", choices=("cnn", "lstm"), default="cnn")
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--eager-epochs", type=int, default=0)
    p.add_argument("--vs", choices=("torch",))
    p.add_argument("--threads", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--matmul-precision", choices=("float32", "bf16"), default="float32")
    args = p.parse_args()
    (x, y), test = nc.data.load_mnist(args.data)
    if args.model == "lstm":
        x, test = x[..., 0], (test[0][..., 0], test[1])
    run_nncompile(args, (x, y), test, eager=False, epochs=args.epochs)
    if args.eager_epochs:
        run_nncompile(args, (x, y), test, eager=True, epochs=args.eager_epochs)
    if args.vs == "torch":
        if args.model == "lstm":
            test = (test[0][..., None], test[1])
            x = x[..., None]
        run_torch(args, (x, y), test, args.epochs)


if __name__ == "__main__":
    main()
