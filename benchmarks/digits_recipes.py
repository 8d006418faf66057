"""Test accuracy of the seed CNN on the offline 8x8 digits over several initialization /
shuffling seeds, for the demo's recipe and for the seed's own MNIST recipe.

    python benchmarks/digits_recipes.py [--seeds 8]

demo:  Adam 3e-3, batch 32, 20 epochs, all 1,438 training images (nncompile demo's default)
seed:  Adam 1e-3, batch 64, up to 60 epochs, validation_split 0.1 and EarlyStopping
       (patience 5, restore_best_weights): the primer's recipe, made for 28x28 MNIST
"""

from __future__ import annotations

import argparse

import numpy as np

import nncompile as nc
from nncompile import nn, optim
from nncompile.demo import seed_cnn


def run(recipe: str, seed: int, train, test) -> float:
    model = seed_cnn(train[0].shape[1:], seed)
    lr, batch = (3e-3, 32) if recipe == "demo" else (1e-3, 64)
    model.compile(optim.Adam(lr), "sparse_categorical_crossentropy", ["accuracy"])
    if recipe == "demo":
        model.fit(*train, batch_size=batch, epochs=20, verbose=0, seed=seed)
    else:
        stop = nn.EarlyStopping(patience=5, restore_best_weights=True)
        model.fit(
            *train,
            batch_size=batch,
            epochs=60,
            validation_split=0.1,
            verbose=0,
            seed=seed,
            callbacks=[stop],
        )
    return model.evaluate(*test)["accuracy"]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, default=8)
    args = p.parse_args()
    train, test = nc.data.load_digits()
    for recipe in ("demo", "seed"):
        accs = [run(recipe, s, train, test) for s in range(args.seeds)]
        print(
            f"{recipe:5s} test accuracy over {args.seeds} seeds: min {min(accs):.4f}, "
            f"mean {np.mean(accs):.4f}, max {max(accs):.4f}"
        )


if __name__ == "__main__":
    main()
