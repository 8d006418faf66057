"""Datasets and data helpers: MNIST IDX files, the offline 8x8 digits, splits and batches."""

from ..ir.errors import ConfigError
from .digits import load_digits
from .idx import parse_idx, read_idx, write_idx
from .mnist import load_mnist
from .split import batch_slices, split_tail, train_test_split

__all__ = [
    "batch_slices",
    "load_images",
    "load_digits",
    "load_mnist",
    "parse_idx",
    "read_idx",
    "split_tail",
    "train_test_split",
    "write_idx",
]


def load_images(path: str | None = None, limit: int | None = None):
    """MNIST from the IDX files in ``path``, or the offline 8x8 digits when ``path`` is None;
    ``limit`` keeps the first N training and test samples. Returns (name, train, test)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer (or None for all), got {limit!r}")
    if path:
        name, (train, test) = "mnist", load_mnist(path)
    else:
        name, (train, test) = "digits", load_digits()
    if limit is not None:
        train, test = (tuple(a[:limit] for a in part) for part in (train, test))
    return name, train, test
