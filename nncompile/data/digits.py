"""The offline default dataset: the 1,797 real 8x8 handwritten digits (UCI) that
scikit-learn ships inside its wheel, shaped like images."""

from __future__ import annotations

import numpy as np

from ..ir.errors import MissingDependencyError
from .split import train_test_split


def load_digits(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))``: images (N, 8, 8, 1) float32 in [0, 1],
    labels int64; a stratified split with a fixed seed (1,438 / 359 by default)."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise MissingDependencyError(
            "load_digits() reads the UCI digits that scikit-learn ships; install it with "
            "`pip install 'nncompile[examples]'` (or pass MNIST files with load_mnist(DIR))"
        ) from None
    digits = sklearn_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    return train_test_split(images, digits.target.astype(np.int64), test_fraction, seed)
