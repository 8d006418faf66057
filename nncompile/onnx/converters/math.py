"""Elementwise ONNX ops: unary math and activations, numpy-broadcasting binary and
variadic ops, comparisons, logic, bitwise ops and shifts, Where, Cast. Output dtypes
follow ONNX exactly: nc's promotion (ints to float32 for float-only ops) is never relied
on."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np

import nncompile as nc

from ...errors import DTypeError
from ...ir.registry import broadcasts_to
from ..narrow import container_of
from ..registry import NodeContext, converter
from ..tensors import COMPUTE_DTYPES, numpy_dtype
from .shape import invalid

FLOAT_MAX = float(np.finfo(np.float32).max)


def dtype_of(x: Any) -> np.dtype:
    return np.dtype(x.dtype)


def const(value: Any, like: Any) -> np.ndarray:
    """``value`` as an array of ``like``'s dtype (so no op promotes ``like``)."""
    return np.asarray(value, dtype=dtype_of(like))


def float_input(ctx: NodeContext, i: int = 0) -> Any:
    """Input ``i`` of an op ONNX defines on floats only; anything else is refused, never
    computed in float32 and cast back."""
    x = ctx.input(i)
    if dtype_of(x).kind != "f":
        ctx.unsupported(f"input {i} has dtype {dtype_of(x)}; this op is computed on floats only")
    return x


def same_dtype(ctx: NodeContext, xs: list[Any]) -> list[Any]:
    """Inputs ONNX types with one T must agree; a mismatch is a model ONNX rejects."""
    kinds = {dtype_of(x) for x in xs}
    if len(kinds) > 1:
        raise DTypeError(
            f"ONNX node {ctx.name!r} ({ctx.op_type}, opset {ctx.opset}): inputs have "
            f"different dtypes {sorted(map(str, kinds))}"
        )
    return xs


# -- unary ---------------------------------------------------------------------------------

_FLOAT_UNARY: dict[str, Callable[[Any], Any]] = {
    "Exp": nc.exp,
    "Log": nc.log,
    "Sqrt": nc.sqrt,
    "Reciprocal": nc.reciprocal,
    "Sigmoid": nc.sigmoid,
    "Tanh": nc.tanh,
    "Erf": nc.erf,
    "HardSwish": nc.hardswish,
    "Softsign": lambda x: nc.divide(x, nc.add(const(1, x), nc.abs(x))),
    # log(1 + exp(x)); nc's threshold (x > 20 gives x) is exact in float32 and off by
    # exp(-x) < 2.1e-9 (relative 1e-10) in float64
    "Softplus": nc.softplus,
    "Mish": lambda x: nc.multiply(x, nc.tanh(nc.softplus(x))),
    # trigonometric and hyperbolic functions and their inverses, on nc's libm-backed ops
    "Sin": nc.sin,
    "Cos": nc.cos,
    "Tan": nc.tan,
    "Asin": nc.arcsin,
    "Acos": nc.arccos,
    "Atan": nc.arctan,
    "Sinh": nc.sinh,
    "Cosh": nc.cosh,
    "Asinh": nc.arcsinh,
    "Acosh": nc.arccosh,
    "Atanh": nc.arctanh,
}
_NUMERIC_UNARY: dict[str, Callable[[Any], Any]] = {
    "Abs": nc.abs,
    "Neg": nc.negative,
    "Relu": nc.relu,
    "Sign": nc.sign,
}


@converter(*_FLOAT_UNARY)
def float_unary(ctx: NodeContext) -> list[Any]:
    return [_FLOAT_UNARY[ctx.op_type](float_input(ctx))]


@converter(*_NUMERIC_UNARY)
def numeric_unary(ctx: NodeContext) -> list[Any]:
    return [_NUMERIC_UNARY[ctx.op_type](ctx.input(0))]


@converter("LeakyRelu")
def leaky_relu(ctx: NodeContext) -> list[Any]:
    x = float_input(ctx)
    return [nc.where(nc.less(x, const(0, x)), nc.multiply(x, const(ctx.attr("alpha", 0.01), x)), x)]


def _elu(x: Any, alpha: float) -> Any:
    """x if x > 0 else alpha * (exp(x) - 1) (ONNX Elu; Selu scales it)."""
    neg = nc.multiply(const(alpha, x), nc.subtract(nc.exp(x), const(1, x)))
    return nc.where(nc.greater(x, const(0, x)), x, neg)


@converter("Elu")
def elu(ctx: NodeContext) -> list[Any]:
    return [_elu(float_input(ctx), ctx.attr("alpha", 1.0))]


