"""Array ops with NumPy's names and arguments (``sum``, ``max``, ``abs`` shadow the
builtins on purpose). Each is written once on the primitives
and works eagerly and under tracing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import padding
from .dispatch import bind
from .ir import dtypes as dt
from .ir.errors import DTypeError, OpAttributeError, ShapeError
from .ir.registry import normalize_axis
from .ir.symbolic import Dim
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor

ArrayLike = Any
Axis = int | Sequence[int] | None

_PY_SCALARS = (bool, int, float)


def _is_py_scalar(x: Any) -> bool:
    return (isinstance(x, _PY_SCALARS) and not isinstance(x, np.generic)) or type(x) is Dim


@reports_user_line
def promote_operands(*xs: ArrayLike) -> list[Tensor]:
    """Tensors of one common dtype. Python scalars are weakly typed: they follow the
    tensors' dtype (a float next to int tensors gives float32)."""
    strong = [as_tensor(x) for x in xs if not _is_py_scalar(x)]
    if strong:
        common = dt.promote(*(t._type.dtype for t in strong))
    else:
        common = None
    for x in xs:
        if _is_py_scalar(x):
            s = dt.weak_scalar_dtype(0 if type(x) is Dim else x, common)  # a size: an int
            common = s if common is None else dt.promote(common, s)
    out = []
    for x in xs:
        if type(x) is Dim:
            out.append(batch_size(x, common))
        elif _is_py_scalar(x):
            out.append(as_tensor(np.asarray(x, dtype=common.np)))
        else:
            out.append(astype(as_tensor(x), common))
    return out


def batch_size(size: Dim, dtype: Any = dt.int64) -> Tensor:
    """A size that depends on the symbolic batch size (``x.shape[0]`` in a dynamic-batch
    trace) as a scalar tensor, computed at run time."""
    return bind("batch_size", scale=size.scale, offset=size.offset, dtype=dt.dtype(dtype))


@reports_user_line
def astype(x: ArrayLike, dtype: Any) -> Tensor:
    x, d = as_tensor(x), dt.dtype(dtype)
    return x if x._type.dtype == d else bind("cast", x, to=d)


def _float(x: ArrayLike) -> Tensor:
    """Float-only ops accept ints and bools by casting them to the default float."""
    x = as_tensor(x)
    return x if x._type.dtype.is_float else astype(x, dt.DEFAULT_FLOAT)


# ---- elementwise ------------------------------------------------------------------------


@reports_user_line
def negative(x: ArrayLike) -> Tensor:
    return bind("neg", as_tensor(x))


@reports_user_line
def abs(x: ArrayLike) -> Tensor:
    return bind("abs", as_tensor(x))


@reports_user_line
def sign(x: ArrayLike) -> Tensor:
    return bind("sign", as_tensor(x))


@reports_user_line
def relu(x: ArrayLike) -> Tensor:
    return bind("relu", as_tensor(x))


@reports_user_line
def exp(x: ArrayLike) -> Tensor:
    return bind("exp", _float(x))


@reports_user_line
def log(x: ArrayLike) -> Tensor:
    return bind("log", _float(x))


@reports_user_line
def sqrt(x: ArrayLike) -> Tensor:
    return bind("sqrt", _float(x))


@reports_user_line
def reciprocal(x: ArrayLike) -> Tensor:
    return bind("reciprocal", _float(x))


@reports_user_line
def tanh(x: ArrayLike) -> Tensor:
    return bind("tanh", _float(x))


@reports_user_line
def sigmoid(x: ArrayLike) -> Tensor:
    return bind("sigmoid", _float(x))


@reports_user_line
def erf(x: ArrayLike) -> Tensor:
    return bind("erf", _float(x))


@reports_user_line
def hardswish(x: ArrayLike) -> Tensor:
    """x * relu6(x + 3) / 6 (PyTorch's hardswish)."""
    return bind("hardswish", _float(x))


@reports_user_line
def sin(x: ArrayLike) -> Tensor:
    return bind("sin", _float(x))


@reports_user_line
def cos(x: ArrayLike) -> Tensor:
    return bind("cos", _float(x))


@reports_user_line
def tan(x: ArrayLike) -> Tensor:
    return bind("tan", _float(x))


@reports_user_line
def arcsin(x: ArrayLike) -> Tensor:
    return bind("arcsin", _float(x))


@reports_user_line
def arccos(x: ArrayLike) -> Tensor:
    return bind("arccos", _float(x))


@reports_user_line
def arctan(x: ArrayLike) -> Tensor:
    return bind("arctan", _float(x))


