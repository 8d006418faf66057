"""Element types of the IR.

A ``DType`` is a small immutable record around a NumPy dtype; the IR stores DTypes,
users may pass anything NumPy understands (``np.float32``, ``"float32"``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DTypeError


@dataclass(frozen=True)
class DType:
    name: str
    kind: str  # "float" | "int" | "bool"
    itemsize: int

    @property
    def np(self) -> np.dtype:
        return np.dtype(self.name)

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_int(self) -> bool:
        return self.kind == "int"

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"

    @property
    def is_numeric(self) -> bool:
        """Arithmetic is defined (ints and floats; not bool)."""
        return self.kind in ("float", "int")

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"nc.{self.name}"


float32 = DType("float32", "float", 4)
float64 = DType("float64", "float", 8)
int32 = DType("int32", "int", 4)
int64 = DType("int64", "int", 8)
bool_ = DType("bool", "bool", 1)

ALL_DTYPES: tuple[DType, ...] = (float32, float64, int32, int64, bool_)
_BY_NAME = {d.name: d for d in ALL_DTYPES}

# Promotion order between tensors: the wider category wins, then the wider width.
# int64 with float32 gives float32 (as PyTorch does), so float32 models stay float32.
_RANK = {bool_: 0, int32: 1, int64: 2, float32: 3, float64: 4}

DEFAULT_FLOAT = float32
DEFAULT_INT = int64


def dtype(x: object) -> DType:
    """Normalize anything dtype-like to a DType, or raise DTypeError."""
    if isinstance(x, DType):
        return x
    try:
        name = np.dtype(x).name  # type: ignore[arg-type]
    except TypeError as e:
        raise DTypeError(f"not a dtype: {x!r}") from e
    if name not in _BY_NAME:
        supported = ", ".join(_BY_NAME)
        raise DTypeError(f"unsupported dtype {name}; nncompile supports {supported} (cast first)")
    return _BY_NAME[name]


def from_name(name: str) -> DType:
    if not isinstance(name, str) or name not in _BY_NAME:
        raise DTypeError(f"unknown dtype name {name!r}; expected one of {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def promote(*dtypes: DType) -> DType:
    """The common dtype of tensor operands."""
    return max(dtypes, key=_RANK.__getitem__)


def weak_scalar_dtype(value: bool | int | float, other: DType | None) -> DType:
    """The dtype a Python scalar takes next to a tensor of dtype ``other``.

    Python scalars are "weak": they adopt the tensor's dtype unless that would lose the
    scalar's category (a float next to an int tensor gives the default float).
    """
    if isinstance(value, bool):
        kind = bool_
    elif isinstance(value, int):
        kind = DEFAULT_INT
    elif isinstance(value, float):
        kind = DEFAULT_FLOAT
    else:
        raise DTypeError(f"not a Python scalar: {value!r}")
    if other is None:
        return kind
    if _RANK[kind] <= _RANK[other] or (kind.is_int and other.is_int):
        return other
    return kind