@converter("Selu")
def selu(ctx: NodeContext) -> list[Any]:
    x = float_input(ctx)
    alpha = ctx.attr("alpha", 1.67326319217681884765625)
    gamma = ctx.attr("gamma", 1.05070102214813232421875)
    return [nc.multiply(const(gamma, x), _elu(x, alpha))]


@converter("Celu", since=12)
def celu(ctx: NodeContext) -> list[Any]:
    x = float_input(ctx)
    alpha = ctx.attr("alpha", 1.0)
    return [_elu_scaled(x, alpha)]


def _elu_scaled(x: Any, alpha: float) -> Any:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    scaled = nc.exp(nc.divide(x, const(alpha, x)))
    neg = nc.multiply(const(alpha, x), nc.subtract(scaled, const(1, x)))
    return nc.where(nc.greater(x, const(0, x)), x, neg)


@converter("HardSigmoid")
def hard_sigmoid(ctx: NodeContext) -> list[Any]:
    x = float_input(ctx)
    alpha, beta = ctx.attr("alpha", 0.2), ctx.attr("beta", 0.5)
    y = nc.add(nc.multiply(x, const(alpha, x)), const(beta, x))
    return [nc.clip(y, const(0, x), const(1, x))]


@converter("ThresholdedRelu", since=10)
def thresholded_relu(ctx: NodeContext) -> list[Any]:
    x = float_input(ctx)
    alpha = ctx.attr("alpha", 1.0)
    return [nc.where(nc.greater(x, const(alpha, x)), x, const(0, x))]


@converter("Gelu", since=20)
def gelu(ctx: NodeContext) -> list[Any]:
    approximate = ctx.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        ctx.unsupported(f"attribute approximate={approximate!r} (ONNX defines 'none', 'tanh')")
    return [nc.gelu(float_input(ctx), approximate=approximate)]


@converter("PRelu", since=7)
def prelu(ctx: NodeContext) -> list[Any]:
    """slope broadcasts to x (unidirectionally); the output has x's shape."""
    x, slope = same_dtype(ctx, [ctx.input(0), ctx.input(1)])
    if not broadcasts_to(np.shape(slope), np.shape(x)):
        invalid(ctx, f"slope shape {np.shape(slope)} does not broadcast to {np.shape(x)}")
    return [nc.where(nc.less(x, const(0, x)), nc.multiply(x, slope), x)]


@converter("Not")
def logical_not(ctx: NodeContext) -> list[Any]:
    return [nc.logical_not(ctx.input(0))]


@converter("IsNaN", since=9)
def is_nan(ctx: NodeContext) -> list[Any]:
    x = float_input(ctx)
    return [nc.not_equal(x, x)]


@converter("IsInf", since=10)
def is_inf(ctx: NodeContext) -> list[Any]:
    x = float_input(ctx)
    pos, neg = ctx.attr("detect_positive", 1), ctx.attr("detect_negative", 1)
    hits = []
    if pos:
        hits.append(nc.equal(x, const(np.inf, x)))
    if neg:
        hits.append(nc.equal(x, const(-np.inf, x)))
    if not hits:  # nothing is x < -inf: all False in x's shape
        return [nc.less(x, const(-np.inf, x))]
    return [reduce(nc.logical_or, hits)]


def _integral(x: Any, mode: str) -> Any:
    """floor/ceil/round-half-to-even exactly: a float with |x| below 2**mantissa is
    truncated through int64 (exact there) and corrected; larger values, inf and NaN are
    integral already and pass through. Signed zeros follow x (ceil(-0.5) is -0.0)."""
    d = dtype_of(x)
    t_int = nc.astype(x, np.int64)
    t = nc.astype(t_int, d)
    one = const(1, x)
    if mode == "floor":
        r = nc.where(nc.less(x, t), nc.subtract(t, one), t)
    elif mode == "ceil":
        r = nc.where(nc.greater(x, t), nc.add(t, one), t)
    else:
        frac = nc.abs(nc.subtract(x, t))
        half = const(0.5, x)
        two = np.asarray(2, np.int64)
        odd = nc.not_equal(nc.subtract(t_int, nc.multiply(two, nc.trunc_divide(t_int, two))), 0)
        away = nc.logical_or(nc.greater(frac, half), nc.logical_and(nc.equal(frac, half), odd))
        r = nc.where(away, nc.add(t, nc.sign(x)), t)
    r = nc.where(nc.equal(r, const(0, x)), nc.multiply(x, const(0, x)), r)
    big = const(2.0 ** (np.finfo(d).nmant), x)
    return nc.stop_gradient(nc.where(nc.less(nc.abs(x), big), r, x))


