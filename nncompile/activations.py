"""Clamping and gated activations with PyTorch's forward and backward semantics.

All are composites of existing primitives, so they trace, differentiate and compile like
any other op. ``hardtanh`` and ``relu6`` are written with ``where`` rather than
``nc.clip``: clip passes the gradient at a bound (as ``torch.clamp``), while torch's
hardtanh backward is 0 wherever ``x <= min_val`` or ``x >= max_val``."""

from __future__ import annotations

import numpy as np

from .ir.errors import DTypeError, OpAttributeError
from .ops import ArrayLike, _float, greater_equal, less_equal, multiply, sigmoid, where
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor


def _bound(x: Tensor, value: float) -> float | Tensor:
    """A bound in x's dtype: integer tensors stay integer (as in torch), so an int bound
    does not promote them to float."""
    d = x._type.dtype
    if d.is_float:
        return float(value)
    return as_tensor(np.asarray(value).astype(d.np))


@reports_user_line
def hardtanh(x: ArrayLike, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """torch.nn.functional.hardtanh: values clamped to [min_val, max_val]; the gradient
    is 1 strictly inside and 0 at or beyond either bound. NaN stays NaN. Integer tensors
    keep their dtype (bounds are converted to it)."""
    x = as_tensor(x)
    if x._type.dtype.is_bool:
        raise DTypeError(f"hardtanh: needs a numeric tensor, got {x._type}")
    if not min_val <= max_val:
        raise OpAttributeError(
            f"hardtanh: min_val ({min_val}) must not be greater than max_val ({max_val})"
        )
    lo, hi = _bound(x, min_val), _bound(x, max_val)
    # x itself is selected only strictly inside, so the gradient is 0 at the bounds.
    return where(less_equal(x, lo), lo, where(greater_equal(x, hi), hi, x))


@reports_user_line
def relu6(x: ArrayLike) -> Tensor:
    """torch.nn.functional.relu6: hardtanh(x, 0, 6), with gradient 0 at x <= 0 and x >= 6."""
    return hardtanh(x, 0.0, 6.0)


@reports_user_line
def silu(x: ArrayLike) -> Tensor:
    """torch.nn.functional.silu (swish): x * sigmoid(x). Integers are cast to float32."""
    x = _float(x)
    return multiply(x, sigmoid(x))
