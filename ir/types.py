"""Tensor types: a static shape and a dtype."""

from __future__ import annotations

from dataclasses import dataclass

from .dtypes import DType
from .dtypes import dtype as dtype_of
from .errors import ShapeError
from .symbolic import Dim

Shape = tuple[int, ...]  # an entry may also be a symbolic ``Dim`` (ir/symbolic.py)


MAX_DIM = 2**62  # keeps sizes and byte offsets inside int64 arithmetic


def check_shape(shape: object, what: str = "shape") -> Shape:
    """Validate a user- or file-provided shape: a sequence of non-negative ints."""
    if not isinstance(shape, (tuple, list)):
        raise ShapeError(f"{what} must be a tuple of ints, got {shape!r}")
    out = []
    for d in shape:
        if type(d) is Dim:  # the symbolic batch size (ir/symbolic.py)
            out.append(d)
            continue
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= MAX_DIM:
            raise ShapeError(
                f"{what} must hold non-negative ints (at most 2**62), got {tuple(shape)!r}"
            )
        out.append(int(d))
    return tuple(out)


@dataclass(frozen=True)
class TensorType:
    shape: Shape
    dtype: DType

    def __post_init__(self) -> None:
        # Accept anything dtype-like (np.float32, "float32") and any int sequence.
        if not isinstance(self.dtype, DType):
            object.__setattr__(self, "dtype", dtype_of(self.dtype))
        if type(self.shape) is not tuple:
            object.__setattr__(self, "shape", tuple(self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:  # (a Dim when the shape is symbolic)
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{self.dtype.name}[{','.join(map(str, self.shape))}]"
