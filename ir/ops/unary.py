"""The unary elementwise ops, each declared once.

Every table that used to repeat these names (the OpDefs, the NumPy reference, the VJP
rules, lowering's element rules, the kernel IR's unary vocabulary, the libm lists of the
LLVM and CUDA back ends, simplify's and layout's unary set, roofline's flops) is built
from ``UNARY`` below. Adding a unary op means adding one ``UnaryOp`` here and, if users
call it, a function in ``nncompile/ops.py``.

This module imports neither the kernel IR nor the front end (both import ``ir.ops``), so
lowering and VJP rules receive those modules as their first argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# ---- float semantics every backend shares ---------------------------------------------------


def ieee_maximum(a: np.ndarray, b: Any) -> np.ndarray:
    """IEEE 754-2019 maximum: NaN propagates (as np.maximum) and -0 < +0."""
    out = np.maximum(a, b)
    if out.dtype.kind == "f":
        tie = (a == 0) & (b == 0)
        if np.any(tie):
            out = np.where(tie, a + b, out)  # +0 + -0 = +0; -0 + -0 = -0
    return out


def ieee_minimum(a: np.ndarray, b: Any) -> np.ndarray:
    """IEEE 754-2019 minimum: NaN propagates (as np.minimum) and -0 < +0."""
    out = np.minimum(a, b)
    if out.dtype.kind == "f":
        tie = (a == 0) & (b == 0)
        if np.any(tie):
            out = np.where(tie, -(-a - b), out)  # -0 unless both are +0
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Two branches so exp never overflows: e^-|x| is in (0, 1].
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _hardswish(x: np.ndarray) -> np.ndarray:
    # x * relu6(x + 3) / 6 in the order the kernel computes it. x + 3 is never -0, so the
    # clamp has no signed-zero tie and np.maximum / np.minimum agree with IEEE max / min.
    t = x.dtype.type
    return x * np.minimum(np.maximum(x + t(3), t(0)), t(6)) / t(6)


# ---- kernel-IR element rules for ops that are not one kernel unary op ----------------------
# ``k`` is the ir.kernel module; ``x`` the operand's element expression.


def _const(k: Any, value: int, d: Any) -> Any:
    # typed like lowering's const(): 0.0 for floats, 0 for ints, False for bools
    return k.Const(float(value) if d.is_float else bool(value) if d.is_bool else int(value), d)


def _relu_kernel(k: Any, x: Any) -> Any:
    return k.Binary("max", x, _const(k, 0, x.dtype), x.dtype)


def _reciprocal_kernel(k: Any, x: Any) -> Any:
    return k.Binary("div", _const(k, 1, x.dtype), x, x.dtype)


def _hardswish_kernel(k: Any, x: Any) -> Any:
    d = x.dtype
    shifted = k.Binary("add", x, _const(k, 3, d), d)
    relu6 = k.Binary("min", k.Binary("max", shifted, _const(k, 0, d), d), _const(k, 6, d), d)
    return k.Binary("div", k.Binary("mul", x, relu6, d), _const(k, 6, d), d)


# ---- VJP rules: ``nc`` is the nncompile.ops module; y is the forward output ----------------


def _hardswish_vjp(nc: Any, x: Any, y: Any, g: Any) -> Any:
    # PyTorch's hardswish_backward: 0 below -3, x/3 + 1/2 on [-3, 3], 1 above.
    return g * nc.where(x < -3, 0.0, nc.where(x <= 3, x / 3 + 0.5, 1.0))


def _arcsin_vjp(nc: Any, x: Any, y: Any, g: Any) -> Any:
    return g / nc.sqrt(1 - x * x)


def _arccos_vjp(nc: Any, x: Any, y: Any, g: Any) -> Any:
    return -g / nc.sqrt(1 - x * x)


def _arcsinh_vjp(nc: Any, x: Any, y: Any, g: Any) -> Any:
    return g / nc.sqrt(x * x + 1)


def _arccosh_vjp(nc: Any, x: Any, y: Any, g: Any) -> Any:
    return g / nc.sqrt(x * x - 1)


def _arctanh_vjp(nc: Any, x: Any, y: Any, g: Any) -> Any:
    return g / (1 - x * x)


@dataclass(frozen=True)
class UnaryOp:
    """One unary elementwise op.

    kinds: dtype kinds accepted (registry.require_kind). reference: the NumPy definition.
    vjp: ``(nc, x, y, g) -> cotangent``, or None for ops with no gradient (they must be in
    autodiff's NOT_DIFFERENTIABLE). kernel: the kernel IR's unary op name when the op is one
    kernel op, else a builder ``(kernel_module, x) -> Expr``. libm: the C (double) function
    the float kernel op calls (float32 appends ``f``); ``llvm_libm`` False where LLVM uses an
    intrinsic instead. flops: per output element, for the roofline.
    """

    name: str
    kinds: str
    reference: Callable[[np.ndarray], np.ndarray]
    vjp: Callable[..., Any] | None
    kernel: str | Callable[[Any, Any], Any]
    libm: str | None = None
    llvm_libm: bool = True
    flops: int = 1


UNARY: dict[str, UnaryOp] = {
    u.name: u
    for u in (
        UnaryOp("neg", "numeric", np.negative, lambda nc, x, y, g: -g, "neg"),
        UnaryOp("abs", "numeric", np.abs, lambda nc, x, y, g: g * nc.sign(x), "abs"),
        UnaryOp("sign", "numeric", np.sign, None, "sign"),
        UnaryOp(
            "relu",
            "numeric",
            lambda x: ieee_maximum(x, x.dtype.type(0)),
            lambda nc, x, y, g: nc.where(y > 0, g, 0),
            _relu_kernel,
        ),
        UnaryOp("exp", "float", np.exp, lambda nc, x, y, g: g * y, "exp", "exp"),
        UnaryOp("log", "float", np.log, lambda nc, x, y, g: g / x, "log", "log"),
        UnaryOp("sqrt", "float", np.sqrt, lambda nc, x, y, g: g / (y * 2), "sqrt", "sqrt", False),
        UnaryOp(
            "reciprocal",
            "float",
            lambda x: np.divide(x.dtype.type(1), x),
            lambda nc, x, y, g: -g * y * y,
            _reciprocal_kernel,
        ),
        UnaryOp("tanh", "float", np.tanh, lambda nc, x, y, g: g * (1 - y * y), "tanh", "tanh"),
        UnaryOp("sigmoid", "float", _sigmoid, lambda nc, x, y, g: g * y * (1 - y), "sigmoid"),
        UnaryOp(
            "erf",
            "float",
            lambda x: _erf(x).astype(x.dtype) if x.size else x.copy(),
            lambda nc, x, y, g: g * (2 / math.sqrt(math.pi)) * nc.exp(-(x * x)),
            "erf",
            "erf",
        ),
        UnaryOp("hardswish", "float", _hardswish, _hardswish_vjp, _hardswish_kernel, flops=5),
        # trigonometric and hyperbolic functions and their inverses (libm); flops as tanh's
        UnaryOp("sin", "float", np.sin, lambda nc, x, y, g: g * nc.cos(x), "sin", "sin"),
        UnaryOp("cos", "float", np.cos, lambda nc, x, y, g: -g * nc.sin(x), "cos", "cos"),
        UnaryOp("tan", "float", np.tan, lambda nc, x, y, g: g * (1 + y * y), "tan", "tan"),
        UnaryOp("arcsin", "float", np.arcsin, _arcsin_vjp, "asin", "asin"),
        UnaryOp("arccos", "float", np.arccos, _arccos_vjp, "acos", "acos"),
        UnaryOp("arctan", "float", np.arctan, lambda nc, x, y, g: g / (1 + x * x), "atan", "atan"),
        UnaryOp("sinh", "float", np.sinh, lambda nc, x, y, g: g * nc.cosh(x), "sinh", "sinh"),
        UnaryOp("cosh", "float", np.cosh, lambda nc, x, y, g: g * nc.sinh(x), "cosh", "cosh"),
        UnaryOp("arcsinh", "float", np.arcsinh, _arcsinh_vjp, "asinh", "asinh"),
        UnaryOp("arccosh", "float", np.arccosh, _arccosh_vjp, "acosh", "acosh"),
        UnaryOp("arctanh", "float", np.arctanh, _arctanh_vjp, "atanh", "atanh"),
        UnaryOp("logical_not", "bool", np.logical_not, None, "not"),
        # the kernel IR's and/or/xor/not are bitwise on ints
        UnaryOp("bitwise_not", "int", np.invert, None, "not"),
    )
}

# Kernel-IR unary ops: those graph ops map to one-to-one, plus floor (lowering's own use).
KERNEL_UNARY_OPS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [u.kernel for u in UNARY.values() if isinstance(u.kernel, str)]
        # kernel-only: floor (index arithmetic), round_bf16 (float32 -> the nearest bfloat16,
        # ties to even, as float32: the operands of matmul_precision="bf16" products)
        + ["floor", "round_bf16"]
    )
)
# kernel op -> C (double) function name, for the float kernel ops that call libm
LIBM: dict[str, str] = {
    u.kernel: u.libm for u in UNARY.values() if u.libm and isinstance(u.kernel, str)
}
# the subset LLVM calls in libm (the rest, sqrt, are LLVM intrinsics)
LLVM_LIBM: dict[str, str] = {
    u.kernel: u.libm for u in UNARY.values() if u.libm and u.llvm_libm and isinstance(u.kernel, str)
}


def unary_op(name: str) -> UnaryOp:
    """The declaration of ``name``; a KeyError that says so rather than a silent default."""
    try:
        return UNARY[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a declared unary op (ir/ops/unary.py)") from None
