"""An LSTM (or GRU) classifier that reads each digit image row by row, as a sequence:
an image of H rows and W columns is H time steps of W features.

    python examples/rnn_sequence.py [--cell gru] [--data DIR]
"""

from __future__ import annotations

import argparse

import nncompile as nc
from nncompile import nn, optim
from nncompile.argtypes import positive_int


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", help="folder with the MNIST IDX files (default: offline digits)")
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    p.add_argument("--units", type=positive_int, default=64)
    p.add_argument("--epochs", type=positive_int, help="default: 2 on MNIST, 30 on the 8x8 digits")
    p.add_argument("--limit", type=positive_int, help="use only the first N images of each split")
    args = p.parse_args()

    name, (x_train, y_train), (x_test, y_test) = nc.data.load_images(args.data, args.limit)
    rows, cols = x_train.shape[1:3]
    x_train, x_test = x_train.reshape(-1, rows, cols), x_test.reshape(-1, rows, cols)
    epochs = args.epochs or (2 if name == "mnist" else 30)
    cell = {"lstm": nn.LSTM, "gru": nn.GRU}[args.cell]
    model = nn.Sequential(
        [cell(args.units, input_shape=(rows, cols)), nn.Dense(10, activation="softmax")]
    )
    model.compile(
        optim.Adam(1e-3 if name == "mnist" else 1e-2),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.summary()
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=2, seed=0)
    print(f"{name} test:", {k: round(v, 4) for k, v in model.evaluate(x_test, y_test).items()})


if __name__ == "__main__":
    main()
