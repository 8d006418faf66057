"""A convolutional autoencoder on digit images: a Conv2D encoder squeezes each image to a
small code, a Conv2DTranspose / UpSampling2D decoder rebuilds it. Trained compiled to
reconstruct its input (binary cross-entropy per pixel); writes a PNG with test inputs on
the top row and their reconstructions below.

    python examples/conv_autoencoder.py                  # offline 8x8 digits
    python examples/conv_autoencoder.py --data DIR       # the four MNIST IDX files in DIR
"""

from __future__ import annotations

import argparse

import numpy as np

import nncompile as nc
from nncompile import nn, optim
from nncompile.argtypes import positive_int
from nncompile.png import image_grid, write_png


def autoencoder(input_shape: tuple[int, ...]) -> nn.Sequential:
    """(H, W, 1) -> (H/4, W/4, 8) code -> (H, W, 1); H and W divisible by 4."""
    return nn.Sequential(
        [
            nn.Conv2D(16, 3, padding="same", activation="relu", input_shape=input_shape),
            nn.MaxPooling2D(2),
            nn.Conv2D(8, 3, padding="same", activation="relu"),
            nn.MaxPooling2D(2, name="code"),
            nn.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),
            nn.UpSampling2D(2),
            nn.Conv2D(1, 3, padding="same", activation="sigmoid"),
        ],
        name="autoencoder",
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", help="folder with the MNIST IDX files (default: offline digits)")
    p.add_argument("--epochs", type=positive_int, help="default: 2 on MNIST, 40 on the digits")
    p.add_argument("--limit", type=positive_int, help="use only the first N images of each split")
    p.add_argument("--png", default="reconstructions.png", help="where to write the picture")
    args = p.parse_args()

    name, (x_train, _), (x_test, _) = nc.data.load_images(args.data, args.limit)
    height, width = x_train.shape[1:3]
    if height % 4 or width % 4:  # MNIST's 28 and the digits' 8 both divide
        raise SystemExit(f"images of {height}x{width}: both sides must be divisible by 4")
    epochs = args.epochs or (2 if name == "mnist" else 40)
    model = autoencoder(x_train.shape[1:])
    model.compile(optim.Adam(3e-3), "binary_crossentropy", metrics=["mse"])
    model.summary()
    history = model.fit(x_train, x_train, batch_size=64, epochs=epochs, verbose=2, seed=0)
    test = model.evaluate(x_test, x_test)
    baseline = float(np.mean((x_test - x_train.mean(axis=0)) ** 2))
    print(f"{name}: {history.timing()}")
    print(
        f"{name} test reconstruction: binary cross-entropy {test['loss']:.4f}, "
        f"mse {test['mse']:.4f} (predicting the mean training image: mse {baseline:.4f})"
    )
    shown = x_test[:10, :, :, 0]
    rebuilt = model.predict(x_test[:10])[:, :, :, 0]
    grid = image_grid(np.concatenate([shown, rebuilt]), columns=len(shown))
    zoom = max(1, 112 // height)  # small digits are drawn larger, pixel for pixel
    write_png(args.png, np.kron(grid, np.ones((zoom, zoom), grid.dtype)))
    print(f"wrote {args.png}: test inputs (top row) and their reconstructions (bottom row)")


if __name__ == "__main__":
    main()