@reports_user_line
def sinh(x: ArrayLike) -> Tensor:
    return bind("sinh", _float(x))


@reports_user_line
def cosh(x: ArrayLike) -> Tensor:
    return bind("cosh", _float(x))


@reports_user_line
def arcsinh(x: ArrayLike) -> Tensor:
    return bind("arcsinh", _float(x))


@reports_user_line
def arccosh(x: ArrayLike) -> Tensor:
    return bind("arccosh", _float(x))


@reports_user_line
def arctanh(x: ArrayLike) -> Tensor:
    return bind("arctanh", _float(x))


@reports_user_line
def stop_gradient(x: ArrayLike) -> Tensor:
    """The same values; gradients do not flow back through it."""
    return bind("stop_gradient", as_tensor(x))


@reports_user_line
def square(x: ArrayLike) -> Tensor:
    x = as_tensor(x)
    return multiply(x, x)


@reports_user_line
def logical_not(x: ArrayLike) -> Tensor:
    return bind("logical_not", astype(x, dt.bool_))


@reports_user_line
def add(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("add", *promote_operands(a, b))


@reports_user_line
def subtract(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("sub", *promote_operands(a, b))


@reports_user_line
def multiply(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("mul", *promote_operands(a, b))


@reports_user_line
def divide(a: ArrayLike, b: ArrayLike) -> Tensor:
    """True division; integer operands are divided as float32."""
    a, b = promote_operands(a, b)
    if not a._type.dtype.is_float:
        a, b = astype(a, dt.DEFAULT_FLOAT), astype(b, dt.DEFAULT_FLOAT)
    return bind("div", a, b)


@reports_user_line
def trunc_divide(a: ArrayLike, b: ArrayLike) -> Tensor:
    """The IR's Div as ONNX defines it: integer division rounds toward zero."""
    return bind("div", *promote_operands(a, b))


@reports_user_line
def power(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("pow", *promote_operands(a, b))


@reports_user_line
def maximum(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("maximum", *promote_operands(a, b))


@reports_user_line
def minimum(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("minimum", *promote_operands(a, b))


@reports_user_line
def clip(x: ArrayLike, a_min: ArrayLike | None, a_max: ArrayLike | None) -> Tensor:
    """Limit values to [a_min, a_max]; at a bound the gradient passes (as torch.clamp)."""
    x = as_tensor(x)
    if a_min is not None:
        x = where(less(x, a_min), a_min, x)
    if a_max is not None:
        x = where(greater(x, a_max), a_max, x)
    return x


@reports_user_line
def equal(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("equal", *promote_operands(a, b))


@reports_user_line
def not_equal(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("not_equal", *promote_operands(a, b))


@reports_user_line
def less(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("less", *promote_operands(a, b))


@reports_user_line
def less_equal(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("less_equal", *promote_operands(a, b))


@reports_user_line
def greater(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("greater", *promote_operands(a, b))


@reports_user_line
def greater_equal(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("greater_equal", *promote_operands(a, b))


@reports_user_line
def logical_and(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("logical_and", astype(a, dt.bool_), astype(b, dt.bool_))


@reports_user_line
def logical_or(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("logical_or", astype(a, dt.bool_), astype(b, dt.bool_))


@reports_user_line
def logical_xor(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("logical_xor", astype(a, dt.bool_), astype(b, dt.bool_))


# ---- bitwise (NumPy's ~ & | ^): logical on bools, two's complement bits on integers ------


def _bitwise_dtype(name: str, t: Tensor) -> dt.DType:
    d = t._type.dtype
    if d.is_float:
        raise DTypeError(f"{name}: needs integer or bool operands, got {t._type}")
    return d


@reports_user_line
def bitwise_not(x: ArrayLike) -> Tensor:
    """NumPy invert (``~x``): -x - 1 on integers, logical not on bools."""
    x = as_tensor(x)
    d = _bitwise_dtype("bitwise_not", x)
    return bind("logical_not" if d.is_bool else "bitwise_not", x)


def _bitwise(name: str, logical: str, a: ArrayLike, b: ArrayLike) -> Tensor:
    a, b = promote_operands(a, b)  # bool with int gives int, as in NumPy
    d = _bitwise_dtype(name, a)
    return bind(logical if d.is_bool else name, a, b)


@reports_user_line
def bitwise_and(a: ArrayLike, b: ArrayLike) -> Tensor:
    """NumPy bitwise_and (``a & b``): bitwise on integers, logical and on bools."""
    return _bitwise("bitwise_and", "logical_and", a, b)


@reports_user_line
def bitwise_or(a: ArrayLike, b: ArrayLike) -> Tensor:
    """NumPy bitwise_or (``a | b``): bitwise on integers, logical or on bools."""
    return _bitwise("bitwise_or", "logical_or", a, b)


@reports_user_line
def bitwise_xor(a: ArrayLike, b: ArrayLike) -> Tensor:
    """NumPy bitwise_xor (``a ^ b``): bitwise on integers, logical xor on bools."""
    return _bitwise("bitwise_xor", "logical_xor", a, b)


@reports_user_line
def where(condition: ArrayLike, x: ArrayLike, y: ArrayLike) -> Tensor:
    return bind("where", astype(condition, dt.bool_), *promote_operands(x, y))


# ---- reductions -------------------------------------------------------------------------


def _axes(x: Tensor, axis: Axis) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    if isinstance(axis, (int, np.integer)):
        return (int(axis),)
    return tuple(int(a) for a in axis)


@reports_user_line
def sum(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    x = as_tensor(x)
    if x._type.dtype.is_bool:
        x = astype(x, dt.DEFAULT_INT)
    return bind("reduce_sum", x, axes=_axes(x, axis), keepdims=keepdims)


@reports_user_line
def mean(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    x = _float(x)
    return bind("reduce_mean", x, axes=_axes(x, axis), keepdims=keepdims)


@reports_user_line
def max(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Maximum over axes; an empty reduction gives -inf (ONNX), not a NumPy error."""
    x = as_tensor(x)
    return bind("reduce_max", x, axes=_axes(x, axis), keepdims=keepdims)


@reports_user_line
def min(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    x = as_tensor(x)
    return bind("reduce_min", x, axes=_axes(x, axis), keepdims=keepdims)


def _arg(op: str, x: ArrayLike, axis: int | None, keepdims: bool) -> Tensor:
    x = as_tensor(x)
    if x._type.dtype.is_bool:
        x = astype(x, dt.int32)
    if axis is None:
        out = bind(op, reshape(x, (-1,)), axis=0, keepdims=False)
        return reshape(out, (1,) * x.ndim) if keepdims else out
    return bind(op, x, axis=int(axis), keepdims=keepdims)


@reports_user_line
def argmax(x: ArrayLike, axis: int | None = None, keepdims: bool = False) -> Tensor:
    return _arg("argmax", x, axis, keepdims)


@reports_user_line
def argmin(x: ArrayLike, axis: int | None = None, keepdims: bool = False) -> Tensor:
    return _arg("argmin", x, axis, keepdims)


# ---- movement ---------------------------------------------------------------------------


def _size(d: Any) -> int | Dim:
    """A dimension given by the user: an int, or a size that depends on the batch."""
    return d if type(d) is Dim else int(d)


def _resolve_shape(x: Tensor, shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer, Dim)):
        shape = (shape,)
    shape = [_size(d) for d in shape]
    unknown = [i for i, d in enumerate(shape) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in shape):
        raise ShapeError(f"reshape: invalid target shape {tuple(shape)} for {x._type}")
    if unknown:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or x.size % known:
            raise ShapeError(f"reshape: cannot reshape {x._type} to {tuple(shape)}")
        shape[unknown[0]] = x.size // known
    return tuple(shape)


@reports_user_line
def reshape(x: ArrayLike, shape: Any) -> Tensor:
    """NumPy reshape: one dim may be -1."""
    x = as_tensor(x)
    target = _resolve_shape(x, shape)
    return x if target == x.shape else bind("reshape", x, shape=target)


@reports_user_line
def transpose(x: ArrayLike, axes: Sequence[int] | None = None) -> Tensor:
    x = as_tensor(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    perm = tuple(int(a) + x.ndim if int(a) < 0 else int(a) for a in axes)
    return bind("transpose", x, perm=perm)


@reports_user_line
def broadcast_to(x: ArrayLike, shape: Sequence[int]) -> Tensor:
    x, shape = as_tensor(x), tuple(_size(d) for d in shape)
    if x.shape == shape:
        return x
    out = bind("expand", x, shape=shape)
    if out.shape != shape:
        raise ShapeError(f"broadcast_to: cannot broadcast {x._type} to {shape}")
    return out


@reports_user_line
def expand_dims(x: ArrayLike, axis: int) -> Tensor:
    x = as_tensor(x)
    axis = normalize_axis(axis, x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


@reports_user_line
def squeeze(x: ArrayLike, axis: Axis = None) -> Tensor:
    x = as_tensor(x)
    if axis is None:
        drop = {i for i, d in enumerate(x.shape) if d == 1}
    else:
        drop = {normalize_axis(a, x.ndim) for a in _axes(x, axis)}
        if any(x.shape[i] != 1 for i in drop):
            raise ShapeError(f"squeeze: axes {sorted(drop)} of {x._type} are not all size 1")
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in drop))


def _pad_widths(pad_width: Any, ndim: int) -> list[tuple[int, int]]:
    w = np.asarray(pad_width, dtype=np.int64)
    try:
        return [tuple(int(v) for v in row) for row in np.broadcast_to(w, (ndim, 2))]
    except ValueError:
        raise ShapeError(f"pad: pad_width {pad_width!r} does not fit rank {ndim}") from None


# np.pad's other modes compute from the data (or leave it uninitialized): not provided.
_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")
_UNSUPPORTED_PAD_MODES = ("empty", "linear_ramp", "maximum", "mean", "median", "minimum")


@reports_user_line
def pad(x: ArrayLike, pad_width: Any, mode: str = "constant", constant_values: float = 0) -> Tensor:
    """NumPy pad with modes 'constant', 'edge' (torch 'replicate'), 'reflect', 'symmetric'
    and 'wrap' (torch 'circular'). Reflect, symmetric and wrap accept any width NumPy does
    (repeated reflection); padding an empty axis in a mode other than constant is a
    ShapeError."""
    x = as_tensor(x)
    widths = _pad_widths(pad_width, x.ndim)
    if mode in _UNSUPPORTED_PAD_MODES:
        raise NotImplementedError(f"pad: mode {mode!r} is not supported (only {_PAD_MODES})")
    if mode not in _PAD_MODES:
        raise OpAttributeError(f"pad: unknown mode {mode!r}; expected one of {_PAD_MODES}")
    if mode != "constant" and constant_values != 0:
        raise OpAttributeError(
            f"pad: constant_values is only used by mode 'constant', not {mode!r}"
        )
    narrow = all(b < d and e < d for (b, e), d in zip(widths, x.shape, strict=True) if b or e)
    if mode in padding.SLICED_MODES and not (mode == "reflect" and narrow):
        return padding.pad_by_slices(x, widths, mode)
    pads = tuple(b for b, _ in widths) + tuple(e for _, e in widths)
    return bind("pad", x, pads=pads, mode=mode, value=float(constant_values))


@reports_user_line
def concatenate(xs: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    if len(xs) == 0:
        raise ShapeError("concatenate: needs at least one array")
    return bind("concat", *promote_operands(*xs), axis=int(axis))


@reports_user_line
def stack(xs: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    if len(xs) == 0:
        raise ShapeError("stack: needs at least one array")
    ts = promote_operands(*xs)
    axis = normalize_axis(axis, ts[0].ndim + 1)
    return concatenate([expand_dims(t, axis) for t in ts], axis)


def _indices(indices: ArrayLike) -> Tensor:
    if isinstance(indices, Tensor):
        return indices
    a = np.asarray(indices)
    return as_tensor(a.astype(np.int64) if a.dtype.kind in "iu" or a.size == 0 else a)


@reports_user_line
def take(x: ArrayLike, indices: ArrayLike, axis: int | None = None) -> Tensor:
    """NumPy take (ONNX Gather): negative indices count from the end; out of range raises."""
    x = as_tensor(x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    return bind("gather", x, _indices(indices), axis=int(axis))


@reports_user_line
def take_along_axis(x: ArrayLike, indices: ArrayLike, axis: int) -> Tensor:
    return bind("gather_elements", as_tensor(x), _indices(indices), axis=int(axis))


@reports_user_line
def one_hot(
    indices: ArrayLike, num_classes: int, dtype: Any = dt.float32, axis: int = -1
) -> Tensor:
    """ONNX OneHot: indices outside [-num_classes, num_classes) give all-zero rows."""
    return bind(
        "one_hot", _indices(indices), depth=int(num_classes), axis=axis, dtype=dt.dtype(dtype)
    )


@reports_user_line
def matmul(a: ArrayLike, b: ArrayLike) -> Tensor:
    return bind("matmul", *promote_operands(a, b))


@reports_user_line
def zeros_like(x: ArrayLike, dtype: Any = None) -> Tensor:
    x = as_tensor(x)
    d = dt.dtype(dtype) if dtype is not None else x._type.dtype
    return broadcast_to(as_tensor(np.zeros((), d.np)), x.shape)


@reports_user_line
def ones_like(x: ArrayLike, dtype: Any = None) -> Tensor:
    x = as_tensor(x)
    d = dt.dtype(dtype) if dtype is not None else x._type.dtype
    return broadcast_to(as_tensor(np.ones((), d.np)), x.shape)
