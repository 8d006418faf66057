"""Tensor types: a static shape and a dtype."""

from __future__ import annotations

from dataclasses import dataclass

from .dtypes import DType
from .errors import ShapeError

Shape = tuple[int, ...]


def check_shape(shape: object, what: str = "shape") -> Shape:
    """Validate a user- or file-provided shape: a sequence of non-negative ints."""
    if not isinstance(shape, (tuple, list)):
        raise ShapeError(f"{what} must be a tuple of ints, got {shape!r}")
    out = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ShapeError(f"{what} must hold non-negative ints, got {tuple(shape)!r}")
        out.append(int(d))
    return tuple(out)


@dataclass(frozen=True)
class TensorType:
    shape: Shape
    dtype: DType

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{self.dtype.name}[{','.join(map(str, self.shape))}]"