@converter("Floor", "Ceil", "Round")
def integral(ctx: NodeContext) -> list[Any]:
    return [_integral(float_input(ctx), ctx.op_type.lower())]


@converter("Clip")
def clip(ctx: NodeContext) -> list[Any]:
    """Before opset 11 the bounds are attributes (defaults +-FLT_MAX, so inf is clipped
    to them as in ONNX); later they are optional inputs."""
    x = ctx.input(0)
    if ctx.opset < 11:
        lo = const(ctx.attr("min", -FLOAT_MAX), x)
        hi = const(ctx.attr("max", FLOAT_MAX), x)
    else:
        lo, hi = ctx.optional_input(1), ctx.optional_input(2)
        for i, b in ((1, lo), (2, hi)):
            if b is not None and (dtype_of(b) != dtype_of(x) or np.ndim(b) != 0):
                invalid(ctx, f"input {i} must be a scalar of the input's dtype {dtype_of(x)}")
    return [nc.clip(x, lo, hi)]


# -- binary and variadic -------------------------------------------------------------------

_SAME_TYPED: dict[str, Callable[[Any, Any], Any]] = {
    "Add": nc.add,
    "Sub": nc.subtract,
    "Mul": nc.multiply,
    "Equal": nc.equal,
    "Less": nc.less,
    "Greater": nc.greater,
    "LessOrEqual": nc.less_equal,
    "GreaterOrEqual": nc.greater_equal,
    "And": nc.logical_and,
    "Or": nc.logical_or,
    "Xor": nc.logical_xor,
    "BitwiseAnd": nc.bitwise_and,
    "BitwiseOr": nc.bitwise_or,
    "BitwiseXor": nc.bitwise_xor,
}


@converter(*_SAME_TYPED, since=7)
def same_typed(ctx: NodeContext) -> list[Any]:
    a, b = same_dtype(ctx, [ctx.input(0), ctx.input(1)])
    return [_SAME_TYPED[ctx.op_type](a, b)]


@converter("BitwiseNot", since=18)
def bitwise_not(ctx: NodeContext) -> list[Any]:
    return [nc.bitwise_not(ctx.input(0))]


@converter("Div", since=7)
def div(ctx: NodeContext) -> list[Any]:
    """Integer division truncates toward zero (the ONNX reference's C++ semantics)."""
    a, b = same_dtype(ctx, [ctx.input(0), ctx.input(1)])
    return [nc.divide(a, b) if dtype_of(a).kind == "f" else nc.trunc_divide(a, b)]


@converter("Pow", since=7)
def power(ctx: NodeContext) -> list[Any]:
    """The result has the base's dtype; ONNX computes base ** exponent in NumPy and casts
    back, so an int base with a float exponent is computed in float64 and truncated."""
    a, b = ctx.input(0), ctx.input(1)
    da, db = dtype_of(a), dtype_of(b)
    if da.kind == "b" or db.kind == "b":
        ctx.unsupported("bool operands")
    if da.kind == "f":  # in float64 when the exponent is, as NumPy does, then cast back
        wide = np.dtype(np.float64) if db == np.float64 else da
        return [nc.astype(nc.power(nc.astype(a, wide), nc.astype(b, wide)), da)]
    if db.kind == "f":
        y = nc.power(nc.astype(a, np.float64), nc.astype(b, np.float64))
        return [nc.astype(y, da)]
    return [nc.astype(nc.power(nc.astype(a, np.int64), nc.astype(b, np.int64)), da)]


@converter("Mod", since=10)
def mod(ctx: NodeContext) -> list[Any]:
    """fmod=1: the remainder has the dividend's sign (C fmod); fmod=0: the divisor's
    (Python %), integers only. Integers only: nc has no exact float remainder."""
    fmod = ctx.attr("fmod", 0)
    a, b = same_dtype(ctx, [ctx.input(0), ctx.input(1)])
    if dtype_of(a).kind != "i":
        ctx.unsupported(f"dtype {dtype_of(a)}: nncompile has no exact floating-point remainder")
    r = nc.subtract(a, nc.multiply(b, nc.trunc_divide(a, b)))
    if fmod:
        return [r]
    zero = const(0, a)
    flip = nc.logical_and(nc.not_equal(r, zero), nc.not_equal(nc.less(r, zero), nc.less(b, zero)))
    return [nc.where(flip, nc.add(r, b), r)]


