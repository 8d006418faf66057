"""Datasets and data helpers: MNIST IDX files, the offline 8x8 digits, splits and batches."""

from .digits import load_digits
from .idx import parse_idx, read_idx, write_idx
from .mnist import load_mnist
from .split import batch_slices, split_tail, train_test_split

__all__ = [
    "batch_slices",
    "load_digits",
    "load_mnist",
    "parse_idx",
    "read_idx",
    "split_tail",
    "train_test_split",
    "write_idx",
]
