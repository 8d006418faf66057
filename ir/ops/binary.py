"""The binary elementwise ops, each declared once.

The OpDefs, the NumPy reference, the VJP rules, lowering's element rules and roofline's
flops are built from ``BINARY`` below (as ``unary.py`` does for unary ops).

This module imports neither the kernel IR nor the front end (both import ``ir.ops``), so
kernel builders receive the kernel IR module and VJP rules the ops module as their first
argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .unary import ieee_maximum, ieee_minimum


def saturating_cast(x: np.ndarray, to: np.dtype) -> np.ndarray:
    """``x.astype(to)``, except that a float -> int cast saturates as LLVM's fptosi.sat (and
    Rust, Java, CUDA's cvt.rzi) do: NaN gives 0, values beyond the range the nearest bound."""
    to = np.dtype(to)
    if x.dtype.kind != "f" or to.kind != "i":
        return x.astype(to)
    info = np.iinfo(to)
    bound = float(2 ** (info.bits - 1))  # a power of two: exact in every float format
    high, low = x >= bound, x < -bound
    inside = np.where(high | low | np.isnan(x), 0, x).astype(to)
    return np.where(high, info.max, np.where(low, info.min, inside)).astype(to)


def _trunc_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division rounding toward zero (ONNX Div); x / 0 gives 0 as in NumPy."""
    q = np.floor_divide(a, b)
    inexact = (q < 0) & (q * b != a)
    return np.where(inexact, q + 1, q).astype(q.dtype)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _trunc_divide(a, b) if a.dtype.kind in "iu" else np.divide(a, b)


def _pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        return np.power(a, b.astype(a.dtype))
    # Integer base: exact integer powers where the exponent is a non-negative integer,
    # float64 (truncated back) otherwise, so 2 ** -1 == 0 instead of a NumPy error.
    if b.dtype.kind in "iu":
        exact = np.power(a, np.maximum(b, 0).astype(a.dtype))
        if not (b < 0).any():
            return exact
        inexact = np.power(a.astype(np.float64), b.astype(np.float64))
        return np.where(b >= 0, exact, saturating_cast(inexact, a.dtype))
    return saturating_cast(np.power(a.astype(np.float64), b.astype(np.float64)), a.dtype)


# ---- kernel-IR element rules for ops that are not one kernel binary op ----------------------
# ``k`` is the ir.kernel module; ``a``/``b`` the operands' element expressions; ``d`` the
# output dtype.


def _div_kernel(k: Any, a: Any, b: Any, d: Any) -> Any:
    return k.Binary("div" if d.is_float else "idiv", a, b, d)


def _pow_kernel(k: Any, a: Any, b: Any, d: Any) -> Any:
    # the exponent may have another dtype (ONNX Pow); integer pow goes through float64
    if b.dtype != d:
        b = k.Cast(b, d)
    if d.is_float:
        return k.Binary("pow", a, b, d)
    f64 = k.dt.float64
    return k.Cast(k.Binary("pow", k.Cast(a, f64), k.Cast(b, f64), f64), d)


# ---- VJP rules: ``nc`` is the nncompile.ops module; y is the forward output ----------------
# Each is a pair (cotangent of a, cotangent of b) before undoing broadcasting.


def _pow_base(nc: Any, a: Any, b: Any, y: Any, g: Any) -> Any:
    return g * nc.where(b == 0, 0, b * nc.power(a, b - 1))


def _pow_exponent(nc: Any, a: Any, b: Any, y: Any, g: Any) -> Any:
    # d/db a^b = a^b log a; PyTorch defines it as 0 where a == 0 and b >= 0.
    return g * nc.where(nc.logical_and(a == 0, b >= 0), 0, y * nc.log(a))


def _max_share(nc: Any, a: Any, b: Any, g: Any) -> Any:
    # Ties split the gradient in half, as PyTorch does for maximum/minimum.
    return nc.where(a == b, g * 0.5, g)


_MAXIMUM_VJP = (
    lambda nc, a, b, y, g: nc.where(a < b, 0, _max_share(nc, a, b, g)),
    lambda nc, a, b, y, g: nc.where(b < a, 0, _max_share(nc, a, b, g)),
)
_MINIMUM_VJP = (
    lambda nc, a, b, y, g: nc.where(a > b, 0, _max_share(nc, a, b, g)),
    lambda nc, a, b, y, g: nc.where(b > a, 0, _max_share(nc, a, b, g)),
)


@dataclass(frozen=True)
class BinaryOp:
    """One binary elementwise op.

    kinds: dtype kinds accepted (registry.require_kind); None for pow, whose operands may
    differ in dtype (its own inference). result_bool: comparisons return bool.
    reference: the NumPy definition. kernel: the kernel IR's binary op name when the op is
    one kernel op, else a builder ``(kernel_module, a, b, dtype) -> Expr``. vjp:
    ``((nc, a, b, y, g) -> da, (nc, a, b, y, g) -> db)``, or None for ops with no gradient
    (they must be in autodiff's NOT_DIFFERENTIABLE). unit: the constant that leaves the
    other operand unchanged on the right (simplify drops it); ``left_unit`` when it does on
    the left too. flops: per output element, for the roofline.
    """

    name: str
    kinds: str | None
    reference: Callable[[np.ndarray, np.ndarray], np.ndarray]
    kernel: str | Callable[[Any, Any, Any, Any], Any]
    vjp: tuple[Callable[..., Any], Callable[..., Any]] | None = None
    result_bool: bool = False
    unit: int | None = None
    left_unit: bool = False
    flops: int = 1


def _cmp(name: str, kinds: str, reference: Callable, kernel: str) -> BinaryOp:
    return BinaryOp(name, kinds, reference, kernel, result_bool=True)


BINARY: dict[str, BinaryOp] = {
    b.name: b
    for b in (
        BinaryOp(
            "add",
            "numeric",
            np.add,
            "add",
            (lambda nc, a, b, y, g: g, lambda nc, a, b, y, g: g),
            unit=0,
            left_unit=True,
        ),
        BinaryOp(
            "sub",
            "numeric",
            np.subtract,
            "sub",
            (lambda nc, a, b, y, g: g, lambda nc, a, b, y, g: -g),
            unit=0,
        ),
        BinaryOp(
            "mul",
            "numeric",
            np.multiply,
            "mul",
            (lambda nc, a, b, y, g: g * b, lambda nc, a, b, y, g: g * a),
            unit=1,
            left_unit=True,
        ),
        BinaryOp(
            "div",
            "numeric",
            _divide,
            _div_kernel,
            (lambda nc, a, b, y, g: g / b, lambda nc, a, b, y, g: -g * y / b),
            unit=1,
        ),
        BinaryOp("maximum", "numeric", ieee_maximum, "max", _MAXIMUM_VJP),
        BinaryOp("minimum", "numeric", ieee_minimum, "min", _MINIMUM_VJP),
        BinaryOp("pow", None, _pow, _pow_kernel, (_pow_base, _pow_exponent), unit=1),
        BinaryOp("logical_and", "bool", np.logical_and, "and"),
        BinaryOp("logical_or", "bool", np.logical_or, "or"),
        BinaryOp("logical_xor", "bool", np.logical_xor, "xor"),
        # the kernel IR's and/or/xor are bitwise on ints (two's complement, ints only)
        BinaryOp("bitwise_and", "int", np.bitwise_and, "and"),
        BinaryOp("bitwise_or", "int", np.bitwise_or, "or"),
        BinaryOp("bitwise_xor", "int", np.bitwise_xor, "xor"),
        _cmp("equal", "any", np.equal, "eq"),
        _cmp("not_equal", "any", np.not_equal, "ne"),
        _cmp("less", "numeric", np.less, "lt"),
        _cmp("less_equal", "numeric", np.less_equal, "le"),
        _cmp("greater", "numeric", np.greater, "gt"),
        _cmp("greater_equal", "numeric", np.greater_equal, "ge"),
    )
}


# Kernel-IR binary ops: those graph ops map to one-to-one, plus the ones div/pow's builders
# and lowering's index arithmetic use.
KERNEL_BINARY_OPS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [b.kernel for b in BINARY.values() if isinstance(b.kernel, str) and not b.result_bool]
        + ["div", "idiv", "mod", "pow", "shl", "lshr"]
    )
)
# Kernel-IR comparisons (bool results)
KERNEL_COMPARE_OPS: tuple[str, ...] = tuple(
    dict.fromkeys(b.kernel for b in BINARY.values() if b.result_bool and isinstance(b.kernel, str))
)


def binary_op(name: str) -> BinaryOp:
    """The declaration of ``name``; a KeyError that says so rather than a silent default."""
    try:
        return BINARY[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a declared binary op (ir/ops/binary.py)") from None
