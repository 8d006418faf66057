"""MNIST from its four IDX files (as distributed: ``train-images-idx3-ubyte.gz`` and so on,
compressed or not)."""

from __future__ import annotations

import os

import numpy as np

from ..ir.errors import DataError
from .idx import read_idx

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

Split = tuple[np.ndarray, np.ndarray]


def _find(folder: str, stem: str) -> str:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    raise DataError(f"MNIST file {stem}[.gz] not found in {folder!r}")


def _images(path: str, normalize: bool) -> np.ndarray:
    images = read_idx(path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 images (N, rows, cols), got {images.shape}")
    images = images[..., None]  # channels_last: (N, 28, 28, 1)
    return images.astype(np.float32) / np.float32(255) if normalize else images


def _labels(path: str, count: int) -> np.ndarray:
    labels = read_idx(path)
    if labels.ndim != 1:
        raise DataError(f"{path}: expected labels (N,), got shape {labels.shape}")
    if labels.shape[0] != count:
        raise DataError(f"{path}: {labels.shape[0]} labels for {count} images")
    if labels.size and labels.max() > 9:
        raise DataError(f"{path}: label {int(labels.max())} is not a digit")
    return labels.astype(np.int64)


def load_mnist(path: str | os.PathLike, normalize: bool = True) -> tuple[Split, Split]:
    """``((x_train, y_train), (x_test, y_test))`` from the IDX files in folder ``path``.
    Images are (N, 28, 28, 1), float32 in [0, 1] (uint8 with ``normalize=False``); labels
    are int64."""
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise DataError(f"MNIST folder {folder!r} does not exist")
    splits = []
    for part in ("train", "test"):
        images = _images(_find(folder, MNIST_FILES[f"{part}_images"]), normalize)
        labels = _labels(_find(folder, MNIST_FILES[f"{part}_labels"]), images.shape[0])
        splits.append((images, labels))
    return splits[0], splits[1]
