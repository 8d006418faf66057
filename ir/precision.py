"""The arithmetic a matrix product may use: ``float32`` (exact float32 products and sums) or
``bf16`` (operands rounded to bfloat16, to nearest even, products summed in float32: what
the CPU's AMX units and GPU tensor cores compute). A compile option, not a dtype: tensors,
weights and every other op stay float32.

Lowering builds each GEMM statement inside ``matmul_precision(...)``; the statement records
the precision it was built under (ir/kernel.Gemm.precision), so back ends read it from the
kernel IR and dumps show it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from .dtypes import DType, float32
from .errors import ConfigError

PRECISIONS = ("float32", "bf16")

_current: contextvars.ContextVar[str] = contextvars.ContextVar(
    "matmul_precision", default="float32"
)


def check_precision(value: str) -> str:
    """``value`` if it names a precision, else a ConfigError listing them."""
    if value not in PRECISIONS:
        raise ConfigError(f"matmul_precision must be one of {PRECISIONS}, got {value!r}")
    return value


def current_precision() -> str:
    return _current.get()


def bf16_products(dtype: DType, precision: str | None = None) -> bool:
    """Whether products of ``dtype`` operands are bf16 products under ``precision`` (the
    current one by default): only float32 operands are rounded; others keep their type."""
    return (precision or current_precision()) == "bf16" and dtype == float32


@contextmanager
def matmul_precision(value: str) -> Iterator[None]:
    token = _current.set(check_precision(value))
    try:
        yield
    finally:
        _current.reset(token)