@converter("BitShift", since=11)
def bit_shift(ctx: NodeContext) -> list[Any]:
    """Shifts as exact integer arithmetic: x * 2**s (wrapping, so bits past the sign bit
    are dropped) and floor(x / 2**s) (the arithmetic right shift). A shift below 0 or
    of the bit width or more gives the sign fill alone (-1 for a negative x shifted
    right, else 0), as the spec says from opset 28."""
    direction = ctx.attr("direction")
    x, shift = same_dtype(ctx, [ctx.input(0), ctx.input(1)])
    d = dtype_of(x)
    if direction not in ("LEFT", "RIGHT"):
        ctx.unsupported(f"attribute direction={direction!r} (ONNX defines 'LEFT', 'RIGHT')")
    if d.kind != "i":  # unsigned types are refused before this
        ctx.unsupported(f"dtype {d}")
    bits = 8 * d.itemsize
    zero = const(0, x)
    valid = nc.logical_and(nc.greater_equal(shift, zero), nc.less(shift, const(bits, x)))
    s = nc.where(valid, shift, zero)
    # 2**k for k < bits, wrapped to the dtype (2**(bits-1) is its minimum)
    powers = np.array([1 << k for k in range(bits)], dtype=np.uint64).astype(d)
    p = nc.take(powers, nc.astype(s, np.int64))
    negative = nc.less(x, zero)
    if direction == "LEFT":
        return [nc.where(valid, nc.multiply(x, p), zero)]
    fill = nc.where(negative, const(-1, x), zero)
    top = nc.equal(s, const(bits - 1, x))  # 2**(bits-1) wrapped negative: only the fill
    p = nc.where(top, const(1, x), p)
    q = nc.trunc_divide(x, p)
    q = nc.where(nc.less(nc.subtract(x, nc.multiply(q, p)), zero), nc.subtract(q, const(1, x)), q)
    return [nc.where(nc.logical_and(valid, nc.logical_not(top)), q, fill)]


_VARIADIC: dict[str, Callable[[Any, Any], Any]] = {
    "Max": nc.maximum,
    "Min": nc.minimum,
    "Sum": nc.add,
    "Mean": nc.add,
}


@converter(*_VARIADIC, since=7)
def variadic(ctx: NodeContext) -> list[Any]:
    """Max/Min/Sum/Mean of any number of inputs, numpy-broadcast (from opset 8; opset 7's
    versions take equal shapes, which broadcasting computes the same way)."""
    xs = same_dtype(ctx, [ctx.input(i) for i in range(ctx.num_inputs)])
    if not xs:
        ctx.unsupported("needs at least one input")
    y = reduce(_VARIADIC[ctx.op_type], xs)
    if ctx.op_type == "Mean":
        if dtype_of(y).kind != "f":
            ctx.unsupported(f"dtype {dtype_of(y)}: Mean is computed on floats only")
        y = nc.divide(y, const(len(xs), y))
    return [y]


@converter("Where", since=9)
def where(ctx: NodeContext) -> list[Any]:
    cond = ctx.input(0)
    x, y = same_dtype(ctx, [ctx.input(1), ctx.input(2)])
    if dtype_of(cond).kind != "b":
        ctx.unsupported(f"condition has dtype {dtype_of(cond)}, not bool")
    return [nc.where(cond, x, y)]


# -- casts ---------------------------------------------------------------------------------


def _cast(ctx: NodeContext, x: Any, to: np.dtype) -> Any:
    """x in dtype ``to``; only between the dtypes nncompile computes in. Float to int is
    exact for values in range (truncation); out of range ONNX leaves it undefined. A narrow
    integer type is cast to its container; the executor wraps the result (narrow.py)."""
    to = container_of(to)
    if to not in COMPUTE_DTYPES:
        names = ", ".join(str(np.dtype(d)) for d in COMPUTE_DTYPES)
        ctx.unsupported(f"cast to {to}: nncompile computes only in {names}")
    if to == np.bool_ and dtype_of(x).kind != "b":
        return nc.not_equal(x, const(0, x))
    return nc.astype(x, to)


def _float8_only_attributes(ctx: NodeContext) -> None:
    """saturate (opset 19) and round_mode (opset 24) change only casts to float8 types,
    which are refused, so any value is the same for the casts done here."""
    ctx.attr("saturate", 1)
    ctx.attr("round_mode", "up")


@converter("Cast", since=6)
def cast(ctx: NodeContext) -> list[Any]:
    to = numpy_dtype(ctx.attr("to"), f"ONNX node {ctx.name!r} (Cast) attribute to")
    _float8_only_attributes(ctx)
    return [_cast(ctx, ctx.input(0), to)]


@converter("CastLike", since=15)
def cast_like(ctx: NodeContext) -> list[Any]:
    _float8_only_attributes(ctx)
    return [_cast(ctx, ctx.input(0), dtype_of(ctx.input(1)))]
