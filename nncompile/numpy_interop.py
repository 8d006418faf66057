"""NumPy functions called on nc.Tensors (``Tensor.__array_function__`` / ``__array_ufunc__``).

A NumPy function with an nc equivalent runs that op, eagerly or traced: ``np.sum(x)``,
``np.exp(x)``, ``np.concatenate([x, y])``, ``np.dot(x, w)`` and ``array @ x`` work on
Tensors as users expect, and give Tensors. Anything else (another function, or an
argument the equivalent does not take, such as ``out=``) computes with NumPy on eager
tensors, giving a NumPy array, and is a TraceError naming the function on traced ones:
NumPy cannot compute with values that are known only when the graph runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import ops
from .ir.errors import ConfigError, TraceError
from .source_location import user_location
from .tensor import Tensor, as_tensor


class _Unsupported(Exception):
    """The call passed ``argument``, which the nc equivalent does not take."""

    def __init__(self, argument: str):
        super().__init__(argument)
        self.argument = argument


def _absent(value: Any) -> bool:
    return value is None or type(value).__name__ == "_NoValueType"  # NumPy's "not given"


def _refuse(**arguments: Any) -> None:
    for name, value in arguments.items():
        if not _absent(value):
            raise _Unsupported(f"{name}=...")


def _flag(value: Any) -> bool:
    return False if _absent(value) else bool(value)


# ---- the equivalents: NumPy's signatures, nc's ops ------------------------------------


def _sum_like(op: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def call(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
        _refuse(dtype=dtype, out=out, initial=initial, where=where)
        return op(a, axis, _flag(keepdims))

    return call


def _max_like(op: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def call(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _refuse(out=out, initial=initial, where=where)
        return op(a, axis, _flag(keepdims))

    return call


def _arg_like(op: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def call(a, axis=None, out=None, *, keepdims=False):
        _refuse(out=out)
        return op(a, axis, _flag(keepdims))

    return call


def _dot(a, b, out=None):
    _refuse(out=out)
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        return ops.multiply(a, b)
    if b.ndim > 2:  # np.dot pairs every row of a with every matrix of b: not a matmul
        raise _Unsupported("b with more than 2 dimensions")
    return ops.matmul(a, b)


def _joined(op: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def call(arrays, axis=0, out=None, *, dtype=None, casting=None):
        _refuse(out=out, dtype=dtype, casting=casting)
        if axis is None:  # NumPy flattens first
            return op([ops.reshape(a, (-1,)) for a in arrays], 0)
        return op(list(arrays), axis)

    return call


def _reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if order != "C":
        raise _Unsupported("order=...")
    return ops.reshape(a, newshape if shape is None else shape)


def _transpose(a, axes=None):
    return ops.transpose(a, axes)


def _squeeze(a, axis=None):
    return ops.squeeze(a, axis)


def _expand_dims(a, axis):
    return ops.expand_dims(a, axis)


def _broadcast_to(array, shape, subok=False):
    return ops.broadcast_to(array, shape)


def _where(condition, x=None, y=None):
    if x is None or y is None:  # np.where(c) = np.nonzero(c): a data-dependent shape
        raise _Unsupported("only a condition (nonzero indices)")
    return ops.where(condition, x, y)


def _clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None, **kwargs):
    _refuse(out=out, **kwargs)
    low = a_min if _absent(min) else min
    high = a_max if _absent(max) else max
    return ops.clip(a, None if _absent(low) else low, None if _absent(high) else high)


def _take(a, indices, axis=None, out=None, mode=None):
    _refuse(out=out, mode=None if mode == "raise" else mode)
    return ops.take(a, indices, axis)


def _take_along_axis(arr, indices, axis=-1):
    if axis is None:
        raise _Unsupported("axis=None")
    return ops.take_along_axis(arr, indices, axis)


def _pad(array, pad_width, mode="constant", **kwargs):
    constant = kwargs.pop("constant_values", 0)
    _refuse(**kwargs)
    if np.ndim(constant):
        raise _Unsupported("constant_values per axis")
    return ops.pad(array, pad_width, mode, constant)


def _filled_like(op: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def call(a, dtype=None, order=None, subok=None, shape=None, *, device=None):
        _refuse(shape=shape, device=device)
        return op(a, dtype)

    return call


def _shape(a):
    return tuple(a.shape)


def _ndim(a):
    return a.ndim


def _size(a, axis=None):
    return a.size if axis is None else a.shape[axis]


def _result_type(*arrays_and_dtypes):
    return np.result_type(*(a.dtype if isinstance(a, Tensor) else a for a in arrays_and_dtypes))


# NumPy function -> (its nc equivalent, how the equivalent is named in messages)
FUNCTIONS: dict[Callable, tuple[Callable, str]] = {
    np.sum: (_sum_like(ops.sum), "nc.sum(x, axis, keepdims)"),
    np.mean: (_sum_like(ops.mean), "nc.mean(x, axis, keepdims)"),
    np.max: (_max_like(ops.max), "nc.max(x, axis, keepdims)"),
    np.min: (_max_like(ops.min), "nc.min(x, axis, keepdims)"),
    np.argmax: (_arg_like(ops.argmax), "nc.argmax(x, axis, keepdims)"),
    np.argmin: (_arg_like(ops.argmin), "nc.argmin(x, axis, keepdims)"),
    np.dot: (_dot, "nc.matmul(a, b)"),
    np.concatenate: (_joined(ops.concatenate), "nc.concatenate(xs, axis)"),
    np.stack: (_joined(ops.stack), "nc.stack(xs, axis)"),
    np.reshape: (_reshape, "nc.reshape(x, shape)"),
    np.transpose: (_transpose, "nc.transpose(x, axes)"),
    np.squeeze: (_squeeze, "nc.squeeze(x, axis)"),
    np.expand_dims: (_expand_dims, "nc.expand_dims(x, axis)"),
    np.broadcast_to: (_broadcast_to, "nc.broadcast_to(x, shape)"),
    np.where: (_where, "nc.where(condition, x, y)"),
    np.clip: (_clip, "nc.clip(x, a_min, a_max)"),
    np.take: (_take, "nc.take(x, indices, axis)"),
    np.take_along_axis: (_take_along_axis, "nc.take_along_axis(x, indices, axis)"),
    np.pad: (_pad, "nc.pad(x, pad_width, mode, constant_values)"),
    np.zeros_like: (_filled_like(ops.zeros_like), "nc.zeros_like(x, dtype)"),
    np.ones_like: (_filled_like(ops.ones_like), "nc.ones_like(x, dtype)"),
    np.shape: (_shape, "x.shape"),
    np.ndim: (_ndim, "x.ndim"),
    np.size: (_size, "x.size"),
    np.result_type: (_result_type, "x.dtype"),
}

UFUNCS: dict[np.ufunc, Callable[..., Tensor]] = {
    np.add: ops.add,
    np.subtract: ops.subtract,
    np.multiply: ops.multiply,
    np.true_divide: ops.divide,
    np.power: ops.power,
    np.negative: ops.negative,
    np.positive: as_tensor,
    np.absolute: ops.abs,
    np.exp: ops.exp,
    np.log: ops.log,
    np.sqrt: ops.sqrt,
    np.square: ops.square,
    np.reciprocal: ops.reciprocal,
    np.tanh: ops.tanh,
    np.sign: ops.sign,
    np.maximum: ops.maximum,
    np.minimum: ops.minimum,
    np.equal: ops.equal,
    np.not_equal: ops.not_equal,
    np.less: ops.less,
    np.less_equal: ops.less_equal,
    np.greater: ops.greater,
    np.greater_equal: ops.greater_equal,
    np.logical_and: ops.logical_and,
    np.logical_or: ops.logical_or,
    np.logical_xor: ops.logical_xor,
    np.logical_not: ops.logical_not,
    np.matmul: ops.matmul,
    # operators the Tensor defines (`array & t` reaches the ufunc before Tensor.__rand__)
    np.bitwise_and: lambda a, b: as_tensor(a) & b,
    np.bitwise_or: lambda a, b: as_tensor(a) | b,
    np.bitwise_xor: lambda a, b: as_tensor(a) ^ b,
    np.invert: lambda x: ~as_tensor(x),
}
# What to use instead of a reduction method of a ufunc (np.add.reduce(x), ...).
REDUCTIONS = {"add": "nc.sum", "maximum": "nc.max", "minimum": "nc.min"}


# ---- dispatch ---------------------------------------------------------------------------


def _leaves(x: Any) -> list[Any]:
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in _leaves(item)]
    if isinstance(x, dict):
        return _leaves(list(x.values()))
    return [x]


def _traced(args: tuple, kwargs: dict) -> bool:
    """Whether any Tensor argument stands for a graph value; TraceError if one escaped
    from a finished trace."""
    traced = [t for t in _leaves([args, kwargs]) if isinstance(t, Tensor) and t.is_traced]
    if any(not t._trace.active for t in traced):
        raise _error(
            "a traced value escaped from a finished trace (stored in a global or closure?) "
            "and was used later; return it from the traced function instead"
        )
    return bool(traced)


def _as_numpy(x: Any) -> Any:
    """Tensors (nested in lists, tuples, dicts) replaced by their arrays."""
    if isinstance(x, Tensor):
        return x.numpy()
    if isinstance(x, (list, tuple)):
        return type(x)(_as_numpy(item) for item in x)
    if isinstance(x, dict):
        return {k: _as_numpy(v) for k, v in x.items()}
    return x


def numpy_name(func: Any) -> str:
    module = getattr(func, "__module__", None) or "numpy"
    prefix = "np" + module.removeprefix("numpy") if module.startswith("numpy") else module
    return f"{prefix}.{getattr(func, '__name__', repr(func))}"


def _error(message: str) -> TraceError:
    where = user_location()
    return TraceError(message + (f"\n  at {where}" if where else ""))


_NC_OPS = "nc ops (nc.sum, nc.matmul, nc.concatenate, ...; `nncompile ops` lists the primitives)"


def _cannot_trace(name: str, instead: str) -> TraceError:
    return _error(
        f"{name} was called on a traced tensor: NumPy cannot compute with a value that is "
        f"known only when the graph runs. Use {instead} instead"
    )


def array_function(func: Callable, args: tuple, kwargs: dict) -> Any:
    name = numpy_name(func)
    equivalent = FUNCTIONS.get(func)
    traced = _traced(args, kwargs)
    if equivalent is not None:
        fn, instead = equivalent
        try:
            return fn(*args, **kwargs)
        except _Unsupported as e:
            if traced:
                raise _error(
                    f"{name} with {e.argument} has no nncompile equivalent for a traced "
                    f"tensor; use {instead}"
                ) from None
    elif traced:
        raise _cannot_trace(name, _NC_OPS)
    return func(*_as_numpy(args), **_as_numpy(kwargs))  # eager: NumPy computes


def array_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    name = numpy_name(ufunc)
    op = UFUNCS.get(ufunc)
    if method == "__call__" and op is not None and all(map(_absent, kwargs.values())):
        return op(*inputs)
    out = kwargs.get("out") or ()
    if any(isinstance(o, Tensor) for o in _leaves(out)):
        raise ConfigError(f"{name}(..., out=tensor): nc.Tensors are immutable; use the result")
    if _traced(inputs, kwargs):
        if method != "__call__":
            call = f"{name}.{method}"
            instead = REDUCTIONS.get(ufunc.__name__) if method == "reduce" else None
            raise _cannot_trace(call, instead or _NC_OPS)
        if out:
            raise _error(
                f"{name}(..., out=...) writes into a NumPy array, which cannot hold a traced "
                "value; write `x = x + y` instead of `x += y` on arrays"
            )
        named = op is not None and op.__name__.isidentifier()
        raise _cannot_trace(name, f"nc.{op.__name__}" if named else _NC_OPS)
    return getattr(ufunc, method)(*_as_numpy(inputs), **_as_numpy(kwargs))
