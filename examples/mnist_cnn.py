"""The primer's worked example: the Keras MNIST CNN, written the Keras way and trained
through the compiler (LLVM backend).

    python examples/mnist_cnn.py                 # offline 8x8 digits (scikit-learn ships them)
    python examples/mnist_cnn.py --data DIR      # the four MNIST IDX files in DIR
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
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--limit", type=positive_int, help="use only the first N images of each split")
    p.add_argument("--save", help="save the trained model to this folder")
    args = p.parse_args()

    name, (x_train, y_train), (x_test, y_test) = nc.data.load_images(args.data, args.limit)
    model = nn.Sequential(
        [
            nn.Conv2D(32, (3, 3), activation="relu", input_shape=x_train.shape[1:]),
            nn.MaxPooling2D((2, 2)),
            nn.Flatten(),
            nn.Dense(64, activation="relu"),
            nn.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=optim.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", "precision", "recall", "f1"],
        backend="llvm",
    )
    model.summary()
    history = model.fit(
        x_train,
        y_train,
        batch_size=64,
        epochs=args.epochs,
        validation_split=0.1,
        callbacks=[nn.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)],
    )
    print(f"{name}: trained {len(history.epoch)} epochs")
    print("test:", {k: round(v, 4) for k, v in model.evaluate(x_test, y_test).items()})
    if args.save:
        model.save(args.save)
        restored = nn.load_model(args.save)
        same = (restored.predict(x_test) == model.predict(x_test)).all()
        print(f"saved to {args.save}; reloaded model predicts identically: {bool(same)}")


if __name__ == "__main__":
    main()
